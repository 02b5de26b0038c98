"""The fakes behave like the APIs they stand in for: validated inputs, kept state, real shapes."""

from __future__ import annotations

import datetime as dt
import json

import boto3
import pytest
from botocore.exceptions import ClientError, ParamValidationError

from tests.fakes import FakeInspector2, ImageDeprecationEc2, SharedImageTagsEc2
from tests.fakes.scenes import REGION, catalog


# --- EC2 image deprecation ----------------------------------------------------------------------
def test_moto_still_lacks_image_deprecation(ami):
    # If moto grows the call, the fake must go (never fake what moto implements).
    with pytest.raises(NotImplementedError):
        boto3.client("ec2", region_name=REGION).enable_image_deprecation(
            ImageId=ami, DeprecateAt=dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        )


def test_deprecation_shows_in_describe_images_and_can_be_disabled(ami):
    ec2 = ImageDeprecationEc2(boto3.client("ec2", region_name=REGION))
    # 30 seconds past a minute, so EC2's rounding up to the minute always shows.
    when = dt.datetime.now(dt.UTC).replace(second=30, microsecond=0) + dt.timedelta(days=30)
    assert ec2.enable_image_deprecation(ImageId=ami, DeprecateAt=when)["Return"] is True
    shown = ec2.describe_images(ImageIds=[ami])["Images"][0]["DeprecationTime"]
    rounded = when.replace(second=0) + dt.timedelta(minutes=1)
    assert shown == rounded.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    paged = [i for page in ec2.get_paginator("describe_images").paginate(ImageIds=[ami]) for i in page["Images"]]
    assert paged[0]["DeprecationTime"] == shown
    ec2.disable_image_deprecation(ImageId=ami)
    assert "DeprecationTime" not in ec2.describe_images(ImageIds=[ami])["Images"][0]
    assert [c.operation for c in ec2.calls if c.operation.endswith("deprecation")] == [
        "enable_image_deprecation",
        "disable_image_deprecation",
    ]


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_deprecating_an_unknown_image_is_invalid_ami_id_not_found(aws):
    ec2 = ImageDeprecationEc2(boto3.client("ec2", region_name=REGION))
    with pytest.raises(ClientError) as err:
        ec2.enable_image_deprecation(ImageId="ami-0123456789abcdef0", DeprecateAt=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    assert err.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"


def test_deprecation_in_the_past_is_rejected(ami):
    ec2 = ImageDeprecationEc2(boto3.client("ec2", region_name=REGION))
    with pytest.raises(ClientError) as err:
        ec2.enable_image_deprecation(ImageId=ami, DeprecateAt="2020-01-01T00:00:00Z")
    assert err.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert ec2.deprecations == {}


def test_unknown_parameters_are_rejected_like_botocore(ami):
    ec2 = ImageDeprecationEc2(boto3.client("ec2", region_name=REGION))
    with pytest.raises(ParamValidationError):
        ec2.enable_image_deprecation(ImageId=ami, DeprecateAt="2030-01-01T00:00:00Z", When="now")
    assert ec2.calls == []


def test_calls_moto_implements_are_forwarded(ami):
    ec2 = ImageDeprecationEc2(boto3.client("ec2", region_name=REGION))
    ec2.create_tags(Resources=[ami], Tags=[{"Key": "k", "Value": "v"}])
    assert boto3.client("ec2", region_name=REGION).describe_images(ImageIds=[ami])["Images"][0]["Tags"] == [
        {"Key": "k", "Value": "v"}
    ]


# --- Inspector v2 ---------------------------------------------------------------------------------
def _inspector(**kw):
    return FakeInspector2(
        boto3.client("inspector2", region_name=REGION),
        s3=boto3.client("s3", region_name=REGION),
        kms=boto3.client("kms", region_name=REGION),
        **kw,
    )


def test_moto_still_lacks_inspector_coverage_and_reports(aws):
    client = boto3.client("inspector2", region_name=REGION)
    with pytest.raises(ClientError):
        client.list_coverage()
    with pytest.raises(ClientError):
        client.create_findings_report(reportFormat="JSON", s3Destination={"bucketName": "b", "kmsKeyArn": "k"})


def test_coverage_arrives_after_the_scripted_number_of_polls(aws):
    insp = _inspector()
    insp.add_coverage("i-0123456789abcdef0", ami_id="ami-12345678", after_polls=2)
    by_id = {"resourceId": [{"comparison": "EQUALS", "value": "i-0123456789abcdef0"}]}
    seen = [len(insp.list_coverage(filterCriteria=by_id)["coveredResources"]) for _ in range(3)]
    assert seen == [0, 0, 1]


def test_coverage_filters_by_instance_tag_and_status(aws):
    insp = _inspector()
    insp.add_coverage("i-0000000000000000a", tags={"bakehouse:role": "validate"})
    insp.add_coverage("i-0000000000000000b", tags={"other": "x"})
    insp.add_coverage("i-0000000000000000c", tags={"bakehouse:role": "validate"}, status="INACTIVE", reason="NO_INVENTORY")
    tagged = {"ec2InstanceTags": [{"comparison": "EQUALS", "key": "bakehouse:role", "value": "validate"}]}
    ids = [r["resourceId"] for r in insp.list_coverage(filterCriteria=tagged)["coveredResources"]]
    assert ids == ["i-0000000000000000a", "i-0000000000000000c"]
    active = dict(tagged, scanStatusCode=[{"comparison": "EQUALS", "value": "ACTIVE"}])
    assert [r["resourceId"] for r in insp.list_coverage(filterCriteria=active)["coveredResources"]] == ["i-0000000000000000a"]


def test_findings_are_filtered_and_paginated(aws):
    insp = _inspector()
    for sev in ("CRITICAL", "HIGH", "HIGH", "LOW"):
        insp.add_finding("i-0000000000000000a", sev, ami_id="ami-12345678")
    insp.add_finding("i-0000000000000000b", "CRITICAL")
    paginator = insp.get_paginator("list_findings")
    crit = {"ec2InstanceImageId": [{"comparison": "EQUALS", "value": "ami-12345678"}]}
    pages = list(paginator.paginate(filterCriteria=crit, PaginationConfig={"PageSize": 2}))
    assert len(pages) == 2
    assert sorted(f["severity"] for p in pages for f in p["findings"]) == ["CRITICAL", "HIGH", "HIGH", "LOW"]


def test_unknown_filter_fields_are_rejected_like_botocore(aws):
    insp = _inspector()
    with pytest.raises(ParamValidationError):
        insp.list_findings(filterCriteria={"instanceId": []})


def test_findings_report_writes_json_into_the_bucket_with_the_key(aws):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="reports", CreateBucketConfiguration={"LocationConstraint": REGION})
    key = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    insp = _inspector()
    insp.add_finding("i-0000000000000000a", "HIGH")
    rid = insp.create_findings_report(
        reportFormat="JSON", s3Destination={"bucketName": "reports", "keyPrefix": "inspector", "kmsKeyArn": key}
    )["reportId"]
    assert insp.get_findings_report_status(reportId=rid)["status"] == "IN_PROGRESS"
    assert insp.get_findings_report_status(reportId=rid)["status"] == "SUCCEEDED"
    obj = s3.get_object(Bucket="reports", Key=insp.report_key(rid))
    assert obj["ServerSideEncryption"] == "aws:kms" and obj["SSEKMSKeyId"] == key
    assert [f["severity"] for f in json.loads(obj["Body"].read())["findings"]] == ["HIGH"]


