#!/bin/bash
# Runs a command as root inside a small QEMU guest whose only cgroup
# hierarchy is cgroup v2, to exercise tsrun's v2 code on a host that has a
# hybrid (v1 + unified) layout. See docs/CGROUP-V2-GUEST.md.
#
#   scripts/v2-guest.sh [options] -- COMMAND [ARGS...]
#
#   --timeout SECS   kill the guest after SECS seconds (default 300): exit 124
#   --share DIR      also share host DIR read-write at the same path
#                    (repeatable; no whitespace in DIR)
#   --env NAME=VAL   set NAME in the command's environment (repeatable)
#   --mem MB         guest memory (default 2048)
#   --smp N          guest CPUs (default: host's, at most 4)
#   --console        copy the guest's console (kernel + init log) to stderr
#
# COMMAND runs with its argv exactly as given (use `sh -c '...'` for shell
# syntax), cwd = the project directory (mounted at the same path as on the
# host), stdin = /dev/null. Its stdout and stderr stream to ours. The exit
# status is COMMAND's, or 124 on timeout, or 125 if the guest did not get as
# far as running it.
#
# Environment:
#   V2_GUEST_KERNEL=/boot/vmlinuz-X  the kernel (default: the newest
#                    /boot/vmlinuz-* that has /lib/modules/X)
#   V2_GUEST_MODULES="veth bridge"   more modules to load (deps come along)
#   V2_GUEST_APPEND="loglevel=7"     more kernel command line
#   V2_GUEST_ACCEL=kvm               instead of TCG, where KVM works
#   V2_GUEST_TIME=1                  report how long QEMU ran
#   BUSYBOX=/path/to/busybox         a static busybox (default /bin/busybox)
set -uo pipefail

timeout=300 mem=2048 smp= console=0
shares=() envs=()
usage() { sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0" >&2; exit "${1:-125}"; }
while [ $# -gt 0 ]; do
  case $1 in
    --timeout) timeout=${2:?}; shift 2 ;;
    --share) shares+=("$(cd "${2:?}" && pwd)") || exit 125; shift 2 ;;
    --env) [[ ${2:-} == [A-Za-z_]*=* ]] || usage; envs+=("$2"); shift 2 ;;
    --mem) mem=${2:?}; shift 2 ;;
    --smp) smp=${2:?}; shift 2 ;;
    --console) console=1; shift ;;
    --) shift; break ;;
    -h|--help) usage 0 ;;
    *) echo "v2-guest: unknown option $1 (the command goes after --)" >&2; usage ;;
  esac
