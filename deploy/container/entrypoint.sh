#!/bin/sh
# The image's entrypoint: `mlops-lite "$@"` (up, serve, worker or any other command).
# `up` on a volume that holds no home yet makes one first (`mlops-lite init`); its
# standard output, which shows the new admin token, is dropped (the token is in the
# home, mode 0600): it would otherwise reach the container's log. Its errors are shown.
set -eu
home="${MLOPS_LITE_HOME:-/data/home}"
if [ "${1:-}" = up ] && [ ! -e "$home/admin.token" ]; then
  if ! mlops-lite init > /dev/null; then
    echo "entrypoint: mlops-lite init failed in $home (its errors are above)" >&2
    exit 1
  fi
  echo "entrypoint: new home in $home; the admin token is in $home/admin.token (mode 0600)"
fi
exec mlops-lite "$@"
