#!/usr/bin/env bash
# SSM agent: the only way in (Session Manager), the channel of the factory's runCommand steps and
# what Inspector v2 relies on to inventory packages. Installed, enabled at boot and running.
set -eu
set -o pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

case "$PKG" in
    dnf)
        pkg_install amazon-ssm-agent
        enable_unit amazon-ssm-agent.service now
        ;;
    apt)
        # Canonical ships the agent as a snap on Ubuntu's AWS images; there is no apt package.
        if ! command -v snap >/dev/null 2>&1; then
            if has_systemd; then die "snapd is missing, so the SSM agent cannot be installed"; fi
            log "no snapd and no systemd (container): the SSM agent is not part of a container build"
            exit 0
        fi
        if snap list amazon-ssm-agent >/dev/null 2>&1; then
            log "already installed: amazon-ssm-agent (snap)"
        else
            log "installing amazon-ssm-agent (snap)"
            snap install amazon-ssm-agent --classic
        fi
        enable_unit snap.amazon-ssm-agent.amazon-ssm-agent.service now
        ;;
esac
