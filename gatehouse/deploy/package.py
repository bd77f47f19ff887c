"""``make package``: one template with the functions, the API and every infra resource."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from gatehouse.deploy.chalice_cli import run_chalice
from gatehouse.deploy.deploy import check_overrides
from gatehouse.deploy.templates import write_merge_template

if TYPE_CHECKING:
    from gatehouse.deploy.settings import StageSettings

TEMPLATE_NAME = "sam.json"


def package(
    settings: StageSettings,
    out_dir: Path,
    *,
    overrides: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    chalice: Callable[..., str] = run_chalice,
) -> Path:
    """Run ``chalice package --merge-template`` for the stage; the packaged template's path.

    ``out_dir`` receives ``merge.json`` (what was merged in), ``sam.json`` and
    ``deployment.zip``. Chalice needs a region name to package, not a call
    to AWS: ``AWS_DEFAULT_REGION`` is set when the environment has none.

    Raises
    ------
    DeployError
        When prod would be packaged with the committed config's example issuers
        (the check ``deploy`` makes).
    """
    config = json.loads((settings.project_dir / ".chalice" / "config.json").read_text())
    check_overrides(settings.stage, config, overrides or {})
    merge = write_merge_template(settings, out_dir.parent / f"{out_dir.name}-merge.json", overrides)
    chalice(
        settings.project_dir,
        "package",
        "--stage",
        settings.stage,
        "--merge-template",
        str(merge),
        str(out_dir),
        env=env,
    )
    return out_dir / TEMPLATE_NAME
