"""The tests' event-pattern matcher is moto's, with the operators the estate's rules use and a check that a
misspelt operator fails loudly instead of matching every event."""

import pytest

from tests.iam.event_patterns import event_matches

FINDING = {
    "source": "aws.guardduty",
    "detail-type": "GuardDuty Finding",
    "detail": {"severity": 7.5, "resource": {"resourceType": "Instance"}, "tags": ["a", "b"]},
}


def test_exact_values_match_a_nested_field_and_any_element_of_a_list():
    assert event_matches({"source": ["aws.guardduty"], "detail": {"resource": {"resourceType": ["Instance"]}}}, FINDING)
    assert event_matches({"detail": {"tags": ["b"]}}, FINDING)
    assert not event_matches({"detail": {"resource": {"resourceType": ["S3Bucket"]}}}, FINDING)


def test_numeric_ranges_bound_the_severity():
    assert event_matches({"detail": {"severity": [{"numeric": [">=", 7]}]}}, FINDING)
    assert not event_matches({"detail": {"severity": [{"numeric": [">=", 8]}]}}, FINDING)
    assert event_matches('{"detail": {"severity": [{"numeric": [">", 7, "<=", 8]}]}}', FINDING)


def test_prefix_matches_the_start_of_a_string():
    assert event_matches({"detail-type": [{"prefix": "GuardDuty"}]}, FINDING)
    assert not event_matches({"detail-type": [{"prefix": "Duty"}]}, FINDING)


def test_anything_but_exists_wildcard_and_or_follow_eventbridge():
    assert event_matches({"source": [{"anything-but": ["aws.ec2"]}]}, FINDING)
    assert not event_matches({"source": [{"anything-but": "aws.guardduty"}]}, FINDING)
    assert event_matches({"detail": {"missing": [{"exists": False}]}}, FINDING)
    assert not event_matches({"detail": {"severity": [{"exists": False}]}}, FINDING)
    assert event_matches({"detail-type": [{"wildcard": "Guard*Finding"}]}, FINDING)
    assert event_matches({"$or": [{"source": ["aws.ec2"]}, {"detail": {"severity": [{"numeric": [">", 7]}]}}]}, FINDING)


def test_a_missing_field_does_not_match():
    assert not event_matches({"detail": {"missing": ["x"]}}, FINDING)


def test_a_misspelt_operator_is_an_error_not_a_match():
    with pytest.raises(ValueError, match="prefx"):
        event_matches({"detail-type": [{"prefx": "GuardDuty"}]}, FINDING)
    with pytest.raises(ValueError, match="prefx"):
        event_matches({"source": [{"anything-but": {"prefx": "aws."}}]}, FINDING)


def test_moto_still_lacks_a_check_for_unknown_operators():
    """When this fails, moto rejects or ignores unknown operators itself: drop _check_operators."""
    from moto.events.models import EventPattern

    assert EventPattern.load('{"detail-type": [{"prefx": "nothing like it"}]}').matches_event(FINDING)
