#!/usr/bin/env bash
# Antivirus (ClamAV, signatures kept fresh, weekly scan), file integrity (AIDE baseline, daily
# check) and auditd running. The AIDE baseline is taken once: a rerun keeps the first baseline.
set -eu
set -o pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# auditd is also 10-cis-hardening's (with its rules); named here too so this step stands alone.
case "$PKG" in
    dnf) pkg_install clamav clamav-update aide audit
         AIDE_CHECK="/usr/sbin/aide --check" ;;
    apt) pkg_install clamav clamav-freshclam aide auditd
         AIDE_CHECK="/usr/bin/aide --config /etc/aide/aide.conf --check" ;;
esac

# --- ClamAV signatures ----------------------------------------------------------------------------
CLAMDB="$ROOT/var/lib/clamav"
if [ -n "$(find "$CLAMDB" -maxdepth 1 \( -name 'main.c[vl]d' -o -name 'daily.c[vl]d' \) 2>/dev/null | head -n 1)" ]; then
    log "ClamAV signatures present"
else
    # Ubuntu's freshclam service starts on install and holds the database lock while it downloads;
    # fetching here instead means validation right after this step finds the signatures in place.
    if has_systemd && systemctl is-active --quiet clamav-freshclam.service; then
        log "stopping clamav-freshclam.service to fetch the signatures now"
        systemctl stop clamav-freshclam.service
    fi
    log "fetching ClamAV signatures"
    freshclam --quiet
fi
if has_systemd && unit_exists clamav-freshclam.service; then
    enable_unit clamav-freshclam.service
fi

# --- scheduled scans ---------------------------------------------------------------------------------
UNITS="$ROOT/etc/systemd/system"
units_changed=no
write_file "$UNITS/bakehouse-clamscan.service" 0644 <<'UNIT'
[Unit]
Description=Bakehouse weekly ClamAV scan of local filesystems

[Service]
Type=oneshot
Nice=19
IOSchedulingClass=idle
ExecStart=/usr/bin/clamscan --recursive --infected --cross-fs=no --exclude-dir=^/proc --exclude-dir=^/sys --exclude-dir=^/dev /
UNIT
[ "$FILE_CHANGED" = no ] || units_changed=yes
write_file "$UNITS/bakehouse-clamscan.timer" 0644 <<'UNIT'
[Unit]
Description=Bakehouse weekly ClamAV scan

[Timer]
OnCalendar=weekly
RandomizedDelaySec=6h
Persistent=true

[Install]
WantedBy=timers.target
UNIT
[ "$FILE_CHANGED" = no ] || units_changed=yes
write_file "$UNITS/bakehouse-aide-check.service" 0644 <<UNIT
[Unit]
Description=Bakehouse daily AIDE file integrity check

[Service]
Type=oneshot
Nice=19
ExecStart=$AIDE_CHECK
UNIT
[ "$FILE_CHANGED" = no ] || units_changed=yes
write_file "$UNITS/bakehouse-aide-check.timer" 0644 <<'UNIT'
[Unit]
Description=Bakehouse daily AIDE file integrity check

[Timer]
OnCalendar=daily
RandomizedDelaySec=2h
Persistent=true

[Install]
WantedBy=timers.target
UNIT
[ "$FILE_CHANGED" = no ] || units_changed=yes
if [ "$units_changed" = yes ] && has_systemd; then systemctl daemon-reload; fi
enable_unit bakehouse-clamscan.timer
enable_unit bakehouse-aide-check.timer

# --- AIDE baseline --------------------------------------------------------------------------------------
case "$PKG" in
    dnf)
        if [ -f "$ROOT/var/lib/aide/aide.db.gz" ]; then
            log "AIDE baseline present"
        else
            log "initialising the AIDE baseline"
            aide --init
            mv "$ROOT/var/lib/aide/aide.db.new.gz" "$ROOT/var/lib/aide/aide.db.gz"
        fi ;;
    apt)
        if [ -f "$ROOT/var/lib/aide/aide.db" ]; then
            log "AIDE baseline present"
        else
            log "initialising the AIDE baseline"
            aideinit --yes --force
        fi ;;
esac

# --- auditd ------------------------------------------------------------------------------------------
enable_unit auditd.service now
