#!/bin/sh
# Serve a page naming this servo. The page is written to /tmp (a tmpfs): the container's root
# filesystem is read-only unless its spec says `writable_root`.
set -e
www=/tmp/www
mkdir -p "$www"
{
  echo "shoal servo ${SHOAL_SERVO:-unknown} of project ${SHOAL_PROJECT:-unknown} on $(hostname)"
  if [ -f /data/hello.txt ]; then cat /data/hello.txt; fi
} > "$www/index.html"
if [ "$#" -gt 0 ]; then exec "$@"; fi
exec httpd -f -p "${PORT:-8080}" -h "$www"
