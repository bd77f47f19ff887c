"""The OCSF mapping: every event type of the trail, each record validated against OCSF 1.7.0.

The events are the golden wire lines of ``tests/fixtures/audit_wire`` (one
per kind of event the producers write); each record is checked against the
OCSF schema that pydantic-ocsf ships (``tests/ocsf_validation.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.ocsf import OCSF_VERSION, LedgerPosition, NotMappable, to_ocsf
from chalicelib.ocsf.mapping import to_ocsf_line
from tests.ocsf_validation import SCHEMA_VERSION, validate_record

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "audit_wire" / "golden.json"
EVENTS: dict[str, str] = json.loads(GOLDEN.read_text())
POSITION = LedgerPosition(
    sequence=41,
    origin="s3.amazonaws.com/gatehouse-test-audit",
    tree_size=64,
    root="ab" * 32,
    object_key="audit/v1/events/dt=2026-11-28/hour=16/0000000000000040-r3.ndjson.gz",
)


def event(name: str) -> dict[str, Any]:
    return dict(json.loads(EVENTS[name]))


# name -> (class_uid, activity_id, status_id, severity_id)
CASES = {
    "decision": (4002, 3, 1, 1),
    "decision_denied_anonymous": (4002, 2, 2, 2),
    "decision_elevated_aws": (4002, 7, 1, 1),
    "decision_lone_surrogate": (4002, 3, 2, 2),
    "decision_random_id": (4002, 3, 1, 1),
    "decision_browser_session": (4002, 3, 1, 1),
    "response": (4002, 6, 1, 1),
    "gateway_all_dashes": (4002, 99, 2, 2),
    "gateway_allowed_authorizer_cached": (4002, 3, 1, 1),
    "gateway_allowed_authorizer_called": (4002, 3, 1, 1),
    "gateway_denied_cached_policy": (4002, 2, 2, 2),
    "gateway_integration_failure": (4002, 7, 2, 2),
    "gateway_throttled": (4002, 6, 2, 2),
    "gateway_unauthorized_missing_token": (4002, 3, 2, 2),
    "gateway_waf_blocked": (4002, 6, 2, 2),
    "session_signed_in": (3002, 1, 1, 1),
    "session_sign_in_failed": (3002, 1, 2, 2),
    "session_revoked_by_operator": (3002, 2, 1, 1),
    "policy_change": (3004, 3, 1, 1),
    "grant": (3004, 10, 1, 1),
    "grant_by_api": (3004, 1, 1, 1),
    "signing_key": (3004, 1, 1, 1),
    "alert_deny_burst": (2004, 1, None, 3),
}


def test_every_golden_event_has_a_case() -> None:
    assert set(CASES) == set(EVENTS)


@pytest.mark.parametrize("name", sorted(CASES), ids=sorted(CASES))
def test_each_event_maps_to_its_class_and_conforms_to_ocsf(name: str) -> None:
    record = to_ocsf(event(name), POSITION)

    assert validate_record(record) == []
    class_uid, activity_id, status_id, severity_id = CASES[name]
    assert (
        record["class_uid"],
        record["activity_id"],
        record.get("status_id"),
        record["severity_id"],
    ) == (class_uid, activity_id, status_id, severity_id)
    assert record["type_uid"] == class_uid * 100 + activity_id
    assert record["category_uid"] == class_uid // 1000


@pytest.mark.parametrize("name", sorted(CASES), ids=sorted(CASES))
def test_each_record_names_its_event_its_sequence_and_its_tree_head(name: str) -> None:
    source = event(name)
    record = to_ocsf(source, POSITION)

    metadata = record["metadata"]
    assert metadata["uid"] == source["event_id"]
    assert metadata["product"]["name"] == "Gatehouse"
    assert metadata["version"] == OCSF_VERSION == SCHEMA_VERSION
    assert metadata["sequence"] == 41
    assert metadata["original_time"] == source["event_time"]
    assert record["unmapped"]["gatehouse.ledger.origin"] == POSITION.origin
    assert record["unmapped"]["gatehouse.ledger.tree_size"] == "64"
    assert record["unmapped"]["gatehouse.ledger.root"] == "ab" * 32
    assert record["unmapped"]["gatehouse.ledger.object"] == POSITION.object_key
    assert record["unmapped"]["gatehouse.event_type"] == source["event_type"]


def test_a_decision_names_who_what_and_under_which_policy() -> None:
    source = event("decision_elevated_aws")
    record = to_ocsf(source, POSITION)

    assert record["actor"]["user"]["uid"] == source["principal"]["subject"]
    assert record["actor"]["authorizations"] == [
        {
            "decision": "allow",
            "policy": {
                "name": "gatehouse-policy",
                "uid": source["decision"]["policy_checksum"],
                "version": str(source["decision"]["policy_version"]),
            },
        }
    ]
    assert record["http_request"]["http_method"] == "PUT"
    assert record["http_request"]["url"]["path"] == source["resource"]["path"]
    assert record["src_endpoint"]["ip"] == source["source"]["ip"]
    assert record["firewall_rule"]["uid"] == source["decision"]["matched_rules"][0]
    assert (record["action_id"], record["disposition_id"]) == (1, 1)
    assert record["unmapped"]["gatehouse.elevation.grant_id"] == source["elevation"]["grant_id"]


def test_a_credential_failure_is_unauthorized_and_a_policy_denial_blocked() -> None:
    anonymous = event("decision_denied_anonymous")
    record = to_ocsf(anonymous, POSITION)
    assert record["status_code"] == anonymous["decision"]["reasons"][0]
    expected = 26 if anonymous["decision"]["reasons"][0] == "missing_credentials" else 2
    assert (record["action_id"], record["disposition_id"]) == (2, expected)


def test_a_lone_surrogate_becomes_a_replacement_character() -> None:
    record = to_ocsf(event("decision_lone_surrogate"), POSITION)
    assert "\ufffd" in record["http_request"]["user_agent"]
    record["http_request"]["user_agent"].encode("utf-8")


def test_a_failed_sign_in_without_a_principal_still_has_a_user() -> None:
    source = event("session_sign_in_failed")
    record = to_ocsf(source, POSITION)
    assert record["user"]
    assert record["status_code"] == source["session"]["reason"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"activity_id": 55}, "activity_id"),
        ({"severity_id": 9}, "severity_id"),
        ({"time": "yesterday"}, "time"),
        ({"http_response": {"length": 3}}, "code"),
        ({"disposition_id": 1234}, "disposition_id"),
        ({"dispositon": "typo"}, "dispositon"),
        ({"metadata": {"version": "1.7.0", "product": {"name": "G", "nmae": "x"}}}, "nmae"),
        ({"http_request": {"http_method": "FETCH"}}, "http_method"),
    ],
    ids=[
        "unknown activity",
        "unknown severity",
        "time not an integer",
        "response without code",
        "unknown disposition",
        "unknown member",
        "unknown nested member",
        "unknown method",
    ],
)
def test_the_validator_refuses_what_ocsf_does_not_allow(
    change: dict[str, Any], problem: str
) -> None:
    record = {**to_ocsf(event("response"), POSITION), **change}
    problems = validate_record(record)
    assert problems
    assert problem in " ".join(problems)


def test_a_line_must_carry_the_sequence_it_is_exported_at() -> None:
    line = EVENTS["response"].encode()[:-1] + b',"ledger":{"sequence":41}}'
    assert to_ocsf_line(line, POSITION)["metadata"]["sequence"] == 41
    with pytest.raises(NotMappable, match="sequence 42"):
        to_ocsf_line(line, LedgerPosition(42, "o", 64, "ab", "k"))


@pytest.mark.parametrize(
    "broken",
    [
        {"event_type": "telepathy"},
        {"event_id": None},
        {"event_time": "not a time"},
    ],
    ids=["unknown type", "no id", "bad time"],
)
def test_what_is_not_a_stored_event_is_not_mapped(broken: dict[str, Any]) -> None:
    with pytest.raises(NotMappable):
        to_ocsf({**event("decision"), **broken}, POSITION)


@pytest.mark.parametrize(
    ("action", "activity"),
    [("apply", 10), ("rollback", 10), ("activated", 3)],
    ids=["apply", "rollback", "other"],
)
def test_a_policy_version_made_active_is_an_activation(action: str, activity: int) -> None:
    source = event("policy_change")
    source["policy_change"] = {**source["policy_change"], "action": action}
    record = to_ocsf(source, POSITION)
    assert record["activity_id"] == activity
    assert record["entity"]["version"] == str(source["policy_change"]["version"])
    assert validate_record(record) == []
