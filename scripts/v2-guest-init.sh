#!/v2/busybox sh
# /init of the pure cgroup v2 guest that scripts/v2-guest.sh boots.
# It is copied into the initramfs; it is not meant to run on the host.
#
# The initramfs holds only busybox (/v2/busybox), the kernel modules needed
# for virtio-9p (/v2/modules/, load order in /v2/modules.list), a tiny /etc,
# /v2/config (paths and 9p tags) and /v2/cmd.sh (the command). Everything
# else comes from the host over 9p: /usr read-only (bin, lib, lib64 and sbin
# are symlinks into it, as on a merged-/usr Debian host, so the host's node
# and the project's built addon run unchanged) and the project read-write at
# the same path as on the host.
#
# Channels: ttyS0 is the console (kernel and init noise), ttyS1 the command's
# stdout, ttyS2 its stderr, ttyS3 one line "exit N". Nothing else writes to
# ttyS1-3, so the host gets the command's output byte for byte.

# Until /usr is mounted, only busybox's applets exist.
/v2/busybox mkdir -p /v2/bin
/v2/busybox --install -s /v2/bin
export PATH=/v2/bin

log() { echo "v2-guest-init: $*" >/dev/console; }

# Stage 1: leave the initramfs. Its root is the kernel's rootfs, which can
# never be unmounted, so pivot_root(2) refuses (EINVAL) to move it away, and
# every container runtime pivots. Copy ourselves into a tmpfs and
# switch_root there; a tmpfs mounted on top is an ordinary mount.
if [ "${1:-}" != stage2 ]; then
  mkdir -p /newroot
  mount -t tmpfs -o mode=0755 root /newroot
  for e in /*; do
    case $e in /newroot) ;; *) cp -a "$e" /newroot/ ;; esac
  done
  exec switch_root /newroot /init stage2
fi

# The end, on every path: kill what the command left behind (so the serial
# ports see their last close), drain the ports (stty's tcsetattr waits for
# the output to leave), write the status, power off. poweroff -f makes QEMU
# exit; a panic would too, since QEMU runs with -no-reboot and panic=-1.
# "exit N" is the command's status; "setup failed" tells the host to show
# the console and exit 125.
finish() {
  kill -KILL -1 2>/dev/null
  sync
  for t in 1 2; do stty -F /dev/ttyS$t raw -echo 2>/dev/null; done
  echo "$1" >/dev/ttyS3
  stty -F /dev/ttyS3 raw -echo 2>/dev/null
  poweroff -f
  # poweroff -f does not return; if it somehow did, init exiting panics.
  exit 1
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
mount -t mqueue mqueue /dev/mqueue 2>/dev/null
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr

# Raw ports: no \n -> \r\n, no echo. Settings survive close on serial ttys.
for t in 1 2 3; do stty -F /dev/ttyS$t raw -echo || log "stty ttyS$t failed"; done

. /v2/config

# Modules in dependency order (computed on the host from modules.dep; the
# built-in ones were left out there). "File exists" means already loaded.
while read -r m; do
  [ -n "$m" ] || continue
  if ! insmod "/v2/modules/$m.ko" 2>/tmp-insmod.err; then
    grep -q "^$m " /proc/modules || log "insmod $m: $(cat /tmp-insmod.err)"
  fi
done </v2/modules.list
rm -f /tmp-insmod.err

# 9p: a large msize for throughput under emulation. /usr never changes under
# us, so it may be cached; the project is shared with the host, so it is not.
p9="trans=virtio,version=9p2000.L,msize=$V2_MSIZE"
if ! mount -t 9p -o "$p9,ro,cache=loose" usr /usr; then
  log "cannot mount the host's /usr over 9p"
  finish "setup failed"
fi
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/v2/bin

mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mount -t tmpfs -o mode=0700 tmpfs /root
mkdir -p /var/tmp /var/lib /var/run /var/log && chmod 1777 /var/tmp

# The point of the guest: one cgroup2 hierarchy and nothing else (the kernel
# runs with cgroup_no_v1=all, so nothing can mount a v1 hierarchy either),
# mounted with systemd's options and with every available controller enabled
# for children of the root, as on a systemd host in unified mode. One write
# per controller so that one refusal does not cost the others. The command
# itself stays in the root cgroup (its /proc/self/cgroup reads "0::/").
mount -t cgroup2 -o nosuid,nodev,noexec,nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup || { log "cannot mount cgroup2"; finish "setup failed"; }
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
  echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || log "cannot enable controller $c"
done

mkdir -p "$V2_PROJECT"
if ! mount -t 9p -o "$p9" project "$V2_PROJECT"; then
  log "cannot mount the project at $V2_PROJECT"
  finish "setup failed"
fi
i=0
for dir in $V2_SHARES; do
  mkdir -p "$dir" && mount -t 9p -o "$p9" "share$i" "$dir" || log "cannot mount share$i at $dir"
  i=$((i + 1))
done

ip link set lo up 2>/dev/null
hostname v2-guest

log "ready: $(cat /sys/fs/cgroup/cgroup.subtree_control)"

# The command, in a subshell so that only it holds ttyS1/ttyS2 open. The
# environment is a clean root login's, plus what --env asked for (cmd.sh).
(
  cd "$V2_PROJECT" || exit 125
  exec env -i PATH="$PATH" HOME=/root USER=root LOGNAME=root SHELL=/bin/sh TERM=dumb \
    /bin/sh /v2/cmd.sh
) </dev/null >/dev/ttyS1 2>/dev/ttyS2
finish "exit $?"
