"""The handlers run as the roles the stacks declare, with moto enforcing those roles' policies: a
grant missing from the stack fails the run (issue 11, "handlers' end-to-end runs use moto's IAM
enforcement").

Each test runs a handler's plain function with clients acting as the declared role (trust and
policies from the mock run of `build` / `dev`, created in moto; see tests/e2e/_declared_roles.py),
and repeats one call with a statement removed, which must fail with AccessDenied: proof that
enforcement is on and that the statement is the one the run needs.

What this does not prove (moto 5.2.5, see _declared_roles for detail): that each statement's
Resource ARN and Condition fit the request (moto checks actions, except S3/SQS/sts:AssumeRole/IAM
role ARNs); KMS key policies, bucket and topic policies, SCPs and cross-account trust. Calls that a
fake answers (image deprecation, tags on a shared image) are put to moto's evaluator by action.
Not run here: handlers/catalog.py (Service Catalog is a fake, moto cannot enforce it) and
handlers/rescan.py (its scans run through the Inspector fake; its EC2/SSM calls use the same
factory role as publish and distribute).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from estate import naming
from handlers import distribute as dist
from handlers import isolate as iso
from handlers import lifecycle as life
from handlers import publish as pub
from tests.e2e import _declared_roles as roles
from tests.e2e._declared_scene import FINDING, HOME, ISOLATION_ROLE, declared, moto  # noqa: F401 (fixtures)
from tests.e2e._declared_scene import denied as _denied
from tests.fakes import ImageDeprecationEc2, SharedImageTagsEc2
from tests.fakes.seed import golden_ami

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COPY = "eu-central-1"
LIFECYCLE_ROLE = "BakehouseImageLifecycle"


def _as(role: roles.DeclaredRole) -> roles.DeclaredRole:
    roles.create(role, HOME)
    return role


def _approved_image(account_id: str, approved: bool = False) -> str:
    ec2 = roles.admin_session(account_id, HOME).client("ec2")
    tags = {
        "bakehouse:family": "al2023",
        "bakehouse:inspector-verdict": "PASS",
        **({"bakehouse:approved": "true"} if approved else {}),
    }
    return golden_ami(ec2, "bakehouse-al2023-1", tags)


# --- publish: the factory automation role ------------------------------------------------------------
def _publish(factory: roles.DeclaredRole) -> pub.PublishResult:
    image = _approved_image(factory.account_id)
    as_factory = roles.role_session(_as(factory), HOME)
    with roles.iam_enforced():
        return pub.publish(
            pub.PublishRequest(image, "al2023", "alice"), ec2=as_factory.client("ec2"), ssm=as_factory.client("ssm")
        )


def test_publish_runs_as_the_factory_automation_role(moto, declared):
    result = _publish(declared("build", naming.FACTORY_AUTOMATION_ROLE))
    assert result.changed == ("history", "latest", "tag")


def test_publish_without_the_image_registry_grant_is_denied_put_parameter(moto, declared):
    factory = declared("build", naming.FACTORY_AUTOMATION_ROLE).without("ImageRegistry")
    with pytest.raises(ClientError) as err:
        _publish(factory)
    assert _denied(err.value, "ssm:PutParameter")


# --- distribute: the factory role, and each workload account's publisher role ------------------------
WORKLOAD_OU = "arn:aws:organizations::111111111111:ou/o-exampleorg01/ou-ab12-wkld0001"


class RoleClients(dist.AwsClients):
    """The handler's own client factory over factory-role credentials: the publisher role is
    assumed by the handler, under enforcement. Tags on a shared image go through the fake moto
    lacks (tests/fakes/shared_image_tags.py), with moto's decision on ec2:CreateTags first."""

    def __init__(self, factory_session, publisher: roles.DeclaredRole):
        super().__init__(publisher.name, HOME, session=factory_session)
        self.publisher, self.shared_tags = publisher, {}

    def target(self, account_id, service, region):
        inner = super().target(account_id, service, region)
        if service != "ec2":
            return inner
        fake = SharedImageTagsEc2(inner, account_id, lambda r: self.build("ec2", r), self.shared_tags, member_of=(WORKLOAD_OU,))
        return roles.Enforced(fake, self.publisher, {"create_tags": "ec2:CreateTags"})


def _distribute(factory: roles.DeclaredRole, publisher: roles.DeclaredRole) -> dist.DistributionResult:
    image = _approved_image(factory.account_id, approved=True)
    as_factory = roles.role_session(_as(factory), HOME)
    _as(publisher)
    keys = tuple((r, f"arn:aws:kms:{r}:{factory.account_id}:key/factory-{r}") for r in (HOME, COPY))
    request = dist.DistributeRequest(
        image,
        HOME,
        "al2023",
        keys,
        (dist.Target(publisher.account_id, "dev"),),
        share_with=(WORKLOAD_OU,),
        max_workers=2,
        poll_seconds=0,
    )
    with roles.iam_enforced():
        return dist.distribute(request, RoleClients(as_factory, publisher), sleep=lambda _: None)


def test_distribute_runs_as_the_factory_role_and_the_workload_publisher_role(moto, declared):
    result = _distribute(declared("build", naming.FACTORY_AUTOMATION_ROLE), declared("dev", naming.IMAGE_PUBLISHER_ROLE))
    assert result.failures == []
    assert {o.action for o in result.accounts.values()} == {"shared"}


