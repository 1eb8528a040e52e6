#!/usr/bin/env bash
# Build the servo image from Debian's busybox-static with no registry: FROM scratch + the binary.
set -euo pipefail
tag="${1:-shoal-servo:latest}"
here="$(cd "$(dirname "$0")" && pwd)"
bb="$(command -v busybox || echo /bin/busybox)"
if ! file -L "$bb" 2>/dev/null | grep -q 'statically linked' && ! ldd "$bb" 2>&1 | grep -q 'not a dynamic'; then
  echo "busybox at $bb is not static; install busybox-static" >&2; exit 1
fi
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$bb" "$ctx/busybox"
cp "$here/Dockerfile" "$here/entrypoint.sh" "$here/passwd" "$here/group" "$ctx/"
DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$ctx" >/dev/null 2>"$ctx/err" || { cat "$ctx/err" >&2; exit 1; }
echo "built $tag"
