#!/usr/bin/env bash
# Memory capture for incident response: AVML, a static binary, at /usr/local/bin/avml (the isolation
# playbook runs it through Run Command before it cuts the instance off). AVML is published on GitHub,
# outside the build network's allow-list, so the release path keeps the pinned build in the factory's
# scripts bucket, staged beside these scripts; it is installed only if its SHA-256 is the pinned one.
# A rerun with the same binary changes nothing.
#
#   BAKEHOUSE_AVML_VERSION  the pinned release (factory settings -> Packer variable avml_version)
#   BAKEHOUSE_AVML_SHA256   its SHA-256 (factory settings -> Packer variable avml_sha256; the AMI's
#                           bakehouse:avml-sha256 tag carries the same value)
#   BAKEHOUSE_AVML_SOURCE   where the staged binary is: a file (default: tools/avml-<version> beside this
#                           script) or s3://<scripts bucket>/tools/avml/<version>/avml
set -eu
set -o pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

if [ -z "${BAKEHOUSE_AVML_SHA256:-}" ] && [ -n "$ROOT" ]; then
    # Only a rehearsal against a scratch root may go without the pins; a real build (ROOT is /) may not.
    log "rehearsal without AVML pins: memory capture tool not installed"
    exit 0
fi
VERSION="${BAKEHOUSE_AVML_VERSION:?BAKEHOUSE_AVML_VERSION is required: the pinned AVML release}"
SHA256="${BAKEHOUSE_AVML_SHA256:?BAKEHOUSE_AVML_SHA256 is required: the pinned AVML build digest}"
SOURCE="${BAKEHOUSE_AVML_SOURCE:-$(cd "$(dirname "$0")" && pwd)/tools/avml-$VERSION}"
case "$SHA256" in
    *[!0-9a-f]*) die "BAKEHOUSE_AVML_SHA256 '$SHA256' is not a lowercase hex SHA-256" ;;
esac
[ "${#SHA256}" -eq 64 ] || die "BAKEHOUSE_AVML_SHA256 '$SHA256' is not 64 hex digits"

TARGET="$ROOT/usr/local/bin/avml"
digest() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$TARGET" ] && [ "$(digest "$TARGET")" = "$SHA256" ]; then
    log "AVML $VERSION present"
else
    work="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand now: $work is this run's
    trap "rm -rf '$work'" EXIT
    case "$SOURCE" in
        s3://*) log "fetching AVML $VERSION from $SOURCE"
                aws s3 cp --only-show-errors "$SOURCE" "$work/avml" ;;
        *) [ -f "$SOURCE" ] || die "AVML $VERSION is not staged at $SOURCE"
           cp "$SOURCE" "$work/avml" ;;
    esac
    got="$(digest "$work/avml")"
    [ "$got" = "$SHA256" ] || die "AVML from $SOURCE has SHA-256 $got, expected $SHA256; not installed"
    log "installing AVML $VERSION ($SHA256)"
    mkdir -p "$(dirname "$TARGET")"
    chmod 0755 "$work/avml"
    mv "$work/avml" "$TARGET"
fi
ensure_mode "$TARGET" 0755
ensure_owner "$TARGET" root:root

# On the instance, beside /etc/bakehouse/image-build: what a responder's capture ran.
write_file "$ROOT/etc/bakehouse/memory-capture" 0644 <<RECORD
tool=avml
version=$VERSION
sha256=$SHA256
path=/usr/local/bin/avml
RECORD