def test_distribute_without_the_assume_publisher_grant_fails_every_account(moto, declared):
    result = _distribute(
        declared("build", naming.FACTORY_AUTOMATION_ROLE).without("AssumeWorkloadPublisherAndScanner"),
        declared("dev", naming.IMAGE_PUBLISHER_ROLE),
    )
    assert {r: o.action for r, o in result.regions.items()} == {HOME: "source", COPY: "copied"}
    errors = [o.error for o in result.accounts.values()]
    assert len(errors) == 2 and all(_denied(e, "sts:AssumeRole") for e in errors), errors


# --- lifecycle: the lifecycle Lambda's role ------------------------------------------------------------
def _backdate(account_id: str, region: str, image_id: str, days: int) -> None:
    from moto.ec2.models import ec2_backends

    image = ec2_backends[account_id][region].amis[image_id]
    image.creation_date = image.creation_date - timedelta(days=days)


def _lifecycle(role: roles.DeclaredRole) -> list[dict]:
    """Two images of a family; the older is deprecated, and after the grace period retired."""
    admin = roles.admin_session(role.account_id, HOME)
    old, new = (
        golden_ami(admin.client("ec2"), f"bakehouse-al2023-{n}", {"bakehouse:family": "al2023", "bakehouse:approved": "true"})
        for n in (1, 2)
    )
    _backdate(role.account_id, HOME, old, 60)
    admin.client("ssm").put_parameter(Name="/bakehouse/images/al2023/latest", Value=new, Type="String")
    as_lifecycle = roles.role_session(_as(role), HOME)
    deprecations: dict = {}
    ec2 = roles.Enforced(
        ImageDeprecationEc2(as_lifecycle.client("ec2"), deprecations),
        role,
        {"enable_image_deprecation": "ec2:EnableImageDeprecation"},
    )
    request = life.LifecycleRequest((HOME,), life.RetentionPolicy(1, 30, 14, 2), dry_run=False)
    now = datetime.now(UTC)
    with roles.iam_enforced():
        first = life.run(request, lambda _: ec2, as_lifecycle.client("ssm"), HOME, now=now)
        second = life.run(request, lambda _: ec2, as_lifecycle.client("ssm"), HOME, now=now + timedelta(days=15))
    return [first, second]


def test_lifecycle_deprecates_and_retires_as_the_lifecycle_role(moto, declared):
    first, second = _lifecycle(declared("build", LIFECYCLE_ROLE))
    assert first["Counts"]["deprecate"] == 1 and second["Counts"]["deregister"] == 1
    changes = [c for image in second["Images"] for c in image["Changes"]]
    assert any(c.startswith("deregister") for c in changes) and any(c.startswith("delete snap-") for c in changes)


def test_lifecycle_without_the_snapshot_grant_is_denied_delete_snapshot(moto, declared):
    with pytest.raises(life.LifecycleFailed) as err:
        _lifecycle(declared("build", LIFECYCLE_ROLE).without("DeleteRetiredSnapshots"))
    assert _denied(err.value, "ec2:DeleteSnapshot")


# --- isolate: the dev incident-response automation role ----------------------------------------------
def _isolate(role: roles.DeclaredRole, security_account: str) -> iso.IsolationResult:
    admin = roles.admin_session(role.account_id, HOME)
    ec2, iam = admin.client("ec2"), admin.client("iam")
    vpc = ec2.create_vpc(CidrBlock="10.16.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.16.1.0/24", AvailabilityZone=f"{HOME}a")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    ami = ec2.register_image(
        Name="app", RootDeviceName="/dev/xvda", BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}]
    )["ImageId"]
    iam.create_role(
        RoleName="bakehouse-dev-app",
        Path="/bakehouse/app/",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
            }
        ),
    )
    profile = iam.create_instance_profile(InstanceProfileName="bakehouse-dev-app", Path="/bakehouse/app/")
    iam.add_role_to_instance_profile(InstanceProfileName="bakehouse-dev-app", RoleName="bakehouse-dev-app")
    instance = ec2.run_instances(
        ImageId=ami,
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet, "Groups": [group]}],
        IamInstanceProfile={"Arn": profile["InstanceProfile"]["Arn"]},
    )["Instances"][0]["InstanceId"]
    security = roles.admin_session(security_account, HOME)
    bucket = naming.bucket_name("evidence", security_account, HOME)
    security.client("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": HOME})
    topic = security.client("sns").create_topic(Name=naming.security_topic_name())["TopicArn"]
    as_responder = roles.role_session(_as(role), HOME)
    clients = iso.Clients(*(as_responder.client(n) for n in ("ec2", "autoscaling", "elbv2", "ssm", "iam", "s3", "sns")))
    request = iso.IsolateRequest(instance, FINDING, bucket, topic)
    with roles.iam_enforced():
        return iso.isolate(request, clients, now=lambda: datetime(2026, 11, 23, tzinfo=UTC), sleep=lambda _: None)


def test_isolation_runs_as_the_incident_response_automation_role(moto, declared, stack_run):
    security = stack_run("dev").exports.get("securityAccountId") or "222222222222"
    result = _isolate(declared("dev", ISOLATION_ROLE), security)
    assert [s.name for s in result.steps] == list(iso.STEPS)
    assert {s.name for s in result.steps if s.changed} >= {
        "record-state",
        "termination-protection",
        "swap-security-groups",
        "snapshot-volumes",
        "revoke-role-sessions",
        "stop-instance",
        "publish-manifest",
    }


def test_isolation_without_the_containment_grant_is_denied_modify_instance_attribute(moto, declared):
    with pytest.raises(ClientError) as err:
        _isolate(declared("dev", ISOLATION_ROLE).without("ContainInstance"), "222222222222")
    assert _denied(err.value, "ec2:ModifyInstanceAttribute")
