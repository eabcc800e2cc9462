#!/usr/bin/env bash
# Print the path of a versitygw binary (an S3-compatible server the
# extractors/s3drop tests run on loopback), building it once if needed.
#
# The binary is cached outside the repository, in
#   ${CAREINDEX_TOOLS_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/careindex-tools/bin}
# and reused when present. Building takes a couple of minutes (Go module proxy
# only). Progress goes to stderr; stdout carries only the binary's path, so
#   export CAREINDEX_VERSITYGW="$(.ci/versitygw.sh)"
# works.
set -euo pipefail

VERSION="${VERSITYGW_VERSION:-v1.8.0}"
CACHE="${CAREINDEX_TOOLS_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/careindex-tools/bin}"
BIN="$CACHE/versitygw"
STAMP="$CACHE/versitygw.version"

if [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null || true)" = "$VERSION" ]; then
  printf '%s\n' "$BIN"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
  else
    echo "versitygw.sh: go is not on PATH" >&2
    exit 1
  fi
fi

mkdir -p "$CACHE"
echo "versitygw.sh: building github.com/versity/versitygw/cmd/versitygw@$VERSION into $CACHE (takes a few minutes)" >&2
# Run outside the repository so the project's go.mod is neither read nor changed.
(cd "$CACHE" && GOBIN="$CACHE" GOFLAGS= go install "github.com/versity/versitygw/cmd/versitygw@$VERSION") >&2
printf '%s\n' "$VERSION" >"$STAMP"
printf '%s\n' "$BIN"