@pytest.mark.parametrize(
    "bucket,key,code",
    [
        ("missing", None, "BUCKET_NOT_FOUND"),
        ("reports", "not-an-arn", "MALFORMED_KMS_KEY"),
        ("reports", "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000", "MALFORMED_KMS_KEY"),
    ],
)
def test_findings_report_fails_on_a_bad_destination(aws, bucket, key, code):
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket="reports", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    real_key = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    insp = _inspector(report_polls=0)
    insp.add_finding("i-0000000000000000a", "HIGH")
    rid = insp.create_findings_report(reportFormat="JSON", s3Destination={"bucketName": bucket, "kmsKeyArn": key or real_key})[
        "reportId"
    ]
    status = insp.get_findings_report_status(reportId=rid)
    assert (status["status"], status["errorCode"]) == ("FAILED", code)


# --- Service Catalog ------------------------------------------------------------------------------
def test_moto_still_lacks_provisioning_artifacts_and_constraints(aws):
    _, _, product = catalog()
    client = boto3.client("servicecatalog", region_name=REGION)
    with pytest.raises(NotImplementedError):
        client.list_provisioning_artifacts(ProductId=product)
    with pytest.raises(NotImplementedError):
        client.describe_constraint(Id="cons-abcdefghijklm")
    with pytest.raises(NotImplementedError):
        client.update_constraint(Id="cons-abcdefghijklm", Parameters="{}")


