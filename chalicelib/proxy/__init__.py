"""Forwarding authorized requests upstream with a signed identity assertion.

Exceptions::

    ProxyError
     ├── UpstreamError                 no usable upstream answer (``.status`` 502 or 504)
     │    ├── UpstreamTimeout          504
     │    ├── UpstreamUnavailable      502
     │    ├── UpstreamRequestInvalid   400
     │    └── UpstreamResponseTooLarge 502
    SigningError                       the assertion could not be signed (503; the
                                       signing key's error, from chalicelib.aws)
"""

from chalicelib.proxy.answers import ProxyResponse
from chalicelib.proxy.errors import (
    ProxyError,
    SigningError,
    UpstreamError,
    UpstreamResponseTooLarge,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from chalicelib.proxy.handler import Proxy

__all__ = [
    "Proxy",
    "ProxyError",
    "ProxyResponse",
    "SigningError",
    "UpstreamError",
    "UpstreamResponseTooLarge",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]
