#!/usr/bin/env bash
# Entrypoint of the image build, the same for Packer (amazon-ebs and docker) and for the SSM
# Automation BuildImage document: runs the steps below in order, stops at the first failure, and
# logs everything to /var/log/bakehouse/provision.log.
#
#   BAKEHOUSE_SCRIPTS_VERSION  recorded in /etc/bakehouse/image-build (the scripts' commit or S3 version)
#   BAKEHOUSE_ROOT             rehearse against a scratch directory instead of / (tests)
set -eu
set -o pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# The order is the contract: the SSM build, both Packer builders and the tests read this list.
STEPS="00-os-update.sh 10-cis-hardening.sh 20-cloudwatch-agent.sh 30-ssm-agent.sh 40-inspector-readiness.sh 50-security-tools.sh 55-memory-capture.sh 90-cleanup.sh"

ROOT="${BAKEHOUSE_ROOT:-}"
LOG_DIR="$ROOT/var/log/bakehouse"
mkdir -p "$LOG_DIR"
chmod 0750 "$LOG_DIR"
LOG="$LOG_DIR/provision.log"

[ -n "$ROOT" ] || [ "$(id -u)" -eq 0 ] || { echo "provision.sh must run as root" >&2; exit 1; }

run_steps() {
    local step started
    for step in $STEPS; do
        [ -x "$HERE/$step" ] || { echo "missing or not executable: $HERE/$step" >&2; return 1; }
        started="$(date -u +%s)"
        echo "=== $step: start"
        BAKEHOUSE_STEP="${step%.sh}" "$HERE/$step" 2>&1 || { echo "=== $step: FAILED"; return 1; }
        echo "=== $step: done in $(( $(date -u +%s) - started ))s"
    done
}

echo "=== provisioning (scripts ${BAKEHOUSE_SCRIPTS_VERSION:-unversioned}) at $(date -u +%Y-%m-%dT%H:%M:%SZ)" | tee -a "$LOG"
run_steps 2>&1 | tee -a "$LOG"

# What built this image, for anyone on the instance; the AMI's tags carry the same provenance.
# Written without a date so that a rerun of the same scripts leaves it untouched.
mkdir -p "$ROOT/etc/bakehouse"
record="scripts_version=${BAKEHOUSE_SCRIPTS_VERSION:-unversioned}
steps=$STEPS"
if [ ! -f "$ROOT/etc/bakehouse/image-build" ] || [ "$(cat "$ROOT/etc/bakehouse/image-build")" != "$record" ]; then
    printf '%s\n' "$record" >"$ROOT/etc/bakehouse/image-build"
    chmod 0644 "$ROOT/etc/bakehouse/image-build"
fi
echo "=== provisioning complete" | tee -a "$LOG"
