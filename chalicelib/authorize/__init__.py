"""The REQUEST authorizer: who is calling, and may they?

Exceptions::

    Unauthorized        no valid credentials; API Gateway answers 401
    AuthorizerFailure   Gatehouse cannot decide or audit; API Gateway answers 503
"""

from chalicelib.authorize.handler import Authorizer, AuthorizerFailure, Unauthorized, Verdict

__all__ = ["Authorizer", "AuthorizerFailure", "Unauthorized", "Verdict"]
