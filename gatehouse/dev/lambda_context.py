"""The Lambda context object, for handlers invoked in process (the local stack and the tests)."""

from __future__ import annotations

import time
import uuid

REGION = "us-east-1"
ACCOUNT = "123456789012"


class LambdaContext:
    """The context object the Lambda Python runtime passes to handlers.

    Parameters
    ----------
    function_name:
        The function the invocation notionally runs in; it names the ARN and
        the log group.
    aws_request_id:
        The invocation's id. A fresh UUID when not given, as Lambda assigns
        one per invocation; tests pin it to find the invocation again in what
        the handler recorded.
    timeout_seconds:
        The function's timeout, counted from construction, for
        :meth:`get_remaining_time_in_millis`.
    """

    def __init__(
        self,
        function_name: str = "gatehouse-dev",
        *,
        aws_request_id: str | None = None,
        timeout_seconds: float = 29.0,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        self.memory_limit_in_mb = 1024
        self.aws_request_id = aws_request_id if aws_request_id is not None else str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout (never below 0)."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))
