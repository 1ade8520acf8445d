// containerd drives tsrun as its runc: ctr, through containerd's own runc shim
// (io.containerd.runc.v2), with tsrun as the shim's binary. The test starts a
// containerd of its own (private config, root, state, sockets, namespace and
// cgroup parent) and gives the shim a wrapper that records every call, so a
// call tsrun refuses shows up by name.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import t from 'tap';
import { busyboxImage, cgroupDirsNamed, CLI, mountsUnder, needsRoot, TEST_BASE, tsrun } from './helpers';

const have = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
const skip = needsRoot || (!have('containerd') || !have('ctr') || !have('containerd-shim-runc-v2') ? 'needs Debian containerd (containerd, ctr, containerd-shim-runc-v2)' : false);

const NS = 'tsrun-test-ctd';
const dir = path.join(TEST_BASE, 'containerd');
const sock = path.join(dir, 'containerd.sock');
const runcRoot = path.join(dir, 'runc');
const calls = path.join(dir, 'calls');
const wrapper = path.join(dir, 'tsrun-as-runc');
const IMAGE = 'docker.io/library/busybox:latest';
const hadRunContainerd = fs.existsSync('/run/containerd');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const alive = (pid: number) => fs.existsSync(`/proc/${pid}`) && !/^\S+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));

interface Out {
  status: number | null;
  stdout: string;
  stderr: string;
}
/** ctr against the test's containerd; output through files (a task's fifo must not hold a pipe of ours). */
function ctr(args: string[], opts: { timeout?: number; script?: boolean } = {}): Out {
  const full = ['--address', sock, '-n', NS, ...args];
  const out = path.join(dir, 'ctr.out');
  const err = path.join(dir, 'ctr.err');
  const o = fs.openSync(out, 'w');
  const e = fs.openSync(err, 'w');
  try {
    // -t needs a terminal on ctr's side: script(1) gives it one.
    const r = opts.script
      ? spawnSync('script', ['-qec', ['ctr', ...full].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' '), '/dev/null'], { stdio: ['ignore', o, e], timeout: opts.timeout ?? 60_000 })
      : spawnSync('ctr', full, { stdio: ['ignore', o, e], timeout: opts.timeout ?? 60_000 });
    return { status: r.status, stdout: fs.readFileSync(out, 'utf8'), stderr: fs.readFileSync(err, 'utf8') };
  } finally {
    fs.closeSync(o);
    fs.closeSync(e);
  }
}
const task = (id: string) => {
  const line = ctr(['task', 'ls']).stdout.split('\n').find((l) => l.split(/\s+/)[0] === id);
  return line ? { pid: Number(line.split(/\s+/)[1]), status: line.split(/\s+/)[2] } : undefined;
};
const run = (id: string, args: string[], flags: string[] = []) => ctr(['run', '--runc-binary', wrapper, '--runc-root', runcRoot, '--cgroup', `/${NS}/${id}`, ...flags, IMAGE, id, ...args]);
const cgroupDirs = () => cgroupDirsNamed(NS);
/** The calls the shim made that tsrun failed, by verb and flags (the ids and paths left out). */
const failedCalls = () =>
  (fs.existsSync(calls) ? fs.readFileSync(calls, 'utf8').trim().split('\n').filter(Boolean) : [])
    .map((l) => l.split('\t'))
    .filter(([status]) => status !== '0')
    .map(([status, args]) => `${status}: ${args}`);

let daemon: ReturnType<typeof spawn> | undefined;

