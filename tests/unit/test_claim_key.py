"""``claim_key`` is the JSON text of a claim value, fast path or not.

Rules and tokens are compared through it: if the fast path ever spelled a
value differently from the encoder, a claim could match one side only.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.policy.model import claim_key

SCALARS = st.one_of(
    st.text(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.none(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_claim_key_is_the_canonical_json_text(value: object) -> None:
    assert claim_key(value) == json.dumps(value, sort_keys=True, separators=(",", ":"))


@given(st.integers(min_value=0, max_value=2**53))
def test_numbers_strings_and_booleans_never_collide(number: int) -> None:
    keys = {claim_key(number), claim_key(str(number)), claim_key(number == 1)}
    assert len(keys) == 3
