"""AWS clients, built lazily and once per container; STS sessions and SigV4 for AWS upstreams.

Exceptions::

    AwsUpstreamError        an AWS upstream cannot be called (``.status``, ``.client_message``)
     ├── RoleUnavailable    STS unreachable, throttled or timed out (503)
     ├── RoleRefused        STS refused AssumeRole (502)
     ├── SessionTagTooLong  the principal's groups do not fit in a session tag (502)
     └── SigningFailed      the request could not be SigV4-signed (502)
"""

from chalicelib.aws.clients import AwsClients
from chalicelib.aws.errors import (
    AwsUpstreamError,
    RoleRefused,
    RoleUnavailable,
    SessionTagTooLong,
    SigningFailed,
)

__all__ = [
    "AwsClients",
    "AwsUpstreamError",
    "RoleRefused",
    "RoleUnavailable",
    "SessionTagTooLong",
    "SigningFailed",
]