t.before(async () => {
  if (skip) return;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  // The shim runs this as runc: each call is recorded with how it ended.
  fs.writeFileSync(wrapper, `#!/bin/sh\n${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\nstatus=$?\nprintf '%s\\t%s\\n' "$status" "$*" >> ${JSON.stringify(calls)}\nexit $status\n`, { mode: 0o755 });
  fs.writeFileSync(
    path.join(dir, 'config.toml'),
    [
      'version = 2',
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]',
      '[grpc]',
      `  address = "${sock}"`,
      '[ttrpc]',
      `  address = "${sock}.ttrpc"`,
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${dir}/opt"`,
      '',
    ].join('\n'),
  );
  daemon = spawn('containerd', ['--config', path.join(dir, 'config.toml')], { stdio: ['ignore', fs.openSync(path.join(dir, 'containerd.log'), 'w'), 'inherit'] });
  for (let i = 0; i < 200 && ctr(['version']).status !== 0; i++) await sleep(50);
  // The image: tsrun's busybox, saved as an OCI archive and imported as ctr users import one.
  const storage = path.join(dir, 'storage');
  busyboxImage(storage);
  const saved = tsrun(['--storage', storage, 'save', '-o', path.join(dir, 'busybox.tar'), 'busybox']);
  if (saved.status !== 0) throw new Error(`save: ${saved.stderr}`);
  const imported = ctr(['images', 'import', path.join(dir, 'busybox.tar')]);
  if (imported.status !== 0) throw new Error(`ctr images import: ${imported.stderr}`);
});

t.teardown(async () => {
  if (skip) return;
  for (const line of ctr(['task', 'ls', '-q']).stdout.split('\n').filter(Boolean)) ctr(['task', 'delete', '-f', line]);
  for (const line of ctr(['container', 'ls', '-q']).stdout.split('\n').filter(Boolean)) ctr(['container', 'rm', line]);
  ctr(['images', 'rm', IMAGE]);
  if (daemon && daemon.exitCode === null) {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon!.on('exit', r));
  }
  for (const m of mountsUnder(dir).reverse()) spawnSync('umount', ['-l', m]);
  for (const d of cgroupDirs()) fs.rmdirSync(d);
  fs.rmSync(dir, { recursive: true, force: true });
  if (!hadRunContainerd) fs.rmSync('/run/containerd', { recursive: true, force: true });
});

t.test('ctr run --rm: the output, pid 1, the exit code, and an error containerd reads from the JSON log', { skip }, async (t) => {
  const r = run('rm1', ['sh', '-c', 'echo pid $$; tr "\\0" " " < /proc/1/cmdline; echo; exit 7'], ['--rm']);
  t.equal(r.status, 7, r.stderr);
  t.equal(r.stdout, 'pid 1\nsh -c echo pid $$; tr "\\0" " " < /proc/1/cmdline; echo; exit 7 \n');

  // A command that is not there: the shim's error is tsrun's, which it found in --log's last JSON line.
  const missing = run('rm2', ['/no/such/command'], ['--rm']);
  t.not(missing.status, 0);
  t.match(missing.stderr, /OCI runtime (create|start) failed: .*\/no\/such\/command.*ENOENT/, 'ctr shows tsrun\'s own error');
  t.equal(task('rm2'), undefined);
  t.same(failedCalls().filter((c) => !/ (create|start) /.test(c)), [], 'no call but the failing create or start was refused');
  fs.rmSync(calls, { force: true });
});

