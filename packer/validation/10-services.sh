#!/usr/bin/env bash
# The agents and security services the image promises are enabled at boot and, where the context
# has a running system, active.
set -eu
set -o pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

if in_context container; then
    skip services "no systemd in a container build"
    exit 0
fi

case "$PKG" in
    dnf) chrony_unit=chronyd.service ;;
    apt) chrony_unit=chrony.service ;;
esac
for unit in "$(ssm_agent_unit)" auditd.service "$chrony_unit"; do
    check "service-active:$unit" "$unit is $(systemctl is-active -- "$unit" 2>/dev/null || true)" \
        systemctl is-active --quiet -- "$unit"
done
for unit in "$(ssm_agent_unit)" auditd.service "$chrony_unit" amazon-cloudwatch-agent.service \
            bakehouse-clamscan.timer bakehouse-aide-check.timer; do
    state="$(systemctl is-enabled -- "$unit" 2>/dev/null || true)"
    check "service-enabled:$unit" "$unit is '$state' at boot" [ "$state" = enabled ]
done
if in_context image; then
    check service-active:amazon-cloudwatch-agent.service "the CloudWatch agent did not start at boot" \
        systemctl is-active --quiet amazon-cloudwatch-agent.service
fi