def test_product_keeps_its_initial_artifact_and_new_versions(aws):
    sc, _, product = catalog()
    created = sc.create_provisioning_artifact(
        ProductId=product,
        IdempotencyToken="v2",
        Parameters={"Name": "v2", "Info": {"LoadTemplateFromURL": "https://s3.amazonaws.com/b/t.yaml"}},
    )
    again = sc.create_provisioning_artifact(
        ProductId=product,
        IdempotencyToken="v2",
        Parameters={"Name": "v2", "Info": {"LoadTemplateFromURL": "https://s3.amazonaws.com/b/t.yaml"}},
    )
    assert again["ProvisioningArtifactDetail"]["Id"] == created["ProvisioningArtifactDetail"]["Id"]
    names = [d["Name"] for d in sc.list_provisioning_artifacts(ProductId=product)["ProvisioningArtifactDetails"]]
    assert names == ["v1", "v2"]


def test_deactivated_artifacts_disappear_from_describe_product(aws):
    sc, _, product = catalog()
    first = sc.list_provisioning_artifacts(ProductId=product)["ProvisioningArtifactDetails"][0]["Id"]
    sc.create_provisioning_artifact(
        ProductId=product,
        IdempotencyToken="v2",
        Parameters={"Name": "v2", "Info": {"LoadTemplateFromURL": "https://s3.amazonaws.com/b/t.yaml"}},
    )
    updated = sc.update_provisioning_artifact(
        ProductId=product, ProvisioningArtifactId=first, Active=False, Guidance="DEPRECATED"
    )
    assert updated["ProvisioningArtifactDetail"]["Guidance"] == "DEPRECATED"
    assert [a["Name"] for a in sc.describe_product(Id=product)["ProvisioningArtifacts"]] == ["v2"]


def test_the_last_artifact_cannot_be_deleted(aws):
    sc, _, product = catalog()
    only = sc.list_provisioning_artifacts(ProductId=product)["ProvisioningArtifactDetails"][0]["Id"]
    with pytest.raises(sc.exceptions.InvalidParametersException):
        sc.delete_provisioning_artifact(ProductId=product, ProvisioningArtifactId=only)


def test_artifact_of_an_unknown_product_is_resource_not_found(aws):
    sc, _, _ = catalog()
    with pytest.raises(sc.exceptions.ResourceNotFoundException):
        sc.create_provisioning_artifact(
            ProductId="prod-doesnotexist1",
            IdempotencyToken="x",
            Parameters={"Info": {"LoadTemplateFromURL": "https://s3.amazonaws.com/b/t.yaml"}},
        )


def test_constraint_needs_the_product_in_the_portfolio(aws):
    sc, portfolio, product = catalog()
    rules = json.dumps({"Rules": {}})
    with pytest.raises(sc.exceptions.ResourceNotFoundException):
        sc.create_constraint(PortfolioId=portfolio, ProductId=product, Type="TEMPLATE", Parameters=rules, IdempotencyToken="c")
    sc.associate_product_with_portfolio(ProductId=product, PortfolioId=portfolio)
    sc.create_constraint(PortfolioId=portfolio, ProductId=product, Type="TEMPLATE", Parameters=rules, IdempotencyToken="c")
    listed = sc.list_constraints_for_portfolio(PortfolioId=portfolio)["ConstraintDetails"]
    assert [(c["Type"], c["ProductId"]) for c in listed] == [("TEMPLATE", product)]
    assert sc.calls_to("associate_product_with_portfolio") == [{"ProductId": product, "PortfolioId": portfolio}]