t.test('run -d, exec, exec -t, ps, pause and resume, metrics, kill, delete, rm', { skip }, async (t) => {
  const id = 'd1';
  const r = run(id, ['sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done'], ['-d', '--memory-limit', String(64 << 20)]);
  t.equal(r.status, 0, r.stderr);
  const tk = task(id)!;
  t.equal(tk.status, 'RUNNING');
  const count = () => Number(fs.readFileSync(`/proc/${tk.pid}/root/tmp/n`, 'utf8'));
  for (let i = 0; i < 100 && !fs.existsSync(`/proc/${tk.pid}/root/tmp/n`); i++) await sleep(50);

  const ex = ctr(['task', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'echo $$ $(cat /proc/1/comm)']);
  t.equal(ex.status, 0, ex.stderr);
  t.match(ex.stdout, /^\d+ sh\n$/, 'exec runs beside pid 1, in its PID namespace');
  t.not(ex.stdout.split(' ')[0], '1');
  const tty = ctr(['task', 'exec', '-t', '--exec-id', 'e2', id, 'tty'], { script: true });
  t.equal(tty.status, 0, tty.stderr);
  t.match(tty.stdout, /\/dev\/pts\/\d+/, 'exec -t: a terminal of the container\'s');

  const ps = ctr(['task', 'ps', id]);
  t.equal(ps.status, 0, ps.stderr);
  t.match(ps.stdout, new RegExp(`^${tk.pid}\\s`, 'm'), 'task ps lists pid 1 by its host pid');

  t.equal(ctr(['task', 'pause', id]).status, 0);
  t.equal(task(id)?.status, 'PAUSED');
  const frozen = count();
  await sleep(400);
  t.equal(count(), frozen, 'paused: the loop does not advance');
  t.equal(ctr(['task', 'resume', id]).status, 0);
  t.equal(task(id)?.status, 'RUNNING');
  for (let i = 0; i < 40 && count() === frozen; i++) await sleep(50);
  t.ok(count() > frozen, 'resumed: it does');

  const m = ctr(['task', 'metrics', id]);
  t.equal(m.status, 0, m.stderr);
  t.match(m.stdout, new RegExp(`memory\\.(limit_in_bytes|max)\\s+${64 << 20}\\b`), 'metrics: the memory limit of --memory-limit');

  t.equal(ctr(['task', 'kill', '-s', 'SIGKILL', id]).status, 0);
  for (let i = 0; i < 100 && task(id)?.status !== 'STOPPED'; i++) await sleep(50);
  t.equal(task(id)?.status, 'STOPPED');
  t.notOk(alive(tk.pid));
  t.equal(ctr(['task', 'delete', id]).status, 0);
  t.equal(ctr(['container', 'rm', id]).status, 0);
  t.same(fs.readdirSync(path.join(runcRoot, NS)), [], 'no runtime state is left');
  t.same(failedCalls(), [], 'every call the shim made was taken');
});

t.test('kill -a reaches every process (a container in the host\'s PID namespace); task delete -f of a running task', { skip }, async (t) => {
  const id = 'k1';
  const started = run(id, ['sh', '-c', 'sleep 1000 & sleep 1001 & wait'], ['-d', '--with-ns', `pid:/proc/${process.pid}/ns/pid`]);
  t.equal(started.status, 0, started.stderr);
  const pid = task(id)!.pid;
  const kids = () => fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  for (let i = 0; i < 100 && kids().length < 2; i++) await sleep(50);
  const children = kids();
  t.equal(children.length, 2);
  t.equal(ctr(['task', 'kill', '-a', '-s', 'SIGKILL', id]).status, 0);
  for (let i = 0; i < 100 && children.some(alive); i++) await sleep(50);
  t.same(children.filter(alive), [], 'the children are gone with pid 1');
  for (let i = 0; i < 100 && task(id)?.status !== 'STOPPED'; i++) await sleep(50);
  t.equal(ctr(['task', 'delete', id]).status, 0);
  t.equal(ctr(['container', 'rm', id]).status, 0);

  t.equal(run('f1', ['sleep', '1000'], ['-d']).status, 0);
  const p = task('f1')!.pid;
  const del = ctr(['task', 'delete', '-f', 'f1']);
  t.equal(del.status, 0, del.stderr);
  t.notOk(alive(p), 'task delete -f kills it');
  t.equal(task('f1'), undefined);
  t.equal(ctr(['container', 'rm', 'f1']).status, 0);
  t.same(failedCalls(), [], 'every call the shim made was taken');
});

t.test('--memory-limit is enforced: the OOM killer ends a task that takes more', { skip }, async (t) => {
  // tail -c N keeps N bytes in memory.
  const hog = ['sh', '-c', 'head -c 100000000 /dev/zero | tail -c 60000000 > /dev/null && echo survived'];
  const small = run('m1', hog, ['--rm', '--memory-limit', String(16 << 20)]);
  t.equal(small.status, 137, small.stderr);
  t.equal(small.stdout, '');
  const big = run('m2', hog, ['--rm', '--memory-limit', String(256 << 20)]);
  t.equal(big.status, 0, big.stderr);
  t.equal(big.stdout, 'survived\n');
  t.same(cgroupDirs().flatMap((d) => fs.readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => path.join(d, e.name))), [], 'the tasks\' cgroups are gone');
});