done
[ $# -gt 0 ] || usage
[[ $timeout =~ ^[0-9]+$ ]] || usage
[ -n "$smp" ] || smp=$(( $(nproc) > 4 ? 4 : $(nproc) ))

say() { echo "v2-guest: $*" >&2; }
die() { say "$*"; exit 125; }

here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/.." && pwd)
busybox=${BUSYBOX:-/bin/busybox}

# --- what the host must have -------------------------------------------------
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
[ -x "$busybox" ] && "$busybox" --list | grep -x cpio >/dev/null || die "$busybox not found or without cpio (apt-get install busybox-static)"
kernel=${V2_GUEST_KERNEL:-}
if [ -z "$kernel" ]; then
  # The running kernel here may be a custom one with no image or modules on
  # disk, so take an installed distribution kernel (linux-image-amd64).
  for k in $(ls /boot/vmlinuz-* 2>/dev/null | sort -V -r); do
    [ -d "/lib/modules/${k#/boot/vmlinuz-}" ] && { kernel=$k; break; }
  done
fi
[ -n "$kernel" ] && [ -r "$kernel" ] || die "no kernel with modules in /boot and /lib/modules (apt-get install linux-image-amd64)"
kver=${kernel##*/vmlinuz-}
[ "$kver" != "$kernel" ] || die "cannot tell the version of $kernel (expected a name like /boot/vmlinuz-VERSION)"
moddir=/lib/modules/$kver
[ -r "$moddir/modules.dep" ] || die "$moddir/modules.dep missing"

# --- scratch space, always removed ------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/v2-guest.XXXXXX") || die "mktemp failed"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM HUP

# --- the initramfs -----------------------------------------------------------
root=$tmp/root
mkdir -p "$root"/{v2/modules,proc,sys,dev,tmp,run,root,usr,etc,var,mnt}
ln -s usr/bin "$root/bin"; ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"; ln -s usr/lib64 "$root/lib64"
# (The kernel's built-in initramfs has /dev/console too; this is for kernels
# built without one.)
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null
cp "$busybox" "$root/v2/busybox"
install -m 755 "$here/v2-guest-init.sh" "$root/init"

# A minimal /etc: the host's dynamic-linker cache and Debian alternatives
# (many /usr/bin entries are symlinks into /etc/alternatives), root only.
cp -a /etc/ld.so.cache "$root/etc/" 2>/dev/null
cp -a /etc/alternatives "$root/etc/" 2>/dev/null
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$root/etc/group"
printf '127.0.0.1 localhost v2-guest\n::1 localhost\n' >"$root/etc/hosts"
printf 'passwd: files\ngroup: files\nhosts: files\n' >"$root/etc/nsswitch.conf"
ln -s ../proc/self/mounts "$root/etc/mtab"

# Kernel modules for virtio-pci + 9p (and overlay, which tsrun uses for
# images), each preceded by its dependencies as modules.dep lists them
# (reversed, as modprobe loads them). Built-in ones are skipped; a missing
# one is reported and skipped (the guest then says what failed).
norm() { local n=${1##*/}; n=${n%%.ko*}; echo "${n//-/_}"; }
declare -A seen=()
modlist=()
add_module() {
  local want=$1 line path deps i
  [ -n "${seen[$want]:-}" ] && return; seen[$want]=1
  if grep -qE "/${want//_/[-_]}\.ko(\.[a-z]+)?$" "$moddir/modules.builtin" 2>/dev/null; then return; fi
  line=$(grep -E "(^|/)${want//_/[-_]}\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | head -n1)
  [ -n "$line" ] || { say "warning: module $want not found for $kver"; return; }
  path=${line%%:*}
  read -r -a deps <<<"${line#*:}"
  for (( i=${#deps[@]}-1; i>=0; i-- )); do add_module "$(norm "${deps[i]}")"; done
  # busybox insmod takes plain .ko files only: decompress here.
  case $path in
    *.xz) xz -dc "$moddir/$path" ;;
    *.zst) zstd -qdc "$moddir/$path" ;;
    *.gz) gzip -dc "$moddir/$path" ;;
    *) cat "$moddir/$path" ;;
  esac >"$root/v2/modules/$want.ko" || die "cannot unpack module $path"
  modlist+=("$want")
}
for m in virtio_pci 9pnet_virtio 9p overlay ${V2_GUEST_MODULES:-}; do add_module "$m"; done
printf '%s\n' "${modlist[@]}" >"$root/v2/modules.list"

# Settings for /init, and the command. Every word is single-quoted so that
# the guest's sh runs exactly the argv we were given.
q() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
{
  echo "V2_PROJECT=$(q "$project")"
  echo "V2_SHARES=$(q "${shares[*]:-}")"
  echo "V2_MSIZE=512000"
} >"$root/v2/config"
{
  for e in "${envs[@]}"; do echo "export $(q "$e")"; done
  printf 'exec'; for a in "$@"; do printf ' %s' "$(q "$a")"; done; echo
} >"$root/v2/cmd.sh"

(cd "$root" && find . | LC_ALL=C sort | "$busybox" cpio -o -H newc -R 0:0 2>/dev/null) >"$tmp/initrd" \
  || die "cannot build the initramfs"

# --- the guest ------------------------------------------------------------------
# stdout/stderr go through QEMU "pipe" chardevs: FIFOs NAME.out (QEMU writes)
# and NAME.in (QEMU reads, unused); cat streams them as they come.
for n in stdout stderr; do mkfifo "$tmp/$n.in" "$tmp/$n.out" || die "mkfifo failed"; done
cat "$tmp/stdout.out" & pids+=($!); outcat=$!
cat "$tmp/stderr.out" >&2 & pids+=($!); errcat=$!

virtfs=(-virtfs "local,path=/usr,mount_tag=usr,security_model=passthrough,readonly=on"
        -virtfs "local,path=$project,mount_tag=project,security_model=passthrough")
for i in "${!shares[@]}"; do
  virtfs+=(-virtfs "local,path=${shares[i]},mount_tag=share$i,security_model=passthrough")
done

# /dev/kvm here is a PVM flavour that Debian's kernel cannot use: emulate.
# cgroup_no_v1=all keeps the guest pure v2 whatever runs in it;
# mitigations=off because the guest runs only our code and emulated
# speculation barriers cost boot time.
# timeout runs in the background so that our traps (and cleanup) still run
# on ^C; it sends TERM to QEMU at the deadline and KILL 5 s later.
start=$(date +%s.%N)
timeout -k 5 "$timeout" qemu-system-x86_64 \
  -accel "${V2_GUEST_ACCEL:-tcg,thread=multi}" -cpu max -smp "$smp" -m "$mem" \
  -machine pc -nodefaults -display none -monitor none -no-reboot \
  -kernel "$kernel" -initrd "$tmp/initrd" \
  -append "console=ttyS0 panic=-1 quiet cgroup_no_v1=all rdinit=/init mitigations=off ${V2_GUEST_APPEND:-}" \
  -serial "file:$tmp/console.log" \
  -chardev "pipe,id=out,path=$tmp/stdout" -serial chardev:out \
  -chardev "pipe,id=err,path=$tmp/stderr" -serial chardev:err \
  -serial "file:$tmp/status" \
  "${virtfs[@]}" </dev/null >"$tmp/qemu.log" 2>&1 &
qemu=$!; pids+=($qemu)
wait "$qemu"; qrc=$?
end=$(date +%s.%N)

# QEMU's exit closes the FIFOs' write side, so the cats end by themselves
# once drained; they are killed only if QEMU never opened the FIFOs.
for _ in $(seq 50); do
  kill -0 "$outcat" 2>/dev/null || kill -0 "$errcat" 2>/dev/null || break
  sleep 0.1
done

[ "$console" = 1 ] && { say "--- QEMU and guest console ---"; cat "$tmp/qemu.log" >&2; tr -d '\r' <"$tmp/console.log" >&2; }
[ -n "${V2_GUEST_TIME:-}" ] && say "QEMU ran for $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s"

status=$(sed -n 's/^exit \([0-9][0-9]*\).*/\1/p' "$tmp/status" 2>/dev/null | head -n1)
if [ -n "$status" ]; then
  exit "$status"
fi
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
  say "timed out after ${timeout}s"
  exit 124
fi
if grep -q 'setup failed' "$tmp/status" 2>/dev/null; then
  say "the guest's setup failed; its console:"
else
  say "the guest did not run the command (qemu exit $qrc)"
fi
cat "$tmp/qemu.log" >&2
tr -d '\r' <"$tmp/console.log" | tail -n 30 >&2
exit 125
