#!/usr/bin/env bash
# Inspector v2 scans an EC2 instance through SSM: the agent must be running, the instance must
# reach IMDS with a session token (IMDSv2) and carry an instance profile. Checks only; changes
# nothing, and fails the build early rather than producing an image Inspector cannot cover.
set -eu
set -o pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

IMDS="${BAKEHOUSE_IMDS_ENDPOINT:-http://169.254.169.254}"

if ! has_systemd; then
    log "no systemd (container): no SSM agent or instance metadata to check"
    exit 0
fi

agent_unit=amazon-ssm-agent.service
if [ "$PKG" = apt ]; then agent_unit=snap.amazon-ssm-agent.amazon-ssm-agent.service; fi
systemctl is-active --quiet -- "$agent_unit" || die "$agent_unit is not running; Inspector cannot cover this instance"
log "$agent_unit is running"

token="$(curl -fsS -X PUT "$IMDS/latest/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')" \
    || die "no IMDSv2 session token from $IMDS"
iam_info="$(curl -fsS -H "X-aws-ec2-metadata-token: $token" "$IMDS/latest/meta-data/iam/info")" \
    || die "no instance profile attached (IMDS iam/info unavailable); SSM and Inspector need one"
profile="$(printf '%s' "$iam_info" | sed -n 's/.*"InstanceProfileArn"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')"
[ -n "$profile" ] || die "IMDS iam/info names no InstanceProfileArn"
log "instance profile $profile"
instance_id="$(curl -fsS -H "X-aws-ec2-metadata-token: $token" "$IMDS/latest/meta-data/instance-id")"
log "ready for Inspector: $instance_id"
