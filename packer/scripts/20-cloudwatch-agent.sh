#!/usr/bin/env bash
# CloudWatch agent: installed, configured to ship the security-relevant logs and memory/disk
# metrics, enabled at boot. Not started here: the build instance's profile holds no CloudWatch
# permissions and its logs are not the fleet's.
set -eu
set -o pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

AGENT_DIR="$ROOT/opt/aws/amazon-cloudwatch-agent"
# The key AWS signs the agent packages with, as published in the CloudWatch agent documentation.
CWAGENT_KEY_FINGERPRINT="937616F3450B7D806CBD9725D58167303B789C72"
CWAGENT_BASE_URL="${BAKEHOUSE_CWAGENT_BASE_URL:-https://amazoncloudwatch-agent.s3.amazonaws.com}"

install_signed_deb() {
    local arch work fpr
    pkg_install curl gnupg ca-certificates
    arch="$(dpkg --print-architecture)"
    work="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand now: $work is local
    trap "rm -rf '$work'" EXIT
    log "downloading the CloudWatch agent for ubuntu/$arch from $CWAGENT_BASE_URL"
    curl -fsSL --proto '=https' -o "$work/agent.gpg" "$CWAGENT_BASE_URL/assets/amazon-cloudwatch-agent.gpg"
    curl -fsSL --proto '=https' -o "$work/agent.deb" "$CWAGENT_BASE_URL/ubuntu/$arch/latest/amazon-cloudwatch-agent.deb"
    curl -fsSL --proto '=https' -o "$work/agent.deb.sig" "$CWAGENT_BASE_URL/ubuntu/$arch/latest/amazon-cloudwatch-agent.deb.sig"
    export GNUPGHOME="$work/gnupg"
    mkdir -m 0700 "$GNUPGHOME"
    gpg --batch --quiet --import "$work/agent.gpg"
    # A key swapped at the download location would verify its own signature; pin the fingerprint.
    fpr="$(gpg --batch --with-colons --fingerprint | awk -F: '$1 == "fpr" { print $10; exit }')"
    [ "$fpr" = "$CWAGENT_KEY_FINGERPRINT" ] \
        || die "CloudWatch agent signing key has fingerprint '$fpr', expected $CWAGENT_KEY_FINGERPRINT"
    gpg --batch --verify "$work/agent.deb.sig" "$work/agent.deb" \
        || die "CloudWatch agent package signature does not verify"
    dpkg -i "$work/agent.deb"
}

case "$PKG" in
    dnf) pkg_install amazon-cloudwatch-agent ;;
    apt) if pkg_is_installed amazon-cloudwatch-agent; then
             log "already installed: amazon-cloudwatch-agent"
         else
             install_signed_deb
         fi ;;
esac

case "$PKG" in
    dnf) AUTH_LOG=/var/log/secure ;;
    apt) AUTH_LOG=/var/log/auth.log ;;
esac

# The agent translates every file in amazon-cloudwatch-agent.d/ when it starts. It runs as root:
# audit.log and the auth log are readable by root only, and they are the logs that matter.
write_file "$AGENT_DIR/etc/amazon-cloudwatch-agent.d/bakehouse.json" 0644 <<CONF
{
  "agent": { "run_as_user": "root", "metrics_collection_interval": 60 },
  "logs": {
    "logs_collected": {
      "files": {
        "collect_list": [
          { "file_path": "/var/log/audit/audit.log", "log_group_name": "/bakehouse/ec2/audit", "log_stream_name": "{instance_id}" },
          { "file_path": "$AUTH_LOG", "log_group_name": "/bakehouse/ec2/auth", "log_stream_name": "{instance_id}" },
          { "file_path": "/var/log/bakehouse/*.log", "log_group_name": "/bakehouse/ec2/bakehouse", "log_stream_name": "{instance_id}" }
        ]
      }
    }
  },
  "metrics": {
    "namespace": "Bakehouse/EC2",
    "append_dimensions": { "InstanceId": "\${aws:InstanceId}", "AutoScalingGroupName": "\${aws:AutoScalingGroupName}" },
    "metrics_collected": {
      "mem": { "measurement": ["mem_used_percent"] },
      "disk": { "measurement": ["used_percent"], "resources": ["/"] }
    }
  }
}
CONF
enable_unit amazon-cloudwatch-agent.service
