from __future__ import annotations

from typing import Any

import app
from tests.functional.conftest import queued_events
from tests.helpers import load_event, make_token


def test_authorizer_allows_and_audits(stage: Any, rsa_key: Any, aws: Any) -> None:
    event = load_event("authorizer_request")
    token = make_token(rsa_key, "RS256", "rsa-1")
    event["headers"]["Authorization"] = f"Bearer {token}"
    event["multiValueHeaders"]["Authorization"] = [f"Bearer {token}"]
    answer = app.gatehouse_authorizer(event, None)
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    events = queued_events(aws)
    assert [e["decision"]["outcome"] for e in events] == ["allow"]
    assert token not in str(events)
