"""Every command that reads an operator's policy file refuses a repeated key (exit 2, one line).

``policy validate``, ``diff`` and ``apply`` (against moto) and ``gatehouse
dev --policy`` (before anything starts) read the file through one loader; a
rule that says ``effect: deny`` and then ``effect: allow`` must never reach
the store as an allow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from chalicelib.policy import PolicyStore
from gatehouse.cli import main
from gatehouse.dev.stack import DEMO_POLICY, initial_policy
from gatehouse.policy_files import PolicyFileError
from tests.functional.test_policy_admin import client

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources

CLEAN_YAML = """\
version: 1
routes:
  - id: demo
    host: "*"
    path_prefix: /
    upstream: http://127.0.0.1:9
    audience: demo
rules:
  - id: no-billing-for-contractors
    effect: deny
    routes: [demo]
    subjects:
      groups: [contractors]
    actions: ["*"]
    paths: ["/api/billing/**"]
"""
CLEAN_JSON = """\
{
  "version": 1,
  "routes": [
    {"id": "demo", "host": "*", "path_prefix": "/",
     "upstream": "http://127.0.0.1:9", "audience": "demo"}
  ],
  "rules": [
    {
      "id": "no-billing-for-contractors",
      "effect": "deny",
      "routes": ["demo"],
      "subjects": {"groups": ["contractors"]},
      "actions": ["*"],
      "paths": ["/api/billing/**"]
    }
  ]
}
"""
# The deny of line 10 turned into an allow on line 16 (YAML) or 15 (JSON).
DUPLICATES = {
    "yaml": ("policy.yaml", CLEAN_YAML + "    effect: allow\n", 16),
    "json": (
        "policy.json",
        CLEAN_JSON.replace(
            '"/api/billing/**"]\n', '"/api/billing/**"],\n      "effect": "allow"\n'
        ),
        15,
    ),
}
ADVICE = "only the last would count; remove or rename one"


@pytest.fixture
def cli(aws: Resources, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("GATEHOUSE_AUDIT_BUCKET", aws.audit_bucket)
    monkeypatch.setenv("GATEHOUSE_AUDIT_QUEUE_URL", aws.audit_queue_url)
    monkeypatch.setenv("GATEHOUSE_STATE_TABLE", aws.state_table)
    monkeypatch.setenv("GATEHOUSE_STAGE", "test")
    return ["--state-dir", str(tmp_path / "no-local-stack")]


def duplicate_file(tmp_path: Path, form: str) -> tuple[Path, int]:
    name, text, line = DUPLICATES[form]
    path = tmp_path / name
    path.write_text(text)
    return path, line


def refusal_of(path: Path, line: int) -> str:
    return f"gatehouse: {path}:{line}: duplicate key 'effect' (first on line 10): {ADVICE}\n"


@pytest.mark.parametrize(("name", "text"), [("p.yaml", CLEAN_YAML), ("p.json", CLEAN_JSON)])
def test_the_files_without_the_repeated_key_are_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text)

    assert main(["policy", "validate", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: valid (1 routes, 1 rules, ")


@pytest.mark.parametrize("form", ["yaml", "json"])
def test_validate_refuses_a_repeated_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str
) -> None:
    path, line = duplicate_file(tmp_path, form)

    assert main(["policy", "validate", str(path)]) == 2

    out, err = capsys.readouterr()
    assert (out, err) == ("", refusal_of(path, line))


@pytest.mark.parametrize("command", ["diff", "apply"])
@pytest.mark.parametrize("form", ["yaml", "json"])
def test_diff_and_apply_refuse_a_repeated_key_and_change_nothing(
    aws: Resources,
    cli: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    form: str,
) -> None:
    clean = tmp_path / "clean.yaml"
    clean.write_text(CLEAN_YAML)
    assert main([*cli, "policy", "apply", str(clean), "--reason", "first"]) == 0
    capsys.readouterr()
    path, line = duplicate_file(tmp_path, form)
    # A deployed stage's apply needs a reason: given, so the file is what is refused.
    reason = ["--reason", "second"] if command == "apply" else []

    assert main([*cli, "policy", command, str(path), *reason]) == 2

    out, err = capsys.readouterr()
    assert (out, err) == ("", refusal_of(path, line))
    store = PolicyStore(client("dynamodb"), aws.state_table)
    active = store.load_active()
    assert active is not None
    assert active.version == 1
    assert active.document["rules"][0]["effect"] == "deny"
    assert len(store.activations()) == 1
    assert store.load_version(2) is None


# --- gatehouse dev --policy ------------------------------------------------------------------


@pytest.mark.parametrize("form", ["yaml", "json"])
def test_dev_refuses_a_repeated_key_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str
) -> None:
    path, line = duplicate_file(tmp_path, form)
    state_dir = tmp_path / "state"

    assert main(["--state-dir", str(state_dir), "dev", "--policy", str(path)]) == 2

    assert capsys.readouterr() == ("", refusal_of(path, line))
    assert not state_dir.exists()


def test_dev_names_a_missing_policy_file_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"

    assert main(["--state-dir", str(tmp_path / "state"), "dev", "--policy", str(missing)]) == 2

    err = capsys.readouterr().err
    assert err.startswith("gatehouse: ")
    assert str(missing) in err
    assert err.count("\n") == 1


def test_the_stacks_initial_policy_is_read_strictly_after_filling_in_the_backend(
    tmp_path: Path,
) -> None:
    template = tmp_path / "policy.yaml"
    template.write_text(CLEAN_YAML.replace("http://127.0.0.1:9", "${BACKEND_URL}/x"))

    document = initial_policy(template, "http://127.0.0.1:4567")

    assert document["routes"][0]["upstream"] == "http://127.0.0.1:4567/x"
    assert [rule["id"] for rule in initial_policy(DEMO_POLICY, "http://b")["rules"]]
    template.write_text(template.read_text() + "    effect: allow\n")
    with pytest.raises(PolicyFileError, match=r":16: duplicate key 'effect' \(first on line 10\)"):
        initial_policy(template, "http://127.0.0.1:4567")


# --- as an operator runs it ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (*DUPLICATES["yaml"][:2], ":16: duplicate key 'effect' (first on line 10)"),
        (*DUPLICATES["json"][:2], ":15: duplicate key 'effect' (first on line 10)"),
        ("merge.yaml", "base: &b {effect: deny}\nrules:\n  - <<: *b\n", ":3: merge keys (<<)"),
        ("typed.yaml", "claims:\n  1: a\n  '1': b\n", ":3: duplicate key '1' (first on line 2)"),
        ("broken.json", '{"rules": [}', ":1: not valid JSON: Expecting value (column 12)"),
    ],
    ids=["yaml", "json", "merge-key", "keys-differing-by-type", "json-syntax"],
)
def test_the_installed_command_exits_2_with_one_line_and_no_traceback(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    gatehouse = Path(sys.executable).with_name("gatehouse")

    finished = subprocess.run(
        [str(gatehouse), "policy", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 2
    assert "Traceback" not in finished.stderr
    assert finished.stderr.startswith(f"gatehouse: {path}{expected}")
    assert finished.stderr.count("\n") == 1
    assert finished.stdout == ""


def test_the_hazard_the_plain_json_decoder_reads_the_deny_as_an_allow() -> None:
    _, text, _ = DUPLICATES["json"]

    assert json.loads(text)["rules"][0]["effect"] == "allow"
