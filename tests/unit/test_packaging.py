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


def test_duckdb_is_imported_only_by_the_parquet_writer_inside_its_function() -> None:
    # DuckDB never ships in the functions' package: the OCSF export writes Parquet with
    # it (docs/ocsf.md), from a layer of its own in AWS, and imports it inside the
    # function, so nothing else pays for it and a package without it fails clearly.
    importers = sorted(
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "chalicelib").rglob("*.py")
        if re.search(r"^\s*(import duckdb|from duckdb)", path.read_text(), re.MULTILINE)
    )
    assert importers == ["chalicelib/ocsf/parquet.py"]
    source = (ROOT / "chalicelib" / "ocsf" / "parquet.py").read_text()
    assert not re.search(r"^(import duckdb|from duckdb)", source, re.MULTILINE)


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
