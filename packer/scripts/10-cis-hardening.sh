#!/usr/bin/env bash
# CIS level 1, a reviewable subset shared by Amazon Linux 2023 and Ubuntu 24.04:
# unused filesystems off, network sysctls, sshd hardened and disabled (Session Manager replaces it),
# login and password defaults, core dumps off, auditd rules, permissions on account and cron files,
# no world-writable files, time from the Amazon Time Sync Service, legal banners.
set -eu
set -o pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# --- unused filesystem and USB storage modules (CIS 1.1.1.x) -------------------------------------
# squashfs stays: Ubuntu's snaps (the SSM agent among them) are squashfs images.
MODULES="cramfs freevxfs hfs hfsplus jffs2 udf usb-storage"
{
    echo "# Managed by bakehouse 10-cis-hardening: filesystems and devices no server here uses."
    for m in $MODULES; do
        echo "install $m /bin/false"
        echo "blacklist $m"
    done
} | write_file "$ROOT/etc/modprobe.d/60-bakehouse-cis.conf" 0644
for m in $MODULES; do
    # /proc/modules lists names with underscores (usb_storage).
    if [ -r "$ROOT/proc/modules" ] && grep -q "^${m//-/_} " "$ROOT/proc/modules"; then
        log "unloading module $m"
        modprobe -r "$m"
    fi
done

# --- network and kernel parameters (CIS 3.3.x, 1.5.x) ---------------------------------------------
# accept_ra is left alone: EC2 hands IPv6 default routes out by router advertisement.
SYSCTL_CONF="$ROOT/etc/sysctl.d/60-bakehouse-cis.conf"
write_file "$SYSCTL_CONF" 0644 <<'CONF'
# Managed by bakehouse 10-cis-hardening (CIS level 1).
net.ipv4.ip_forward = 0
net.ipv4.conf.all.send_redirects = 0
net.ipv4.conf.default.send_redirects = 0
net.ipv4.conf.all.accept_redirects = 0
net.ipv4.conf.default.accept_redirects = 0
net.ipv4.conf.all.secure_redirects = 0
net.ipv4.conf.default.secure_redirects = 0
net.ipv4.conf.all.accept_source_route = 0
net.ipv4.conf.default.accept_source_route = 0
net.ipv4.conf.all.log_martians = 1
net.ipv4.conf.default.log_martians = 1
net.ipv4.conf.all.rp_filter = 1
net.ipv4.conf.default.rp_filter = 1
net.ipv4.icmp_echo_ignore_broadcasts = 1
net.ipv4.icmp_ignore_bogus_error_responses = 1
net.ipv4.tcp_syncookies = 1
net.ipv6.conf.all.accept_redirects = 0
net.ipv6.conf.default.accept_redirects = 0
net.ipv6.conf.all.accept_source_route = 0
net.ipv6.conf.default.accept_source_route = 0
kernel.randomize_va_space = 2
kernel.yama.ptrace_scope = 1
fs.suid_dumpable = 0
CONF
if has_systemd; then
    # Apply only the values that differ at runtime, so a rerun touches nothing.
    while IFS='=' read -r key value; do
        key="$(echo "$key" | tr -d ' ')"; value="$(echo "$value" | tr -d ' ')"
        case "$key" in ''|'#'*) continue ;; esac
        if [ "$(sysctl -n "$key" 2>/dev/null || true)" != "$value" ]; then
            log "sysctl $key=$value"
            sysctl -q -w "$key=$value"
        fi
    done <"$SYSCTL_CONF"
else
    log "no systemd (container): sysctl values apply when the image boots"
fi

# --- sshd (CIS 5.2.x): hardened in case anyone re-enables it, and off at boot ----------------------
# Both distributions include sshd_config.d/*.conf before their own settings and sshd keeps the
# first value it reads, so a 00- drop-in wins over the vendor's 50- files.
write_file "$ROOT/etc/ssh/sshd_config.d/00-bakehouse-cis.conf" 0600 <<'CONF'
# Managed by bakehouse 10-cis-hardening. Access is through SSM Session Manager; sshd is masked.
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
HostbasedAuthentication no
IgnoreRhosts yes
PermitUserEnvironment no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
MaxAuthTries 4
MaxSessions 10
MaxStartups 10:30:60
LoginGraceTime 60
ClientAliveInterval 300
ClientAliveCountMax 3
LogLevel VERBOSE
Banner /etc/issue.net
CONF
if command -v sshd >/dev/null 2>&1 && [ -z "$ROOT" ]; then
    sshd -t || die "sshd rejects the hardened configuration"
fi
# Ubuntu 24.04 starts sshd through socket activation (ssh.socket); Amazon Linux runs sshd.service.
for unit in ssh.socket ssh.service sshd.service; do
    mask_unit "$unit"
