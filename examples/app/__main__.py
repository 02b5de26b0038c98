"""An app team's program on a Bakehouse workload environment.

Everything it needs from the estate comes through the workload stack's nine exports (the contract
in docs/workload.md): it launches from the environment's template (approved AMI, IMDSv2, encrypted
root, the app instance profile), in the private subnets, and reads its settings from the
environment's parameter prefix at boot. It names no AMI, key, subnet or role itself.
"""

import pulumi
import pulumi_aws as aws

config = pulumi.Config()
estate = pulumi.StackReference(config.require("workloadStack"))
instances = config.get_int("instances") or 2
# Disposable fleet: Auto Scaling replaces each instance within this many days (it accepts 1-365), so no
# instance outlives the image it was launched from for long.
lifetime_days = config.get_int("maxInstanceLifetimeDays")
lifetime_days = 7 if lifetime_days is None else lifetime_days
if not 1 <= lifetime_days <= 365:
    raise ValueError(f"maxInstanceLifetimeDays is {lifetime_days}: Auto Scaling accepts 1 to 365 days")

subnet_ids = estate.require_output("privateSubnetIds")
launch_template_id = estate.require_output("launchTemplateId")

group = aws.autoscaling.Group(
    "app",
    min_size=instances,
    max_size=instances * 2,
    desired_capacity=instances,
    vpc_zone_identifiers=subnet_ids,
    # The template resolves the approved AMI (resolve:ssm:) at every launch, so new instances get
    # the newest published image; $Default follows the estate's template updates.
    launch_template=aws.autoscaling.GroupLaunchTemplateArgs(id=launch_template_id, version="$Default"),
    health_check_type="EC2",
    max_instance_lifetime=lifetime_days * 86400,
    # Rolls the group when the template changes; after a new image is published, start a refresh
    # (aws autoscaling start-instance-refresh) to move running instances onto it.
    instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
        strategy="Rolling", preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(min_healthy_percentage=50)
    ),
    tags=[aws.autoscaling.GroupTagArgs(key="app", value=pulumi.get_project(), propagate_at_launch=True)],
)

# A metric filter on the environment's app log group: errors become a metric the team can alarm on.
aws.cloudwatch.LogMetricFilter(
    "app-errors",
    log_group_name=estate.require_output("logGroupName"),
    pattern="ERROR",
    metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(name="AppErrors", namespace="App", value="1"),
)

pulumi.export("autoScalingGroupName", group.name)
pulumi.export("settingsPrefix", estate.require_output("parameterPrefix"))
