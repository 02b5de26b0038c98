#!/usr/bin/env bash
# Helpers sourced by the validation checks (never run on its own). Each check prints one line,
# "PASS <name>", "FAIL <name>: <why>" or "SKIP <name>: <why>"; validate.sh counts the FAILs.
#
# BAKEHOUSE_CONTEXT says where the checks run, because some facts only hold on a booted image:
#   image      an instance launched from the new AMI (the SSM ValidateImage test instance) - default
#   build      the Packer amazon-ebs build instance: sshd is masked for the next boot but still
#              carries Packer's session-manager tunnel, so "nothing listens on 22" is not yet true
#   container  the docker builder: no systemd, no kernel of its own, no instance metadata
# shellcheck shell=bash
# shellcheck source=../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"

CONTEXT="${BAKEHOUSE_CONTEXT:-image}"
case "$CONTEXT" in
    image|build|container) ;;
    *) die "BAKEHOUSE_CONTEXT is '$CONTEXT'; allowed: image, build, container" ;;
esac

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
skip() { echo "SKIP $1: $2"; }
# check NAME WHY-IF-FALSE COMMAND...: PASS when COMMAND succeeds, else FAIL with the reason.
check() {
    local name="$1" why="$2"; shift 2
    if "$@"; then pass "$name"; else fail "$name" "$why"; fi
}
in_context() { local c; for c in "$@"; do [ "$CONTEXT" = "$c" ] && return 0; done; return 1; }

ssm_agent_unit() {
    if [ "$PKG" = apt ]; then echo snap.amazon-ssm-agent.amazon-ssm-agent.service; else echo amazon-ssm-agent.service; fi
}