# --- tagging an image another account shared --------------------------------------------------------
def _shared(ami, account="111111111111", snapshots=True):
    owner = boto3.client("ec2", region_name=REGION)
    owner.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"UserId": account}]})
    if snapshots:
        for m in owner.describe_images(ImageIds=[ami])["Images"][0]["BlockDeviceMappings"]:
            owner.modify_snapshot_attribute(
                SnapshotId=m["Ebs"]["SnapshotId"], Attribute="createVolumePermission", OperationType="add", UserIds=[account]
            )
    creds = boto3.client("sts", region_name=REGION).assume_role(RoleArn=f"arn:aws:iam::{account}:role/x", RoleSessionName="test")[
        "Credentials"
    ]
    return boto3.client(
        "ec2",
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def test_moto_still_cannot_tag_a_shared_image_in_the_account_it_is_shared_with(ami):
    with pytest.raises(ClientError) as err:
        _shared(ami).create_tags(Resources=[ami], Tags=[{"Key": "bakehouse-approved", "Value": "true"}])
    assert err.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"


def _owner(region):
    return boto3.client("ec2", region_name=region)


def test_an_account_tags_an_image_shared_with_it_and_only_it_sees_the_tag(ami):
    state = {}
    target = SharedImageTagsEc2(_shared(ami), "111111111111", _owner, state)
    target.create_tags(Resources=[ami], Tags=[{"Key": "bakehouse-approved", "Value": "true"}])
    mine = target.describe_tags(Filters=[{"Name": "resource-id", "Values": [ami]}])["Tags"]
    assert [(t["Key"], t["Value"], t["ResourceType"]) for t in mine] == [("bakehouse-approved", "true", "image")]
    owners = _owner(REGION).describe_tags(Filters=[{"Name": "resource-id", "Values": [ami]}])["Tags"]
    assert "bakehouse-approved" not in {t["Key"] for t in owners}  # the owner's tags are its own
    other = SharedImageTagsEc2(_shared(ami, account="222222222222"), "222222222222", _owner, state)
    assert other.describe_tags(Filters=[{"Name": "resource-id", "Values": [ami]}])["Tags"] == []
    assert target.calls_to("create_tags") == [{"Resources": [ami], "Tags": [{"Key": "bakehouse-approved", "Value": "true"}]}]


def test_tagging_an_image_not_shared_with_the_account_is_not_found(ami):
    target = SharedImageTagsEc2(_shared(ami, account="222222222222"), "111111111111", _owner)
    with pytest.raises(ClientError) as err:
        target.create_tags(Resources=[ami], Tags=[{"Key": "bakehouse-approved", "Value": "true"}])
    assert err.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"


_OU = "arn:aws:organizations::999999999999:ou/o-abcdefghij/ou-ab12-wkld0001"
_ORG = "arn:aws:organizations::999999999999:organization/o-abcdefghij"


def _account_ec2(account):
    creds = boto3.client("sts", region_name=REGION).assume_role(RoleArn=f"arn:aws:iam::{account}:role/x", RoleSessionName="test")[
        "Credentials"
    ]
    return boto3.client(
        "ec2",
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def test_moto_still_keeps_an_image_shared_with_an_ou_invisible_to_its_accounts(ami):
    # moto records the OU launch permission but resolves no membership: if this starts passing, the
    # fake's member_of must go.
    _owner(REGION).modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"OrganizationalUnitArn": _OU}]})
    assert _owner(REGION).describe_image_attribute(ImageId=ami, Attribute="launchPermission")["LaunchPermissions"] == [
        {"OrganizationalUnitArn": _OU}
    ]
    with pytest.raises(ClientError) as err:
        _account_ec2("111111111111").create_tags(Resources=[ami], Tags=[{"Key": "k", "Value": "v"}])
    assert err.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"


