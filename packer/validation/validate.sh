#!/usr/bin/env bash
# Entrypoint of image validation, the same for Packer and for the SSM ValidateImage document:
# runs every check below, prints PASS/FAIL/SKIP lines and a summary, and exits 1 if anything failed.
#
#   BAKEHOUSE_CONTEXT  image (default) | build | container - see lib.sh
set -eu
set -o pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CHECKS="10-services.sh 20-hardening.sh 30-network.sh 40-security-tools.sh 50-memory-capture.sh"

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
broken=0
for c in $CHECKS; do
    # A check that crashes is a failure, not a silent pass.
    if ! "$HERE/$c" >>"$out"; then
        echo "FAIL $c: the check itself exited non-zero" >>"$out"
        broken=1
    fi
done
cat "$out"
failed="$(grep -c '^FAIL ' "$out" || true)"
passed="$(grep -c '^PASS ' "$out" || true)"
skipped="$(grep -c '^SKIP ' "$out" || true)"
echo "=== validation (${BAKEHOUSE_CONTEXT:-image}): $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$broken" -eq 0 ]