done

# --- login and password defaults (CIS 5.4.1.x, 5.4.3.x) -------------------------------------------
LOGIN_DEFS="$ROOT/etc/login.defs"
ensure_kv "$LOGIN_DEFS" PASS_MAX_DAYS 365
ensure_kv "$LOGIN_DEFS" PASS_MIN_DAYS 1
ensure_kv "$LOGIN_DEFS" PASS_WARN_AGE 7
ensure_kv "$LOGIN_DEFS" UMASK 027
ensure_kv "$LOGIN_DEFS" ENCRYPT_METHOD SHA512
ensure_kv "$ROOT/etc/default/useradd" INACTIVE 30 "="
write_file "$ROOT/etc/profile.d/60-bakehouse-cis.sh" 0644 <<'CONF'
# Managed by bakehouse 10-cis-hardening: idle shells end, new files are not world-readable.
umask 027
# Guarded: profile.d can be read twice in one shell, and a readonly cannot be set again.
[ "${TMOUT:-}" = 900 ] || { TMOUT=900; readonly TMOUT; export TMOUT; }
CONF
# Local passwords, should anyone set one: long and mixed (CIS 5.3.3.2). Amazon Linux's PAM stack
# already calls pam_pwquality; Ubuntu's needs the module installed.
if [ "$PKG" = apt ]; then pkg_install libpam-pwquality; fi
write_file "$ROOT/etc/security/pwquality.conf.d/60-bakehouse-cis.conf" 0644 <<'CONF'
# Managed by bakehouse 10-cis-hardening.
minlen = 14
minclass = 4
maxrepeat = 3
enforce_for_root
CONF
# Core dumps can hold secrets from memory (CIS 1.5.x).
write_file "$ROOT/etc/security/limits.d/60-bakehouse-cis.conf" 0644 <<'CONF'
# Managed by bakehouse 10-cis-hardening.
* hard core 0
CONF
write_file "$ROOT/etc/systemd/coredump.conf.d/60-bakehouse-cis.conf" 0644 <<'CONF'
[Coredump]
Storage=none
ProcessSizeMax=0
CONF

# --- auditd and its rules (CIS 6.2.x) ---------------------------------------------------------------
case "$PKG" in
    dnf) pkg_install audit ;;
    apt) pkg_install auditd audispd-plugins ;;
esac
# b64 covers both x86_64 and aarch64 images; neither runs 32-bit binaries.
ARCH_BITS=b64
write_file "$ROOT/etc/audit/rules.d/60-bakehouse-cis.rules" 0640 <<CONF
## Managed by bakehouse 10-cis-hardening (CIS level 1 audit rules).
-a always,exit -F arch=$ARCH_BITS -S adjtimex,settimeofday,clock_settime -k time-change
-w /etc/localtime -p wa -k time-change
-w /etc/group -p wa -k identity
-w /etc/passwd -p wa -k identity
-w /etc/gshadow -p wa -k identity
-w /etc/shadow -p wa -k identity
-w /etc/security/opasswd -p wa -k identity
-a always,exit -F arch=$ARCH_BITS -S sethostname,setdomainname -k system-locale
-w /etc/issue -p wa -k system-locale
-w /etc/issue.net -p wa -k system-locale
-w /etc/hosts -p wa -k system-locale
-w /etc/hostname -p wa -k system-locale
-w /etc/selinux -p wa -k MAC-policy
-w /etc/apparmor.d -p wa -k MAC-policy
-w /var/log/lastlog -p wa -k logins
-w /var/run/faillock -p wa -k logins
-w /var/run/utmp -p wa -k session
-w /var/log/wtmp -p wa -k session
-w /var/log/btmp -p wa -k session
-a always,exit -F arch=$ARCH_BITS -S chmod,fchmod,fchmodat -F auid>=1000 -F auid!=unset -k perm_mod
-a always,exit -F arch=$ARCH_BITS -S chown,fchown,lchown,fchownat -F auid>=1000 -F auid!=unset -k perm_mod
-a always,exit -F arch=$ARCH_BITS -S setxattr,lsetxattr,fsetxattr,removexattr,lremovexattr,fremovexattr -F auid>=1000 -F auid!=unset -k perm_mod
-a always,exit -F arch=$ARCH_BITS -S creat,open,openat,truncate,ftruncate -F exit=-EACCES -F auid>=1000 -F auid!=unset -k access
-a always,exit -F arch=$ARCH_BITS -S creat,open,openat,truncate,ftruncate -F exit=-EPERM -F auid>=1000 -F auid!=unset -k access
-a always,exit -F arch=$ARCH_BITS -S mount -F auid>=1000 -F auid!=unset -k mounts
-a always,exit -F arch=$ARCH_BITS -S unlink,unlinkat,rename,renameat -F auid>=1000 -F auid!=unset -k delete
-w /etc/sudoers -p wa -k scope
-w /etc/sudoers.d -p wa -k scope
-w /var/log/sudo.log -p wa -k actions
-a always,exit -F arch=$ARCH_BITS -S init_module,finit_module,delete_module -k modules
-w /usr/sbin/insmod -p x -k modules
-w /usr/sbin/rmmod -p x -k modules
-w /usr/sbin/modprobe -p x -k modules
CONF
rules_changed="$FILE_CHANGED"
# Immutable until reboot: loaded last, so tampering with the rules needs a reboot that the trail shows.
write_file "$ROOT/etc/audit/rules.d/99-bakehouse-finalize.rules" 0640 <<'CONF'
-e 2
CONF
if [ "$rules_changed" = yes ] || [ "$FILE_CHANGED" = yes ]; then
    if has_systemd; then augenrules --load; else log "no systemd: audit rules load at boot"; fi
