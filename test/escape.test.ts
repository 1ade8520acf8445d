// The escape suite: what a process in a default container tries in order to
// reach the host, each from inside, and what --privileged opens (as
// documented in the README's security section).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { busyboxImage, needsRoot, stateRoot, TEST_BASE, tsrun } from './helpers';
import { probe, removeProbe } from './probe';

const root = stateRoot('escape-suite');
const storage = path.join(TEST_BASE, 'storage', `escape-${process.pid}`);
const hostOnly = path.join(TEST_BASE, `escape-${process.pid}`, 'host-only');
const ts = (args: string[]) => tsrun(['--storage', storage, ...args], { root });

t.before(() => {
  if (needsRoot) return;
  busyboxImage(storage);
  fs.mkdirSync(path.dirname(hostOnly), { recursive: true });
  fs.writeFileSync(hostOnly, 'a file only the host has\n');
});
t.teardown(() => {
  fs.rmSync(storage, { recursive: true, force: true });
  fs.rmSync(path.dirname(hostOnly), { recursive: true, force: true });
  removeProbe();
});

/** A block device of the host's: the one under / if it has one, else the first the kernel lists. */
function hostBlockDevice(): [number, number] {
  const rootLine = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === '/');
  const [maj, min] = (rootLine?.split(' ')[2] ?? '0:0').split(':').map(Number);
  if (maj !== 0 && fs.existsSync(`/sys/dev/block/${maj}:${min}`)) return [maj, min];
  const first = fs.readdirSync('/sys/dev/block')[0];
  return first.split(':').map(Number) as [number, number];
}

/** Each attempt: a name, the probe's arguments, and what a default container must see. */
function attempts(): [string, string[], RegExp][] {
  const [maj, min] = hostBlockDevice();
  return [
    ['mount', ['mount', '/tmp'], /^EPERM$/],
    ['unshare -m', ['unshare-mount'], /^EPERM$/],
    ['add_key', ['add-key'], /^EPERM$/],
    ['keyctl', ['keyctl'], /^EPERM$/],
    ['request_key', ['request-key'], /^EPERM$/],
    [`read the host's disk (${maj}:${min}) through a node made inside`, ['block-read', String(maj), String(min)], /^EPERM$/],
    ['read /dev/mem through a node made inside', ['block-read-char', '1', '1'], /^EPERM$/],
    ['write /proc/sys', ['write', '/proc/sys/vm/drop_caches', '1'], /^EROFS$/],
    // Some kernels have no magic SysRq at all: then there is no file to write.
    ['write h to /proc/sysrq-trigger', ['write', '/proc/sysrq-trigger', 'h'], fs.existsSync('/proc/sysrq-trigger') ? /^EROFS$/ : /^ENOENT$/],
    ['write a cgroup file', ['cgroup-write'], /^EROFS$/],
    ['kill a pid outside', ['kill', String(process.pid)], /^ESRCH$/],
    ['set the clock', ['settime'], /^EPERM$/],
    ['ptrace a pid outside', ['ptrace', String(process.pid)], /^ESRCH$/],
    ['bpf', ['bpf'], /^EPERM$/],
    ['perf_event_open', ['perf'], /^EPERM$/],
    ['userfaultfd', ['userfaultfd'], /^EPERM$/],
    ['climb out of a chroot to a host file', ['chroot-climb', hostOnly], /^ENOENT$/],
    ['write /proc/self/exe', ['open-write', '/proc/self/exe'], /^ETXTBSY$/],
  ];
}

function runAll(flags: string[]): Map<string, string> {
  const list = attempts();
  const script = list.map(([, args]) => `/probe ${args.join(' ')} 2>&1 | tail -n 1`).join('; ');
  const r = ts(['run', '--rm', '-v', `${probe()}:/probe:ro`, ...flags, 'busybox', 'sh', '-c', script]);
  if (r.status !== 0) throw new Error(`the suite did not run: ${r.stderr}`);
  const out = r.stdout.trim().split('\n');
  return new Map(list.map(([name], i) => [name, out[i] ?? '(nothing)']));
}

t.test('a default container can reach none of the host', { skip: needsRoot }, async (t) => {
  const seen = runAll([]);
  for (const [name, , want] of attempts()) t.match(seen.get(name), want, name);
});

/** The same attempt made on the host itself: what --privileged should match for raw devices. */
const onHost = (args: string[]) => execFileSync(probe(), args, { encoding: 'utf8' }).trim().split('\n').pop();

t.test('--privileged opens what it is documented to open, and no more', { skip: needsRoot }, async (t) => {
  const seen = runAll(['--privileged']);
  const opens = ['mount', 'unshare -m', 'add_key', 'keyctl', 'request_key', 'write /proc/sys', 'write a cgroup file', 'set the clock', 'bpf', 'perf_event_open', 'userfaultfd'];
  if (fs.existsSync('/proc/sysrq-trigger')) opens.push('write h to /proc/sysrq-trigger');
  for (const [name, args, want] of attempts()) {
    const got = seen.get(name)!;
    if (opens.includes(name)) t.equal(got, 'ok', `privileged: ${name} works`);
    else if (args[0] === 'block-read' || args[0] === 'block-read-char') {
      // The devices cgroup allows every node: the container gets what the host itself gets.
      let host = '';
      try {
        host = onHost(args) ?? '';
      } catch (e) {
        host = ((e as { stdout?: string }).stdout ?? '').trim();
      }
      t.equal(got, host, `privileged: ${name}: as on the host (${host})`);
    } else t.match(got, want, `privileged: ${name} is still closed (namespaces, pivot_root)`);
  }
});

t.test('unshare -U: allowed, as podman\'s profile allows it, and still no way out', { skip: needsRoot }, async (t) => {
  // The kernel lets any process make a user namespace; the system profile
  // (containers-common's, podman's) does not refuse it. Inside one the
  // process is root of nothing of the host's.
  const r = ts(['run', '--rm', '-v', `${probe()}:/probe:ro`, 'busybox', 'sh', '-c', `/probe unshare-user; unshare -U -r sh -c 'cat /proc/self/uid_map; /probe chroot-climb ${hostOnly}; /probe settime; /probe kill ${process.pid}'`]);
  t.equal(r.status, 1, r.stderr);
  const out = r.stdout.trim().split('\n');
  t.equal(out[0], 'ok');
  t.match(out[1], /^\s*0\s+0\s+1$/, 'root inside maps to the container\'s root, nothing more');
  t.same(out.slice(2), ['ENOENT', 'EPERM', 'ESRCH']);
});
