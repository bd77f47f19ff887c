"""The reference generator: ``docs/policy.md`` is hand-written around a generated part.

Only the text between the markers is generated (every section, every field,
an example each); the hand-written text about changing a stage's policy stays
as written, and a file without the markers is refused rather than overwritten.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chalicelib.policy.diff import diff_documents
from chalicelib.policy.fields import Section, sections
from chalicelib.policy.reference import (
    BEGIN_MARKER,
    END_MARKER,
    REFERENCE_PATH,
    SCHEMA_PATH,
    ReferenceMarkersMissing,
    main,
    policy_reference,
    reference_part,
    schema_text,
    stale,
    with_reference,
    write,
)
from gatehouse.policy_output import PolicyComparison, comparison_json, history_json
from tests.unit.test_policy_diff import base, changed

ROOT = Path(__file__).resolve().parents[2]
HAND_WRITTEN_BEFORE = "# Policies\n\nHow to change a policy, in our words.\n\n"
HAND_WRITTEN_AFTER = "\n## After the reference\n\nStill ours.\n"


def docs_root(tmp_path: Path, text: str) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / REFERENCE_PATH).write_text(text, encoding="utf-8")
    return tmp_path


def between_markers(inside: str) -> str:
    return f"{HAND_WRITTEN_BEFORE}{BEGIN_MARKER}\n{inside}{END_MARKER}{HAND_WRITTEN_AFTER}"


# --- the markers -----------------------------------------------------------------------------


def test_writing_replaces_only_the_part_between_the_markers(tmp_path: Path) -> None:
    root = docs_root(tmp_path, between_markers("an old reference\n"))

    assert stale(root) == [root / SCHEMA_PATH, root / REFERENCE_PATH]
    write(root)

    text = (root / REFERENCE_PATH).read_text(encoding="utf-8")
    assert text == between_markers(policy_reference())
    assert text.startswith(HAND_WRITTEN_BEFORE)
    assert text.endswith(HAND_WRITTEN_AFTER)
    assert (root / SCHEMA_PATH).read_text(encoding="utf-8") == schema_text()
    assert stale(root) == []


def test_writing_twice_changes_nothing(tmp_path: Path) -> None:
    root = docs_root(tmp_path, between_markers(""))
    write(root)
    first = (root / REFERENCE_PATH).read_text(encoding="utf-8")

    write(root)

    assert (root / REFERENCE_PATH).read_text(encoding="utf-8") == first


def test_a_missing_reference_file_is_written_with_its_markers(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()

    write(tmp_path)

    written = (tmp_path / REFERENCE_PATH).read_text(encoding="utf-8")
    assert written == f"{BEGIN_MARKER}\n{policy_reference()}{END_MARKER}\n"


@pytest.mark.parametrize(
    "text",
    [
        "# Policies\n\nno markers at all\n",
        f"{BEGIN_MARKER}\nonly the beginning\n",
        f"only the end\n{END_MARKER}\n",
        f"{END_MARKER}\nbackwards\n{BEGIN_MARKER}\n",
        f"{BEGIN_MARKER}\n{BEGIN_MARKER}\n{END_MARKER}\n",
    ],
    ids=["none", "no end", "no beginning", "end first", "begin twice"],
)
def test_a_file_without_its_markers_is_refused_and_left_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    root = docs_root(tmp_path, text)

    with pytest.raises(ReferenceMarkersMissing):
        with_reference(text, policy_reference())
    assert main(["--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert (root / REFERENCE_PATH).read_text(encoding="utf-8") == text
    assert not (root / SCHEMA_PATH).exists()  # nothing is written when one file cannot be
    assert main(["--root", str(root), "--check"]) == 1
    assert f"{root / REFERENCE_PATH} is stale" in capsys.readouterr().err


def test_check_mode_passes_on_this_repository(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(ROOT), "--check"]) == 0
    assert capsys.readouterr() == ("", "")


def test_the_committed_file_keeps_its_hand_written_part() -> None:
    committed = (ROOT / REFERENCE_PATH).read_text(encoding="utf-8")
    before = committed.partition(BEGIN_MARKER)[0]

    assert reference_part(committed) == policy_reference()
    assert "## Changing a stage's policy" in before
    assert "--reason" in before


# --- what the reference holds ----------------------------------------------------------------


@pytest.mark.parametrize("section", list(sections().values()), ids=lambda s: s.name)
def test_every_field_has_a_heading_a_summary_and_an_example(section: Section) -> None:
    reference = policy_reference()
    for field in section.fields:
        heading = f"#### {section.name}.{field.name}\n"
        assert heading in reference
        entry = reference.split(heading, 1)[1].split("\n#", 1)[0]
        assert field.summary in entry
        assert re.search(rf"```yaml\n{re.escape(field.name)}:", entry), entry


# --- the hand-written part documents what the commands print ---------------------------------


def test_every_member_of_diff_json_is_documented() -> None:
    before = (ROOT / REFERENCE_PATH).read_text(encoding="utf-8").partition(BEGIN_MARKER)[0]
    new = changed(lambda d: d["rules"][0].update(actions=["GET", "HEAD"]))
    shape = comparison_json(
        PolicyComparison("p.yaml", "sha256:x", None, None, diff_documents(base(), new))
    )
    documented = set(re.findall(r'"(\w+)":', before)) | set(re.findall(r"`(\w+)`", before))

    members = {*shape, *shape["proposed"], *shape["changes"][0], *shape["changes"][0]["fields"][0]}
    assert members - documented == set()
    assert json.loads(json.dumps(shape)) == shape


def test_every_member_of_history_json_is_documented() -> None:
    from chalicelib.policy.store import Activation

    before = (ROOT / REFERENCE_PATH).read_text(encoding="utf-8").partition(BEGIN_MARKER)[0]
    activation = Activation(1, 1, "sha256:x", None, None, "apply", "t", "local:me", {}, "why")
    history = before.partition("### History")[2]

    assert set(history_json([activation])[0]) - set(re.findall(r"`(\w+)`", history)) == set()
