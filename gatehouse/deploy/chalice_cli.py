"""Running the Chalice CLI on a generated copy of the project.

``chalice deploy`` reads ``.chalice/config.json`` from the project it deploys,
and the committed one holds ``REPLACE_WITH_STACK_OUTPUT_*`` placeholders. The
deploy therefore builds ``.gatehouse/deploy/<stage>/`` (ignored by git): the
app, ``chalicelib``, ``requirements.txt``, the reviewed policy files, and a
config with the placeholders filled from the infra stack's outputs. Chalice's
record of what it deployed, ``.chalice/deployed/<stage>.json``, is kept in the
project (Chalice's usual place) and copied in and out around each run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gatehouse.deploy.errors import ChaliceFailed, UnfilledPlaceholder
from gatehouse.deploy.settings import PLACEHOLDER_PREFIX

_PROJECT_FILES = ("app.py", "requirements.txt")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


def chalice_executable() -> str:
    """The ``chalice`` next to this Python (the Lambda runtime is the one that runs it)."""
    beside = Path(sys.executable).with_name("chalice")
    if beside.exists():
        return str(beside)
    found = shutil.which("chalice")
    if found is None:
        raise ChaliceFailed("no chalice CLI: pip install -e '.[cli]'")
    return found


def run_chalice(project_dir: Path, *arguments: str, env: Mapping[str, str] | None = None) -> str:
    """Run ``chalice --project-dir project_dir ARGUMENTS``; its output.

    Raises
    ------
    ChaliceFailed
        When it exits non-zero (its output is in the message).
    """
    completed = subprocess.run(
        [chalice_executable(), "--project-dir", str(project_dir), *arguments],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        raise ChaliceFailed(f"chalice {' '.join(arguments)} failed:\n{output}")
    return output


def filled_config(
    config: dict[str, Any], stage: str, outputs: Mapping[str, str], overrides: Mapping[str, str]
) -> dict[str, Any]:
    """``config`` for ``stage`` alone, its placeholders replaced by stack outputs.

    Raises
    ------
    UnfilledPlaceholder
        When a placeholder names an output the stack does not have.
    """
    generated: dict[str, Any] = json.loads(json.dumps(config))
    stage_config = generated["stages"][stage]
    generated["stages"] = {stage: stage_config}
    variables = stage_config.setdefault("environment_variables", {})
    variables.update(overrides)
    for name, value in variables.items():
        if isinstance(value, str) and value.startswith(PLACEHOLDER_PREFIX):
            output = value.removeprefix(PLACEHOLDER_PREFIX)
            if output not in outputs:
                raise UnfilledPlaceholder(
                    f"{name} wants the infra stack's output {output}, which it does not have"
                )
            variables[name] = outputs[output]
    return generated


def prepare_build(
    project_dir: Path,
    build_dir: Path,
    stage: str,
    outputs: Mapping[str, str],
    overrides: Mapping[str, str],
) -> Path:
    """Lay out the generated project in ``build_dir`` (Chalice's package cache is kept)."""
    chalice_dir = build_dir / ".chalice"
    chalice_dir.mkdir(parents=True, exist_ok=True)
    for name in _PROJECT_FILES:
        shutil.copy2(project_dir / name, build_dir / name)
    shutil.rmtree(build_dir / "chalicelib", ignore_errors=True)
    shutil.copytree(project_dir / "chalicelib", build_dir / "chalicelib", ignore=_IGNORED)
    for policy in (project_dir / ".chalice").glob(f"policy-{stage}-*.json"):
        shutil.copy2(policy, chalice_dir / policy.name)
    config = json.loads((project_dir / ".chalice" / "config.json").read_text())
    generated = filled_config(config, stage, outputs, overrides)
    (chalice_dir / "config.json").write_text(json.dumps(generated, indent=2) + "\n")
    record = project_dir / ".chalice" / "deployed" / f"{stage}.json"
    shutil.rmtree(chalice_dir / "deployed", ignore_errors=True)
    if record.exists():
        (chalice_dir / "deployed").mkdir()
        shutil.copy2(record, chalice_dir / "deployed" / record.name)
    return build_dir


def keep_deployed_record(build_dir: Path, project_dir: Path, stage: str) -> dict[str, Any] | None:
    """Copy Chalice's record of the stage back to the project; the record, or None if gone."""
    built = build_dir / ".chalice" / "deployed" / f"{stage}.json"
    record = project_dir / ".chalice" / "deployed" / f"{stage}.json"
    if not built.exists():
        record.unlink(missing_ok=True)
        return None
    record.parent.mkdir(exist_ok=True)
    shutil.copy2(built, record)
    document: dict[str, Any] = json.loads(built.read_text())
    return document


def deployed_resource(record: dict[str, Any], name: str) -> dict[str, Any] | None:
    """One resource of Chalice's deployed record (``rest_api``, a function name...)."""
    for resource in record.get("resources", []):
        if resource.get("name") == name:
            return dict(resource)
    return None
