#!/usr/bin/env bash
# Helpers sourced by every provisioning step (never run on its own).
#
# Every step converges: it looks at the system before acting and acts only on a difference, so a
# second run issues no changing command. Paths go through $ROOT so the same code can be rehearsed
# against a scratch directory (BAKEHOUSE_ROOT) with stubbed package managers; on a real build
# BAKEHOUSE_ROOT is unset and ROOT is "", i.e. "/".
# shellcheck shell=bash

ROOT="${BAKEHOUSE_ROOT:-}"
STEP="${BAKEHOUSE_STEP:-$(basename "$0" .sh)}"

# printf's own clock, not date(1): a step logs a lot and a fork per line adds up.
log() { printf '%(%Y-%m-%dT%H:%M:%S%z)T [%s] %s\n' -1 "$STEP" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- package manager ---------------------------------------------------------------------------
# Detected, not configured: the same scripts serve Amazon Linux 2023 (dnf) and Ubuntu 24.04 (apt).
detect_pkg_manager() {
    if command -v dnf >/dev/null 2>&1; then echo dnf
    elif command -v apt-get >/dev/null 2>&1; then echo apt
    else die "no supported package manager on PATH (need dnf or apt-get)"
    fi
}
PKG="$(detect_pkg_manager)"

pkg_is_installed() {
    case "$PKG" in
        dnf) rpm -q --quiet "$1" ;;
        apt) [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ] ;;
    esac
}

# Package lists younger than an hour are good enough; refreshing them again is churn, not safety.
apt_refresh() {
    local lists="$ROOT/var/lib/apt/lists"
    if [ -d "$lists" ] && [ -n "$(find "$lists" -maxdepth 1 -name '*_Packages' -mmin -60 2>/dev/null | head -n 1)" ]; then
        return 0
    fi
    log "refreshing apt package lists"
    apt-get update -q
}

pkg_install() {
    local missing=() p
    for p in "$@"; do
        pkg_is_installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "already installed: $*"
        return 0
    fi
    log "installing: ${missing[*]}"
    case "$PKG" in
        dnf) dnf install -y -q "${missing[@]}" ;;
        apt) apt_refresh
             DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ;;
    esac
}

# --- services ----------------------------------------------------------------------------------
# Containers (the docker builder) have no systemd: service state is then the image's business at
# boot, and the step says it skipped rather than pretending.
has_systemd() { [ -d "$ROOT/run/systemd/system" ]; }

unit_exists() {
    systemctl list-unit-files --no-legend -- "$1" 2>/dev/null | grep -q .
}

# enable_unit UNIT [now]: enabled at boot; with "now" also running.
enable_unit() {
    local unit="$1" now="${2:-}"
    if ! has_systemd; then log "no systemd: skipping enable of $unit"; return 0; fi
    # static/alias/generated units have nothing to enable: asking again would be a no-op every run.
    case "$(systemctl is-enabled -- "$unit" 2>/dev/null || true)" in
        enabled|static|alias|generated) ;;
        *) log "enabling $unit"; systemctl enable -- "$unit" ;;
    esac
    if [ "$now" = "now" ] && ! systemctl is-active --quiet -- "$unit"; then
        log "starting $unit"
        systemctl start -- "$unit"
    fi
}

# Disabled and masked for the next boot, but never stopped: Packer's session-manager communicator
# tunnels SSH to the build instance, and stopping sshd mid-build would cut the build off.
mask_unit() {
    local unit="$1"
    if ! has_systemd; then log "no systemd: skipping mask of $unit"; return 0; fi
    unit_exists "$unit" || { log "$unit not present"; return 0; }
    if [ "$(systemctl is-enabled -- "$unit" 2>/dev/null || true)" != "masked" ]; then
        log "disabling and masking $unit"
        systemctl disable -- "$unit" >/dev/null 2>&1 || true
        systemctl mask -- "$unit"
    fi
}

# --- files -------------------------------------------------------------------------------------
# write_file PATH MODE < content: replaces the file only when the content differs.
# Sets FILE_CHANGED=yes|no for callers that must reload something.
FILE_CHANGED=no
# shellcheck disable=SC2034  # FILE_CHANGED is read by the steps that source this file
write_file() {
    local path="$1" mode="$2" tmp
    mkdir -p "$(dirname "$path")"
    # Beside the target, so the rename is atomic and the file takes the directory's SELinux label.
    tmp="$(mktemp "$(dirname "$path")/.bakehouse.XXXXXX")"
    cat >"$tmp"
    if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
        rm -f "$tmp"
        FILE_CHANGED=no
    else
        log "writing $path"
        mv "$tmp" "$path"
        FILE_CHANGED=yes
    fi
    ensure_mode "$path" "$mode"
    ensure_owner "$path" root:root
}

ensure_mode() {
    local path="$1" mode="$2"
    if [ "$(stat -c %a "$path")" != "$(printf '%o' "$((8#$mode))")" ]; then
        log "chmod $mode $path"
        chmod "$mode" "$path"
    fi
}

# ensure_mode_at_most PATH MODE: strips every permission bit beyond MODE, adds none.
ensure_mode_at_most() {
    local path="$1" limit="$2" cur new
    [ -e "$path" ] || return 0
    cur="$(stat -c %a "$path")"
    new="$(printf '%o' "$(( 8#$cur & 8#$limit ))")"
    if [ "$new" != "$cur" ]; then
        log "chmod $new $path (was $cur, allowed at most $limit)"
        chmod "$new" "$path"
    fi
}

ensure_owner() {
    local path="$1" owner="$2"
    # An unprivileged rehearsal against a scratch root cannot hand files to root; a real build runs as root.
    if [ -n "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then return 0; fi
    [ -e "$path" ] || return 0
    if [ "$(stat -c %U:%G "$path")" != "$owner" ]; then
        log "chown $owner $path"
        chown "$owner" "$path"
    fi
}

# ensure_kv FILE KEY VALUE [SEP]: one active "KEY<SEP>VALUE" line; other active KEY lines are
# commented out, a missing key is appended. SEP defaults to a space (login.defs style).
ensure_kv() {
    local file="$1" key="$2" value="$3" sep="${4:- }" mode
    mode="$( [ -f "$file" ] && stat -c %a "$file" || echo 644)"
    write_file "$file" "$mode" < <({ [ -f "$file" ] && cat "$file"; true; } | awk -v k="$key" -v v="$value" -v s="$sep" '
        BEGIN { done = 0 }
        {
            line = $0; probe = line; sub(/^[ \t]+/, "", probe)
            if (substr(probe, 1, 1) != "#" && (index(probe, k s) == 1 || index(probe, k "\t") == 1 || index(probe, k "=") == 1 || probe == k)) {
                if (!done) { print k s v; done = 1 } else { print "# " line }
                next
            }
            print line
        }
        END { if (!done) print k s v }')
}

# ensure_line FILE LINE: appends LINE unless an identical line is already there.
ensure_line() {
    local file="$1" line="$2"
    if [ -f "$file" ] && grep -qxF -- "$line" "$file"; then return 0; fi
    local mode
    mode="$( [ -f "$file" ] && stat -c %a "$file" || echo 644)"
    write_file "$file" "$mode" < <({ [ -f "$file" ] && cat "$file"; printf '%s\n' "$line"; })
}
