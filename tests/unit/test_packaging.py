"""What Lambda gets is exactly what the package declares, pinned."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from chalicelib.apigw.chalice_adapter import PINNED_CHALICE_VERSION

ROOT = Path(__file__).resolve().parents[2]


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_requirements_txt_equals_the_runtime_dependencies() -> None:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    requirements = sorted(
        line.strip() for line in lines if line.strip() and not line.startswith("#")
    )
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert requirements == sorted(project["dependencies"])
    assert all(
        re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", line) for line in requirements
    ), requirements


def test_tools_never_ship_to_lambda() -> None:
    text = (ROOT / "requirements.txt").read_text().lower()
    for tool in ("chalice", "boto3", "moto", "pytest", "pyyaml", "pyjwt", "sqlglot", "duckdb"):
        assert not re.search(rf"^{tool}\b", text, re.MULTILINE), tool


def test_no_function_imports_duckdb() -> None:
    # DuckDB is the CLI's query engine and never ships in the functions' package: the OCSF
    # export writes Parquet in pure Python (chalicelib/ocsf/parquet_writer.py).
    importers = sorted(
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "chalicelib").rglob("*.py")
        if re.search(r"^\s*(import duckdb|from duckdb)", path.read_text(), re.MULTILINE)
    )
    assert importers == []


def test_chalice_is_pinned_to_the_version_the_adapter_was_verified_against() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    pins = [
        dep
        for extra in project["optional-dependencies"].values()
        for dep in extra
        if dep.startswith("chalice")
    ]
    assert pins == [f"chalice=={PINNED_CHALICE_VERSION}"]