@pytest.mark.parametrize("permission", [{"OrganizationalUnitArn": _OU}, {"OrganizationArn": _ORG}])
def test_an_image_shared_with_an_ou_or_the_organization_can_be_tagged_by_its_member_accounts(ami, permission):
    _owner(REGION).modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [permission]})
    member = SharedImageTagsEc2(_account_ec2("111111111111"), "111111111111", _owner, member_of=(_ORG, _OU))
    member.create_tags(Resources=[ami], Tags=[{"Key": "bakehouse-approved", "Value": "true"}])
    assert member.describe_tags(Filters=[{"Name": "resource-id", "Values": [ami]}])["Tags"][0]["Value"] == "true"


def test_an_account_outside_the_ou_an_image_is_shared_with_cannot_tag_it(ami):
    _owner(REGION).modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"OrganizationalUnitArn": _OU}]})
    other_ou = _OU.replace("wkld0001", "sbox0001")
    outsider = SharedImageTagsEc2(_account_ec2("222222222222"), "222222222222", _owner, member_of=(_ORG, other_ou))
    with pytest.raises(ClientError) as err:
        outsider.create_tags(Resources=[ami], Tags=[{"Key": "bakehouse-approved", "Value": "true"}])
    assert err.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"


def test_a_template_constraint_can_be_read_back_and_rewritten(aws):
    sc, portfolio, product = catalog()
    sc.associate_product_with_portfolio(ProductId=product, PortfolioId=portfolio)
    created = sc.create_constraint(
        PortfolioId=portfolio,
        ProductId=product,
        Type="TEMPLATE",
        Parameters=json.dumps({"Rules": {"A": {}}}),
        IdempotencyToken="c",
    )
    cid = created["ConstraintDetail"]["ConstraintId"]
    sc.update_constraint(Id=cid, Parameters=json.dumps({"Rules": {"B": {}}}))
    assert json.loads(sc.describe_constraint(Id=cid)["ConstraintParameters"]) == {"Rules": {"B": {}}}
    with pytest.raises(sc.exceptions.InvalidParametersException):
        sc.update_constraint(Id=cid, Parameters="{not json")
    with pytest.raises(sc.exceptions.ResourceNotFoundException):
        sc.describe_constraint(Id="cons-doesnotexist1")


# --- SSM StartAutomationExecution's ClientToken, CodePipeline's sourceRevisions ------------------------------
def _automation():
    from moto import mock_aws

    from tests.fakes.operations import FakeAutomation

    with mock_aws():
        yield FakeAutomation(boto3.client("ssm", region_name=REGION), {"Bakehouse-CheckBaseImages"})


def test_a_retry_under_the_same_client_token_gets_the_same_execution_and_a_different_request_is_refused():
    for ssm in _automation():
        token = "0b7f6e0e-6c1b-4c1e-9a55-1f2d3c4b5a69"
        role = {"AutomationAssumeRole": ["arn:aws:iam::333333333333:role/BakehouseFactoryAutomation"]}
        first = ssm.start_automation_execution(DocumentName="Bakehouse-CheckBaseImages", ClientToken=token, Parameters=role)
        again = ssm.start_automation_execution(
            DocumentName="Bakehouse-CheckBaseImages", ClientToken=token.upper(), Parameters=role
        )
        assert again["AutomationExecutionId"] == first["AutomationExecutionId"]  # tokens are case-insensitive
        with pytest.raises(ClientError) as err:
            ssm.start_automation_execution(
                DocumentName="Bakehouse-CheckBaseImages", ClientToken=token, Parameters={**role, "Families": ["al2023"]}
            )
        assert err.value.response["Error"]["Code"] == "IdempotentParameterMismatch"


def test_a_client_token_that_is_not_a_uuid_is_refused():
    for ssm in _automation():
        with pytest.raises(ClientError) as err:
            ssm.start_automation_execution(DocumentName="Bakehouse-CheckBaseImages", ClientToken="release-al2023-" + "x" * 22)
        assert err.value.response["Error"]["Code"] == "ValidationException"


def test_moto_still_drops_the_source_revisions_of_a_pipeline_start():
    """Why tools/release.py's Packer starts are checked through PipelineRevisionStarts (tests/fakes/codepipeline.py)."""
    import inspect

    from moto.codepipeline.models import CodePipelineBackend

    assert "source_revisions" not in inspect.signature(CodePipelineBackend.start_pipeline_execution).parameters
