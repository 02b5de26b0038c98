#!/usr/bin/env bash
# The container twin's gate: wait for Inspector's enhanced scan of the newest twin pushed with this
# prefix, then fail if it has findings at or above the factory's severity threshold (the same
# threshold ValidateImage applies to the AMI). ECR returns Inspector's counts in
# findingSeverityCounts (ECR API reference, "DescribeImageScanFindings").
# Usage: twin_gate.sh <repository-name> <tag-prefix> <CRITICAL|HIGH|MEDIUM> <wait-seconds>
set -euo pipefail

repository=$1
prefix=$2
threshold=$3
wait_seconds=$4

case "$threshold" in
    CRITICAL) severities='["CRITICAL"]' ;;
    HIGH) severities='["CRITICAL","HIGH"]' ;;
    MEDIUM) severities='["CRITICAL","HIGH","MEDIUM"]' ;;
    *) echo "twin gate: unknown severity threshold $threshold" >&2; exit 2 ;;
esac

digest=$(aws ecr describe-images --repository-name "$repository" --output json \
    | jq -r --arg p "$prefix" '[.imageDetails[] | select(any(.imageTags[]?; startswith($p)))]
                               | sort_by(.imagePushedAt) | last | .imageDigest // empty')
if [ -z "$digest" ]; then
    echo "twin gate: no image tagged $prefix* in $repository" >&2
    exit 1
fi

deadline=$(( $(date +%s) + wait_seconds ))
while :; do
    findings=$(aws ecr describe-image-scan-findings --repository-name "$repository" \
        --image-id "imageDigest=$digest" --output json 2>/dev/null || echo '{}')
    status=$(jq -r '.imageScanStatus.status // "PENDING"' <<<"$findings")
    case "$status" in
        COMPLETE|ACTIVE) break ;;
        FAILED|UNSUPPORTED_IMAGE|FINDINGS_UNAVAILABLE)
            echo "twin gate: scan of $digest ended $status" >&2
            exit 1 ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "twin gate: no scan result for $digest after ${wait_seconds}s" >&2
        exit 1
    fi
    sleep 20
done

count=$(jq --argjson s "$severities" \
    '[.imageScanFindings.findingSeverityCounts // {} | to_entries[] | select(.key as $k | $s | index($k)) | .value] | add // 0' \
    <<<"$findings")
echo "twin gate: $digest has $count findings at or above $threshold"
if [ "$count" -gt 0 ]; then
    echo "twin gate: FAIL; the AMI is not built" >&2
    exit 1
fi
