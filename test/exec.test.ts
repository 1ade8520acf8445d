// exec: a second process in a running container, seen from inside it.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { CLI, needsRoot, PROJECT, stateRoot, TEST_BASE, tsrun, uniqueId } from './helpers';

const root = stateRoot('exec');
const storage = path.join(TEST_BASE, 'storage', `exec-${process.pid}`);
const shared = path.join(TEST_BASE, `exec-shared-${process.pid}`);
const ts = (args: string[]) => tsrun(['--storage', storage, ...args], { root });
let web: ChildProcess | undefined;
const name = uniqueId('web');

t.before(async () => {
  if (needsRoot) return;
  fs.mkdirSync(shared, { recursive: true });
  execFileSync(path.join(PROJECT, 'scripts', 'busybox-image.sh'), { env: { ...process.env, TSRUN_STORAGE: storage }, stdio: 'ignore' });
  web = spawn(process.execPath, [CLI, '--root', root, '--storage', storage, 'run', '--rm', '--name', name, '--hostname', 'web1', '-e', 'K=V', '--pids-limit', '40', '-v', `${shared}:/shared`, 'busybox', 'sh', '-c', 'while :; do sleep 1; done'], { stdio: 'ignore' });
  for (let i = 0; i < 400; i++) {
    const s = ts(['state', name]);
    if (s.status === 0 && JSON.parse(s.stdout).status === 'running') return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('the container did not start');
});
t.teardown(async () => {
  if (web && web.exitCode === null) {
    ts(['kill', name, 'KILL']);
    await new Promise((r) => web!.on('exit', r));
  }
  fs.rmSync(storage, { recursive: true, force: true });
  fs.rmSync(shared, { recursive: true, force: true });
});

t.test('exec joins every namespace of the container', { skip: needsRoot }, async (t) => {
  t.equal(ts(['exec', name, 'cat', '/etc/hostname']).stdout, 'web1\n');
  t.equal(ts(['exec', name, 'hostname']).stdout, 'web1\n', 'uts');
  t.match(ts(['exec', name, 'env']).stdout, /^K=V$/m, 'the container\'s environment');
  const ps = ts(['exec', name, 'sh', '-c', 'echo $$; ps -o pid,comm']).stdout.trim().split('\n');
  t.not(ps[0], '1', 'not pid 1');
  t.match(ps.slice(1).join('\n'), /^\s+1 sh$/m, 'sees the container\'s pid 1');
  t.equal(ts(['exec', name, 'ip', '-o', 'link']).stdout.trim().split('\n').length, 1, 'net: only lo');
  const mounts = ts(['exec', name, 'cut', '-d', ' ', '-f5', '/proc/self/mountinfo']).stdout.trim().split('\n');
  t.ok(mounts.includes('/shared') && mounts.includes('/etc/hostname'), 'mnt: the container\'s mounts');
  t.notOk(mounts.some((m) => m.startsWith('/run/tsrun-test')), 'and none of the host\'s');
  t.equal(ts(['exec', name, 'sh', '-c', 'cut -d: -f3 /proc/self/cgroup | sort -u']).stdout, '/\n', 'cgroup: rooted at the container\'s cgroup');
});

t.test('exec is placed in the container\'s cgroups, with its limits', { skip: needsRoot }, async (t) => {
  const pidFile = path.join(shared, 'exec.pid');
  const r = ts(['exec', '-d', '--pid-file', pidFile, name, 'sleep', '5']);
  t.equal(r.status, 0, r.stderr);
  const pid = Number(fs.readFileSync(pidFile, 'utf8'));
  const id = JSON.parse(ts(['inspect', name]).stdout)[0].Id;
  t.match(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8'), new RegExp(`:pids:/tsrun/${id}\\n`), 'from the host: in the container\'s pids cgroup');
  t.equal(ts(['exec', name, 'sh', '-c', 'read m < /sys/fs/cgroup/pids/pids.max 2>/dev/null || read m < /sys/fs/cgroup/pids.max; echo $m']).stdout, '40\n');
  process.kill(pid, 'SIGKILL');
});

t.test('exec takes the container\'s capabilities, -u, -w, -e', { skip: needsRoot }, async (t) => {
  t.match(ts(['exec', name, 'grep', 'CapEff', '/proc/self/status']).stdout, /^CapEff:\s+00000000a80425fb$/m, 'Docker\'s 14 capabilities');
  t.equal(ts(['exec', '-u', 'nobody', name, 'id', '-u']).stdout, '65534\n');
  t.equal(ts(['exec', '-u', '1234:5', name, 'id', '-g']).stdout, '5\n');
  t.equal(ts(['exec', '-w', '/tmp', name, 'pwd']).stdout, '/tmp\n');
  t.equal(ts(['exec', '-e', 'K=W', '-e', 'NEW=1', name, 'sh', '-c', 'echo $K $NEW']).stdout, 'W 1\n');
});

t.test('exec returns the command\'s exit status', { skip: needsRoot }, async (t) => {
  t.equal(ts(['exec', name, 'true']).status, 0);
  t.equal(ts(['exec', name, 'sh', '-c', 'exit 42']).status, 42);
  const missing = ts(['exec', name, 'no-such-command']);
  t.equal(missing.status, 127);
  t.match(missing.stderr, /cannot run "no-such-command"/);
  t.equal(ts(['exec', name, 'sh', '-c', 'kill -9 $$']).status, 137);
});

t.test('runc exec --process takes a runtime-spec process', { skip: needsRoot }, async (t) => {
  const file = path.join(shared, 'process.json');
  fs.writeFileSync(file, JSON.stringify({ args: ['sh', '-c', 'echo $FROM_JSON; id -u; pwd'], env: ['FROM_JSON=yes', 'PATH=/bin'], cwd: '/shared', user: { uid: 7, gid: 7 }, capabilities: { bounding: ['CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'] } }));
  const r = ts(['exec', '--process', file, name]);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, 'yes\n7\n/shared\n');
});

