"""Kept for importers not yet moved: the one evaluator is tests/iam/evaluate.py (@cloud-copilot/iam-simulate).
New code imports from tests.iam.evaluate and tests.iam.event_patterns directly."""

from tests.iam.evaluate import ALLOW, DENY, IMPLICIT_DENY, allowed, evaluate
from tests.iam.evaluate import wildcard_match as _wild
from tests.iam.event_patterns import event_matches

__all__ = ["ALLOW", "DENY", "IMPLICIT_DENY", "allowed", "evaluate", "_wild", "event_matches"]
