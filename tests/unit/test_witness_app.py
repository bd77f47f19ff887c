"""The witness's Chalice project: its one function, its settings, its pinned requirements."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from chalicelib.witness.settings import PREFIX, WitnessSettings

PROJECT = Path(__file__).resolve().parents[2]
WITNESS = PROJECT / "witness"


def _load_app() -> object:
    spec = importlib.util.spec_from_file_location("witness_app", WITNESS / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(WITNESS))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(WITNESS))
    return module


def test_the_project_is_one_scheduled_function_running_the_witness() -> None:
    from chalicelib.witness import handler

    module = _load_app()
    app = module.app  # type: ignore[attr-defined]
    sources = app.event_sources
    assert [(source.name, source.schedule_expression) for source in sources] == [
        ("witness", "rate(5 minutes)")
    ]
    assert (WITNESS / "chalicelib").resolve() == PROJECT / "chalicelib"
    assert module.handler is handler  # type: ignore[attr-defined]


def test_the_stage_config_sets_exactly_the_settings_the_witness_reads() -> None:
    config = json.loads((WITNESS / ".chalice" / "config.json").read_text())
    variables = config["stages"]["prod"]["environment_variables"]
    assert set(variables) == {
        f"{PREFIX}{name}" for name in ("NAME", "KEY_SECRET", "STATE_TABLE", "ALERT_TOPIC", "LOGS")
    }
    assert config["stages"]["prod"]["manage_iam_role"] is False
    # The placeholders are refused until replaced: a half-configured witness never runs.
    with pytest.raises(Exception, match="LOGS"):
        WitnessSettings.from_environment(variables)


def test_its_requirements_are_pinned_as_the_stage_functions_are() -> None:
    stage = dict(
        line.split("==", 1)
        for line in (PROJECT / "requirements.txt").read_text().splitlines()
        if "==" in line
    )
    for line in (WITNESS / "requirements.txt").read_text().splitlines():
        name, version = line.split("==", 1)
        assert stage[name] == version, name
