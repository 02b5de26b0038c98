#!/usr/bin/env bash
# Starts Bakehouse-ReleaseImage for the AMI this Packer run built. Everything but the image, the
# family and the scripts' identity comes from the factory settings the build stack wrote (its
# pipelineParameters); approval is read by ApproveImage from the same settings, never passed here.
# Usage: start_release.sh <packer manifest.json>
set -euo pipefail

manifest=$1
image_id=$(jq -r '.last_run_uuid as $run | [.builds[] | select(.packer_run_uuid == $run and .builder_type == "amazon-ebs")]
                  | last | .artifact_id // "" | split(":") | last' "$manifest")
if [[ ! "$image_id" =~ ^ami-[0-9a-f]{8,17}$ ]]; then
    echo "start release: no AMI in $manifest" >&2
    exit 1
fi

settings=$(aws ssm get-parameter --name /bakehouse/factory/settings --query Parameter.Value --output text)
# SSM Automation takes every value as a list of strings; maps and lists travel as JSON text.
parameters=$(jq -c --arg image "$image_id" --arg family "$FAMILY" --arg commit "$SCRIPTS_COMMIT" \
    --arg version "$SCRIPTS_BUNDLE_VERSION" '
    .pipelineParameters | del(.FactoryKmsKeyId)
    + {ImageId: $image, Family: $family, ScriptsCommit: $commit, ScriptsVersionId: $version}
    | with_entries(.value |= (if type == "object" then [tojson]
                              elif type == "array" then map(if type == "object" then tojson else tostring end)
                              else [tostring] end))' <<<"$settings")

# One image starts one execution however often this post_build is retried.
aws ssm start-automation-execution --document-name "$RELEASE_DOCUMENT" \
    --client-token "$(python3 -c 'import sys, uuid; print(uuid.uuid5(uuid.NAMESPACE_URL, sys.argv[1]))' "bakehouse-release:$image_id")" \
    --parameters "$parameters"
echo "start release: $RELEASE_DOCUMENT started for $image_id ($FAMILY, commit $SCRIPTS_COMMIT)"
