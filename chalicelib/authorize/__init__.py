"""The REQUEST authorizer: who is calling, and may they?

Offers :class:`Decider` (one parsed request in, one :class:`Outcome` out: the
decision core the proxy shares) and :class:`Authorizer` (an outcome turned
into API Gateway's answer).

Exceptions::

    Unauthorized        no valid credentials; API Gateway answers 401
    AuthorizerFailure   Gatehouse cannot decide or audit; API Gateway answers 503
"""

from chalicelib.authorize.decider import Decider, Outcome
from chalicelib.authorize.handler import (
    Authorizer,
    AuthorizerAnswer,
    AuthorizerFailure,
    Unauthorized,
)

__all__ = [
    "Authorizer",
    "AuthorizerAnswer",
    "AuthorizerFailure",
    "Decider",
    "Outcome",
    "Unauthorized",
]
