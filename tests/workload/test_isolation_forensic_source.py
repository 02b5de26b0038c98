"""`bakehouse:workload.incidentResponse.forensicSource`: the one source an isolation group admits,
validated with the rest of the section, and written where the playbook reads it."""

from __future__ import annotations

import pytest

from components.workload.workload_config import load_workload_config
from tests.workload._workload_support import DEV_SECTION, workload_cfg, workload_problems


def _with(source):
    return {**DEV_SECTION, "incidentResponse": {"minSeverity": 5.0, "forensicSource": source}}


@pytest.mark.parametrize("source", ["10.99.0.0/24", "sg-0123456789abcdef0"])
def test_a_forensic_cidr_or_security_group_is_taken_as_given(source):
    assert load_workload_config(workload_cfg(_with(source))).forensic_source == source


def test_no_forensic_source_means_the_isolation_group_admits_nothing():
    assert load_workload_config(workload_cfg(DEV_SECTION)).forensic_source is None


@pytest.mark.parametrize("source", ["0.0.0.0/0", "10.0.0.0/8", "10.99.0.1/24", "forensics", 42])
def test_a_forensic_source_that_would_open_the_isolation_group_wide_or_is_not_a_source_is_refused(source):
    [problem] = [p for p in workload_problems(_with(source)) if "forensicSource" in p]
    assert "a CIDR of /16 or narrower" in problem


# --- the component writes it where the playbook reads it -------------------------------------------------
def _component(source):
    import pulumi

    from components.lib.providers import account_provider
    from components.workload.incident_response import IncidentResponse, IncidentResponseArgs
    from tools.mockrun import run_program

    account, region, security = "666666666666", "eu-west-1", "222222222222"

    def program():
        provider = account_provider(
            "unit-account",
            account_id=account,
            region=region,
            role_arn=f"arn:aws:iam::{account}:role/BakehouseDeploy",
            tags={},
            session_name="u",
        )
        IncidentResponse(
            "ir",
            IncidentResponseArgs(
                account_id=account,
                region=region,
                home_region=region,
                security_account_id=security,
                min_severity=7.0,
                evidence_bucket=f"bakehouse-evidence-{security}-{region}",
                security_topic_arn=f"arn:aws:sns:{region}:{security}:bakehouse-security",
                kms_key_arn=f"arn:aws:kms:{region}:{account}:key/k",
                access_log_bucket="access-logs",
                forensic_source=source,
            ),
            opts=pulumi.ResourceOptions(provider=provider),
        )

    return run_program(program)


def test_the_configured_forensic_source_is_written_where_the_playbook_reads_it():
    from handlers.isolate import FORENSIC_SOURCE_PARAMETER

    [parameter] = _component("10.99.0.0/24").of_type("aws:ssm/parameter:Parameter")
    value = parameter.inputs["value"]
    value = value.get("value") if isinstance(value, dict) else value  # the provider marks values secret
    assert parameter.inputs["name"] == FORENSIC_SOURCE_PARAMETER and value == "10.99.0.0/24"
    assert _component(None).of_type("aws:ssm/parameter:Parameter") == []


def test_the_workload_stack_hands_its_configured_forensic_source_to_the_playbook():
    from tools.mockrun import cached_run

    run = cached_run("dev", overrides={"bakehouse:workload": _with("10.99.0.0/24")})
    [parameter] = [p for p in run.of_type("aws:ssm/parameter:Parameter") if p.name.endswith("-forensic-source")]
    value = parameter.inputs["value"]
    assert (value.get("value") if isinstance(value, dict) else value) == "10.99.0.0/24"
