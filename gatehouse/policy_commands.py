"""``gatehouse policy validate|apply FILE``."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from chalicelib.policy import PolicyRecord, PolicyStore, parse_policy

if TYPE_CHECKING:
    from chalicelib.policy import PolicyDocument
    from gatehouse.target import Target


class PolicyFileError(ValueError):
    """The policy file cannot be read or parsed."""


def load_policy_file(path: Path) -> dict[str, Any]:
    """Read a YAML or JSON policy document.

    Raises
    ------
    PolicyFileError
        When the file is missing or not YAML/JSON.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyFileError(f"{path}: {exc.strerror}") from exc
    try:
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise PolicyFileError(
            f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"
        ) from exc
    if not isinstance(document, dict):
        raise PolicyFileError(f"{path}: a policy must be a mapping")
    return document


def validate(path: Path) -> PolicyDocument:
    """Validate the file; raise PolicyInvalid listing every problem."""
    return parse_policy(load_policy_file(path), source_name=str(path))


def apply(target: Target, path: Path) -> PolicyRecord:
    """Validate, store and activate the policy in ``path``."""
    document = load_policy_file(path)
    parse_policy(document, source_name=str(path))
    store = PolicyStore(target.client("dynamodb"), target.policy_table)
    return store.publish(document, actor=_operator(target))


def _operator(target: Target) -> str:
    if target.local:
        return f"local:{getpass.getuser()}"
    arn = target.client("sts").get_caller_identity()["Arn"]
    return str(arn)
