"""What detection raises.

::

    DetectError
     ├── RulesInvalid          a rules file that cannot be used (``problems`` lists every one)
     └── DetectionUnavailable  the window state, or the audit queue, cannot be used now
"""

from __future__ import annotations


class DetectError(Exception):
    """Detection could not do what was asked."""


class RulesInvalid(DetectError):
    """A rules document with problems; ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class DetectionUnavailable(DetectError):
    """The window state (DynamoDB) or the audit queue (the alert events) failed.

    SNS or EventBridge refusing an alert raises nothing: the alert stays
    pending and is sent again (:mod:`chalicelib.detect.alerts`).
    """
