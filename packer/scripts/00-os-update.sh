#!/usr/bin/env bash
# Apply every pending OS update, so the image starts from the patched base the CVE scan expects.
# Converges: asks first whether anything is pending and upgrades only then.
set -eu
set -o pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

case "$PKG" in
    dnf)
        # Amazon Linux 2023 locks its repositories to the release the base AMI came with; security
        # fixes published since then live in later releases, so look at (and move to) the latest.
        release=()
        if [ -f "$ROOT/etc/amazon-linux-release" ]; then release=(--releasever=latest); fi
        # check-update exits 100 when updates are pending, 0 when there are none, 1 on error.
        rc=0
        dnf check-update -q "${release[@]}" >/dev/null || rc=$?
        case "$rc" in
            0)   log "no pending updates" ;;
            100) log "applying pending updates"; dnf upgrade -y -q --refresh "${release[@]}" ;;
            *)   die "dnf check-update failed with exit code $rc" ;;
        esac
        ;;
    apt)
        apt_refresh
        pending="$(apt-get -s -q dist-upgrade | grep -c '^Inst ' || true)"
        if [ "$pending" -eq 0 ]; then
            log "no pending updates"
        else
            log "applying $pending pending updates"
            # Keep the image's own config files when a package ships a new default.
            DEBIAN_FRONTEND=noninteractive apt-get dist-upgrade -y -q \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
        fi
        ;;
esac
