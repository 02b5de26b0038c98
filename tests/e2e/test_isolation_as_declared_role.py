"""Issue 16's isolation steps as the dev stack's declared incident-response role, moto enforcing its
policy: the evidence copies for the security account, the forensic-source rule on the isolation
group and a foreign instance profile, each with a statement removed as the negative control.
(tests/e2e/test_handlers_as_declared_roles.py runs the classic request; this one carries the
security account, the evidence key and a forensic source, as the document passes them.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from estate import naming
from handlers import isolate as iso
from tests.e2e import _declared_roles as roles
from tests.e2e._declared_scene import FINDING, HOME, ISOLATION_ROLE, declared, moto  # noqa: F401 (fixtures)
from tests.e2e._declared_scene import denied as _denied

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SECURITY = "222222222222"


def _scene(role: roles.DeclaredRole, profile_path: str = "/bakehouse/app/") -> tuple[iso.IsolateRequest, iso.Clients]:
    admin = roles.admin_session(role.account_id, HOME)
    ec2, iam = admin.client("ec2"), admin.client("iam")
    vpc = ec2.create_vpc(CidrBlock="10.16.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.16.1.0/24", AvailabilityZone=f"{HOME}a")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    ami = ec2.register_image(
        Name="app", RootDeviceName="/dev/xvda", BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}]
    )["ImageId"]
    iam.create_role(
        RoleName="app-role",
        Path=profile_path,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
            }
        ),
    )
    profile = iam.create_instance_profile(InstanceProfileName="app-profile", Path=profile_path)["InstanceProfile"]
    iam.add_role_to_instance_profile(InstanceProfileName="app-profile", RoleName="app-role")
    instance = ec2.run_instances(
        ImageId=ami,
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet, "Groups": [group]}],
        IamInstanceProfile={"Arn": profile["Arn"]},
    )["Instances"][0]["InstanceId"]
    admin.client("ssm").put_parameter(Name=iso.FORENSIC_SOURCE_PARAMETER, Value="10.99.0.0/24", Type="String")
    security = roles.admin_session(SECURITY, HOME)
    bucket = naming.bucket_name("evidence", SECURITY, HOME)
    security.client("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": HOME})
    topic = security.client("sns").create_topic(Name=naming.security_topic_name())["TopicArn"]
    roles.create(role, HOME)
    session = roles.role_session(role, HOME)
    clients = iso.Clients(*(session.client(n) for n in ("ec2", "autoscaling", "elbv2", "ssm", "iam", "s3", "sns")))
    request = iso.IsolateRequest(
        instance,
        FINDING,
        bucket,
        topic,
        security_account_id=SECURITY,
        evidence_key_arn=f"arn:aws:kms:{HOME}:{SECURITY}:alias/bakehouse-evidence",
    )
    return request, clients


def _isolate(role: roles.DeclaredRole, **scene) -> iso.IsolationResult:
    request, clients = _scene(role, **scene)
    with roles.iam_enforced():
        return iso.isolate(request, clients, now=lambda: datetime(2026, 11, 23, tzinfo=UTC), sleep=lambda _: None)


def test_the_declared_role_copies_shares_admits_the_forensic_source_and_revokes(moto, declared):
    result = {s.name: s for s in _isolate(declared("dev", ISOLATION_ROLE)).steps}
    assert result["share-snapshots"].changed and result["share-snapshots"].detail["shared_with"] == SECURITY
    assert result["swap-security-groups"].detail["forensic_source"] == "10.99.0.0/24"
    assert result["revoke-role-sessions"].changed


def test_a_foreign_profile_is_recorded_not_fatal_as_the_declared_role(moto, declared):
    result = {s.name: s for s in _isolate(declared("dev", ISOLATION_ROLE), profile_path="/vendor/").steps}
    assert result["revoke-role-sessions"].detail["foreign_profile"].endswith("/vendor/app-profile")
    assert result["stop-instance"].changed


@pytest.mark.parametrize(
    "sid, action",
    [
        ("ShareEvidenceCopiesWithSecurityOnly", "ec2:ModifySnapshotAttribute"),
        ("CopyEvidenceSnapshots", "ec2:CopySnapshot"),
        ("AdmitForensicSource", "ec2:AuthorizeSecurityGroupIngress"),
        ("ReadForensicSource", "ssm:GetParameter"),
    ],
)
def test_without_the_statement_the_step_is_denied_and_announced(moto, declared, sid, action):
    with pytest.raises(ClientError) as err:
        _isolate(declared("dev", ISOLATION_ROLE).without(sid))
    assert _denied(err.value, action)
