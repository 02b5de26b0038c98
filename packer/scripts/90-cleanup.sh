#!/usr/bin/env bash
# Leaves nothing instance-specific in the image: SSH host keys, cloud-init state, machine id,
# shell histories, logs and package caches. Every instance regenerates what it needs at first boot.
set -eu
set -o pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

remove() {
    local p
    for p in "$@"; do
        if [ -e "$p" ] || [ -L "$p" ]; then
            log "removing ${p#"$ROOT"}"
            rm -rf -- "$p"
        fi
    done
}

shopt -s nullglob
remove "$ROOT"/etc/ssh/ssh_host_*
remove "$ROOT"/var/lib/cloud/instances "$ROOT"/var/lib/cloud/instance "$ROOT"/var/lib/cloud/data \
       "$ROOT"/var/lib/cloud/sem
remove "$ROOT"/root/.bash_history "$ROOT"/home/*/.bash_history "$ROOT"/root/.lesshst "$ROOT"/home/*/.lesshst
# /tmp is left alone: it is emptied at every boot on both distributions (tmpfs on Amazon Linux,
# tmpfiles on Ubuntu), and Packer and the SSM build run these very scripts from there.
remove "$ROOT"/var/tmp/*
remove "$ROOT"/var/lib/dhclient/* "$ROOT"/var/lib/NetworkManager/*.lease

# systemd makes a fresh machine id at boot when the file is empty (not when it is missing).
if [ -s "$ROOT/etc/machine-id" ]; then
    log "emptying /etc/machine-id"
    : >"$ROOT/etc/machine-id"
fi

# Logs are truncated, not deleted: services expect their files and modes to exist. Our own
# provisioning log stays, as the record of how the image was made.
while IFS= read -r -d '' f; do
    log "truncating ${f#"$ROOT"}"
    : >"$f"
done < <(find "$ROOT/var/log" -type f -size +0 -not -path "$ROOT/var/log/bakehouse/*" -print0 2>/dev/null)
remove "$ROOT"/var/log/*.gz "$ROOT"/var/log/*.[0-9] "$ROOT"/var/log/*/*.gz "$ROOT"/var/log/*/*.[0-9]
remove "$ROOT"/var/log/journal/*

case "$PKG" in
    dnf) if [ -n "$(find "$ROOT/var/cache/dnf" -mindepth 1 -maxdepth 1 2>/dev/null | head -n 1)" ]; then
             log "cleaning the dnf cache"; dnf clean all -q
         fi ;;
    apt) if [ -n "$(find "$ROOT/var/cache/apt/archives" -maxdepth 1 -name '*.deb' 2>/dev/null | head -n 1)" ]; then
             log "cleaning the apt cache"; apt-get clean
         fi ;;
esac
