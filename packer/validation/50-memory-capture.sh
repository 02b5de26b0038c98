#!/usr/bin/env bash
# The memory-capture tool the isolation playbook runs (`avml` from PATH, handlers/isolate.py) is on the
# image, and it is the pinned build 55-memory-capture.sh installed: its SHA-256 is the one
# /etc/bakehouse/memory-capture records, which the AMI's bakehouse:avml-sha256 tag carries too.
set -eu
set -o pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

RECORD="$ROOT/etc/bakehouse/memory-capture"
if [ ! -f "$RECORD" ]; then
    # Only a rehearsal against a scratch root may go without the pins (55-memory-capture.sh skips too).
    if [ -n "$ROOT" ]; then
        skip memory-capture "rehearsal without AVML pins: no memory-capture tool installed"
    else
        fail memory-capture "no $RECORD: the image carries no memory-capture tool"
    fi
    exit 0
fi

field() { sed -n "s/^$1=//p" "$RECORD" | head -n 1; }
want="$(field sha256)"
path="$(field path)"
binary="$ROOT$path"

installed() { [ -n "$path" ] && [ -f "$binary" ] && [ -x "$binary" ]; }
check memory-capture "avml is not installed executable at '${path}' (recorded in /etc/bakehouse/memory-capture)" installed

if [ -z "$ROOT" ]; then
    on_path() { [ "$(command -v avml 2>/dev/null || true)" = "$path" ]; }
    check avml-on-path "avml on PATH is '$(command -v avml 2>/dev/null || echo nothing)', not $path" on_path
else
    skip avml-on-path "rehearsal: PATH is the rig's, not the image's"
fi

got=""
if installed; then got="$(sha256sum "$binary" | cut -d' ' -f1)"; fi
matches() { [ -n "$want" ] && [ "$got" = "$want" ]; }
check avml-sha256 "$path has SHA-256 '${got:-none}', the image records '${want:-none}'" matches
