#!/usr/bin/env bash
# Antivirus signatures and the file-integrity baseline exist; nothing instance-specific was baked in.
set -eu
set -o pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

sigs="$(find "$ROOT/var/lib/clamav" -maxdepth 1 \( -name 'main.c[vl]d' -o -name 'daily.c[vl]d' \) 2>/dev/null | head -n 1)"
check clamav-signatures "no ClamAV signatures in /var/lib/clamav" [ -n "$sigs" ]
aide_db() { [ -f "$ROOT/var/lib/aide/aide.db.gz" ] || [ -f "$ROOT/var/lib/aide/aide.db" ]; }
check aide-baseline "no AIDE database in /var/lib/aide" aide_db

if in_context image; then
    # A booted instance regenerates these; their absence is only checkable before first boot.
    skip no-baked-host-keys "instances regenerate host keys at boot"
else
    keys="$(find "$ROOT/etc/ssh" -maxdepth 1 -name 'ssh_host_*' 2>/dev/null | tr '\n' ' ')"
    check no-baked-host-keys "host keys left in the image: $keys" [ -z "$keys" ]
    check machine-id-empty "/etc/machine-id is not empty" test ! -s "$ROOT/etc/machine-id"
fi
