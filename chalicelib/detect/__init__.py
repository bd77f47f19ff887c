"""Near-real-time detection: rules over the audit trail, and the alerts they raise.

What it offers: the rules (:func:`~chalicelib.detect.rules.load_rules_file`,
:func:`~chalicelib.detect.rules.default_rules`, a closed set of kinds in
:mod:`chalicelib.detect.kinds`), the :class:`~chalicelib.detect.detector.Detector`
the audit writer runs on each committed batch, the scheduled check
(:func:`~chalicelib.detect.checks.run_checks`), the window state
(:mod:`chalicelib.detect.state`) and the alerts' channels
(:mod:`chalicelib.detect.alerts`). ``docs/detection.md`` is the reference.

Exceptions::

    DetectError
     ├── RulesInvalid          a rules file with problems (every one listed)
     └── DetectionUnavailable  the window state or an alert channel failed
"""

from chalicelib.detect.errors import DetectError, DetectionUnavailable, RulesInvalid

__all__ = ["DetectError", "DetectionUnavailable", "RulesInvalid"]
