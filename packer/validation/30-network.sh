#!/usr/bin/env bash
# Nothing listens for remote shells (22 SSH, 23 telnet, 3389 RDP), and instance metadata refuses
# requests without a session token (IMDSv2 required by the launch template / AMI settings).
set -eu
set -o pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

IMDS="${BAKEHOUSE_IMDS_ENDPOINT:-http://169.254.169.254}"

if in_context build; then
    skip no-remote-shell-listening "sshd carries Packer's session-manager tunnel until the build instance stops; 20-hardening checked it is masked"
elif ! command -v ss >/dev/null 2>&1; then
    if in_context container; then skip no-remote-shell-listening "no ss in the container"; else fail no-remote-shell-listening "ss is not installed"; fi
else
    listening="$(ss -ltnH 2>/dev/null | awk '{ print $4 }' | grep -E ':(22|23|3389)$' | tr '\n' ' ' || true)"
    check no-remote-shell-listening "listening on $listening" [ -z "$listening" ]
fi

if in_context container; then
    skip imdsv2-required "no instance metadata in a container build"
else
    code="$(curl -s -o /dev/null -w '%{http_code}' "$IMDS/latest/meta-data/instance-id" || true)"
    check imdsv2-required "a request without a token got HTTP $code, want 401" [ "$code" = 401 ]
    token="$(curl -fsS -X PUT "$IMDS/latest/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' || true)"
    check imdsv2-token "no IMDSv2 token from $IMDS" [ -n "$token" ]
fi