fi
AUDITD_CONF="$ROOT/etc/audit/auditd.conf"
# Rotated rather than kept forever (that is level 2): the CloudWatch agent ships audit.log off the host.
ensure_kv "$AUDITD_CONF" max_log_file 32 " = "
ensure_kv "$AUDITD_CONF" num_logs 8 " = "
ensure_kv "$AUDITD_CONF" max_log_file_action ROTATE " = "
ensure_kv "$AUDITD_CONF" space_left_action email " = "
ensure_kv "$AUDITD_CONF" admin_space_left_action single " = "
enable_unit auditd.service

# --- permissions on account and scheduler files (CIS 7.1.x, 2.4.x) -------------------------------
ensure_mode_at_most "$ROOT/etc/passwd" 0644
ensure_mode_at_most "$ROOT/etc/group" 0644
ensure_mode_at_most "$ROOT/etc/shadow" 0640
ensure_mode_at_most "$ROOT/etc/gshadow" 0640
ensure_mode_at_most "$ROOT/etc/passwd-" 0644
ensure_mode_at_most "$ROOT/etc/group-" 0644
ensure_mode_at_most "$ROOT/etc/shadow-" 0640
ensure_mode_at_most "$ROOT/etc/gshadow-" 0640
ensure_mode_at_most "$ROOT/etc/crontab" 0600
for d in cron.hourly cron.daily cron.weekly cron.monthly cron.d; do
    ensure_mode_at_most "$ROOT/etc/$d" 0700
done
# Only root schedules jobs; an allow list beats a deny list (CIS 2.4.1.8).
if [ -d "$ROOT/etc/cron.d" ] || [ -f "$ROOT/etc/crontab" ]; then
    [ ! -e "$ROOT/etc/cron.deny" ] || { log "removing /etc/cron.deny"; rm -f "$ROOT/etc/cron.deny"; }
    write_file "$ROOT/etc/cron.allow" 0640 </dev/null
fi

# --- no world-writable files; sticky bit on world-writable directories (CIS 7.1.11) ---------------
# -xdev keeps to the root filesystem: /proc, /sys and /dev are other mounts.
while IFS= read -r -d '' f; do
    log "removing world write from $f"
    chmod o-w "$f"
done < <(find "$ROOT/" -xdev -type f -perm -0002 -not -path "$ROOT/proc/*" -not -path "$ROOT/sys/*" -print0 2>/dev/null)
while IFS= read -r -d '' d; do
    log "setting sticky bit on $d"
    chmod +t "$d"
done < <(find "$ROOT/" -xdev -type d -perm -0002 ! -perm -1000 -not -path "$ROOT/proc/*" -not -path "$ROOT/sys/*" -print0 2>/dev/null)

# --- time synchronisation from the Amazon Time Sync Service (CIS 2.3.x) ---------------------------
pkg_install chrony
case "$PKG" in
    dnf) CHRONY_CONF="$ROOT/etc/chrony.conf"; CHRONY_UNIT=chronyd.service ;;
    apt) CHRONY_CONF="$ROOT/etc/chrony/chrony.conf"; CHRONY_UNIT=chrony.service ;;
esac
ensure_line "$CHRONY_CONF" "server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4"
enable_unit "$CHRONY_UNIT" now
mask_unit systemd-timesyncd.service

# --- banners (CIS 1.7.x): no OS version disclosed --------------------------------------------------
for banner in issue issue.net motd; do
    write_file "$ROOT/etc/$banner" 0644 <<'CONF'
Authorised use only. Activity on this system is monitored and recorded.
CONF
done
