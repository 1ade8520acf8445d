#!/bin/sh
# Makes the image "busybox" (docker.io/library/busybox:latest) in the tsrun
# store from Debian's busybox-static: a real userland, no registry needed.
#   scripts/busybox-image.sh [NAME]      (TSRUN_STORAGE picks the store)
set -eu
name=${1:-busybox}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$here/scripts/busybox-bundle.sh" "$work/bundle" >/dev/null
tar -C "$work/bundle/rootfs" --numeric-owner -czf "$work/rootfs.tar.gz" .
node "$here/dist/tsrun.js" import "$work/rootfs.tar.gz" "$name" --change 'CMD ["sh"]' >/dev/null
echo "$name"