t.test('exec resolves -u inside the container\'s root and refuses ids that would wrap to root', { skip: needsRoot }, async (t) => {
  // An account file the container must not reach through a symlink of its own.
  const hostEtc = path.join(TEST_BASE, `exec-host-etc-${process.pid}`);
  fs.mkdirSync(hostEtc, { recursive: true });
  fs.writeFileSync(path.join(hostEtc, 'passwd'), 'hostonly:x:4242:4242::/:/bin/sh\n');
  t.teardown(() => fs.rmSync(hostEtc, { recursive: true, force: true }));
  t.equal(ts(['exec', name, 'sh', '-c', `cp /etc/passwd /etc/passwd.orig && ln -sf ${hostEtc}/passwd /etc/passwd`]).status, 0);
  let r = ts(['exec', '-u', 'hostonly', name, 'id', '-u']);
  t.equal(r.status, 125, 'the host\'s account is not found through the container\'s symlink');
  t.match(r.stderr, /unable to find user hostonly/);
  t.equal(ts(['exec', name, 'mv', '/etc/passwd.orig', '/etc/passwd']).status, 0);

  for (const u of ['4294967296', '4294967295', '0:4294967296']) {
    r = ts(['exec', '-u', u, name, 'id']);
    t.equal(r.status, 125, `-u ${u}`);
    t.match(r.stderr, /is out of range: ids go from 0 to 2147483647/, `-u ${u}`);
    t.equal(r.stdout, '', `-u ${u}: nothing ran`);
  }
  const file = path.join(shared, 'wrap.json');
  fs.writeFileSync(file, JSON.stringify({ args: ['id', '-u'], cwd: '/', user: { uid: 4294967295, gid: 0 } }));
  r = ts(['exec', '--process', file, name]);
  t.equal(r.status, 125);
  t.match(r.stderr, /^tsrun: invalid config: exec --process\.user\.uid: must be an integer from 0 to 2147483647, got 4294967295\n$/);
});

t.test('exec into a container that is not running is refused', { skip: needsRoot }, async (t) => {
  const r = ts(['exec', 'no-such-container', 'true']);
  t.equal(r.status, 125);
  t.match(r.stderr, /no such container: no-such-container/);
});
