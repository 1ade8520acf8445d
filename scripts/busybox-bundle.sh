#!/bin/sh
# Builds an OCI bundle (rootfs/ + config.json) from Debian's busybox-static:
# a real userland in one static binary, no network needed.
#   scripts/busybox-bundle.sh DIR [CMD...]
set -eu
dir=${1:?usage: scripts/busybox-bundle.sh DIR [CMD...]}
shift
busybox=${BUSYBOX:-/bin/busybox}
if ! [ -x "$busybox" ]; then
  echo "busybox-bundle: $busybox not found: install Debian's busybox-static (apt-get install busybox-static)" >&2
  exit 1
fi
here=$(cd "$(dirname "$0")/.." && pwd)
rootfs="$dir/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/tmp" "$rootfs/root"
chmod 1777 "$rootfs/tmp"
cp "$busybox" "$rootfs/bin/busybox"
# Every applet as a symlink to /bin/busybox, as the rootfs sees it.
for applet in $("$rootfs/bin/busybox" --list); do
  [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
rm -f "$dir/config.json"
node "$here/dist/tsrun.js" spec --bundle "$dir"
# A bundle for scripts and tests: no terminal, and the command given here.
node -e '
  const fs = require("fs"); const file = process.argv[1];
  const spec = JSON.parse(fs.readFileSync(file, "utf8"));
  spec.process.terminal = false;
  const args = process.argv.slice(2);
  if (args.length) spec.process.args = args;
  fs.writeFileSync(file, JSON.stringify(spec, null, "\t") + "\n");
' "$dir/config.json" "$@"
echo "$dir"
