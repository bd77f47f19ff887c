"""What a witness cosigned last, per log: kept where the log's operator cannot reach.

The Lambda keeps it in a DynamoDB table of its own account
(:class:`TableWitnessState`, one item per origin, moved only by a
conditional write); a witness run from a laptop or a CI job keeps it in a
JSON file (:class:`FileWitnessState`).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from chalicelib.witness.errors import WitnessStateConflict, WitnessUnavailable


@dataclass(frozen=True, slots=True)
class Cosigned:
    """The newest checkpoint a witness cosigned for one log."""

    tree_size: int
    root: str  # hex
    digest_key: str
    note: str  # the checkpoint as cosigned (text and signature lines)
    at: int  # the cosignature's timestamp

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Cosigned:
        return cls(
            int(value["tree_size"]),
            str(value["root"]),
            str(value["digest_key"]),
            str(value["note"]),
            int(value["at"]),
        )


class WitnessState(Protocol):
    """Where a witness keeps what it cosigned last."""

    def get(self, origin: str) -> Cosigned | None:
        """The newest checkpoint cosigned for ``origin`` (None: never)."""

    def put(self, origin: str, cosigned: Cosigned, previous: Cosigned | None) -> None:
        """Record ``cosigned``, if the store still holds ``previous``.

        Raises
        ------
        WitnessStateConflict
            When another run recorded something else meanwhile.
        WitnessUnavailable
            When the store cannot be written.
        """


class FileWitnessState:
    """The state in a JSON file (``{origin: cosigned}``), replaced atomically."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def _read(self) -> dict[str, Any]:
        try:
            value = json.loads(self._path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise WitnessUnavailable(f"cannot read the witness state {self._path}: {exc}") from exc
        if not isinstance(value, dict):
            raise WitnessUnavailable(f"{self._path} is not a witness state file")
        return value

    def get(self, origin: str) -> Cosigned | None:
        found = self._read().get(origin)
        try:
            return Cosigned.from_dict(found) if found else None
        except (KeyError, TypeError, ValueError) as exc:
            raise WitnessUnavailable(f"{self._path} holds a malformed entry for {origin}") from exc

    def put(self, origin: str, cosigned: Cosigned, previous: Cosigned | None) -> None:
        with self._lock:
            current = self._read()
            if current.get(origin) != (asdict(previous) if previous else None):
                raise WitnessStateConflict(f"the witness state for {origin} moved meanwhile")
            current[origin] = asdict(cosigned)
            temporary = self._path.with_suffix(".tmp")
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                temporary.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
                os.replace(temporary, self._path)
            except OSError as exc:
                raise WitnessUnavailable(
                    f"cannot write the witness state {self._path}: {exc}"
                ) from exc


class TableWitnessState:
    """The state in a DynamoDB table (partition key ``origin``, a string).

    Parameters
    ----------
    dynamodb:
        A boto3 DynamoDB client of the witness's own account.
    table:
        The table's name.
    """

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._dynamodb = dynamodb
        self._table = table

    def get(self, origin: str) -> Cosigned | None:
        try:
            item = self._dynamodb.get_item(
                TableName=self._table, Key={"origin": {"S": origin}}, ConsistentRead=True
            ).get("Item")
        except Exception as exc:
            raise WitnessUnavailable(f"cannot read the witness table: {exc}") from exc
        if not item:
            return None
        try:
            return Cosigned.from_dict(json.loads(item["cosigned"]["S"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise WitnessUnavailable(
                f"the witness table holds a malformed item for {origin}"
            ) from exc

    def put(self, origin: str, cosigned: Cosigned, previous: Cosigned | None) -> None:
        from botocore.exceptions import ClientError

        item = {
            "origin": {"S": origin},
            "cosigned": {"S": json.dumps(asdict(cosigned), sort_keys=True)},
            "tree_size": {"N": str(cosigned.tree_size)},
        }
        if previous is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(origin)"}
        else:
            condition = {
                "ConditionExpression": "cosigned = :previous",
                "ExpressionAttributeValues": {
                    ":previous": {"S": json.dumps(asdict(previous), sort_keys=True)}
                },
            }
        try:
            self._dynamodb.put_item(TableName=self._table, Item=item, **condition)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise WitnessStateConflict(
                    f"the witness state for {origin} moved meanwhile"
                ) from exc
            raise WitnessUnavailable(f"cannot write the witness table: {exc}") from exc
        except Exception as exc:
            raise WitnessUnavailable(f"cannot write the witness table: {exc}") from exc
