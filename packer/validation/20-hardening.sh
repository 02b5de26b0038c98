#!/usr/bin/env bash
# The CIS settings are in force: kernel parameters at runtime, modules blocked, sshd configured and
# masked, password defaults, audit rules loaded, file permissions, no world-writable files.
set -eu
set -o pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

SYSCTL_CONF="$ROOT/etc/sysctl.d/60-bakehouse-cis.conf"
# Independent of the provisioning script: the settings whose absence would fail the image outright.
for kv in net.ipv4.ip_forward=0 net.ipv4.conf.all.accept_redirects=0 net.ipv4.conf.all.send_redirects=0 \
          net.ipv4.conf.all.accept_source_route=0 net.ipv4.tcp_syncookies=1 kernel.randomize_va_space=2 \
          fs.suid_dumpable=0; do
    key="${kv%%=*}"; want="${kv#*=}"
    if in_context container; then
        check "sysctl-configured:$key" "$key is not set to $want in ${SYSCTL_CONF#"$ROOT"}" \
            grep -Eq "^[[:space:]]*${key}[[:space:]]*=[[:space:]]*${want}[[:space:]]*\$" "$SYSCTL_CONF"
    else
        got="$(sysctl -n "$key" 2>/dev/null || echo unreadable)"
        check "sysctl:$key" "$key is $got at runtime, want $want" [ "$got" = "$want" ]
    fi
done

for m in cramfs hfs usb-storage; do
    check "module-blocked:$m" "no 'install $m /bin/false' under /etc/modprobe.d" \
        grep -rqsx "install $m /bin/false" "$ROOT/etc/modprobe.d"
done

SSHD_DROPIN="$ROOT/etc/ssh/sshd_config.d/00-bakehouse-cis.conf"
for setting in "PermitRootLogin no" "PasswordAuthentication no" "PermitEmptyPasswords no" "MaxAuthTries 4"; do
    check "sshd:${setting%% *}" "'$setting' missing from ${SSHD_DROPIN#"$ROOT"}" grep -qx "$setting" "$SSHD_DROPIN"
done
if in_context container; then
    skip ssh-masked "no systemd in a container build"
else
    for unit in ssh.socket ssh.service sshd.service; do
        unit_exists "$unit" || continue
        state="$(systemctl is-enabled -- "$unit" 2>/dev/null || true)"
        check "ssh-masked:$unit" "$unit is '$state' at boot, want masked" [ "$state" = masked ]
    done
fi

max_days="$(awk '$1 == "PASS_MAX_DAYS" { print $2 }' "$ROOT/etc/login.defs" 2>/dev/null | tail -n 1)"
in_range() { [ -n "$1" ] && [ "$1" -ge "$2" ] 2>/dev/null && [ "$1" -le "$3" ]; }
check login-pass-max-days "PASS_MAX_DAYS is '${max_days}', want 1..365" in_range "$max_days" 1 365

check password-quality "minlen = 14 missing from /etc/security/pwquality.conf.d" \
    grep -rqsx "minlen = 14" "$ROOT/etc/security/pwquality.conf.d"

check audit-rules-file "no bakehouse audit rules under /etc/audit/rules.d" \
    grep -qs -- "-k identity" "$ROOT/etc/audit/rules.d/60-bakehouse-cis.rules"
if in_context container; then
    skip audit-rules-loaded "no kernel audit in a container build"
else
    rules_loaded() { auditctl -l 2>/dev/null | grep -q -- "-k identity"; }
    check audit-rules-loaded "auditctl -l shows no identity rule" rules_loaded
fi

mode_at_most() { [ ! -e "$1" ] || [ $(( 8#$(stat -c %a "$1") & ~8#$2 )) -eq 0 ]; }
for spec in passwd:644 group:644 shadow:640 gshadow:640; do
    f="${spec%%:*}"; m="${spec#*:}"
    check "mode:/etc/$f" "/etc/$f is $(stat -c %a "$ROOT/etc/$f" 2>/dev/null || echo missing), want at most $m" \
        mode_at_most "$ROOT/etc/$f" "$m"
done

ww="$(find "$ROOT/" -xdev -type f -perm -0002 -not -path "$ROOT/proc/*" -not -path "$ROOT/sys/*" 2>/dev/null | head -n 5 | tr '\n' ' ')"
check no-world-writable-files "world-writable: $ww" [ -z "$ww" ]
