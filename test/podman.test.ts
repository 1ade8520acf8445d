// podman drives tsrun as its OCI runtime, through conmon: a runtime named
// "tsrun" in a containers.conf of the test's own, which also takes it as
// JSON-log capable (podman then passes --log-format=json --log FILE, and
// shows the error it reads there). Private storage, run root, tmp dir and
// cgroup parent; a wrapper records every call podman makes.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { busyboxImage, cgroupDirsNamed, CLI, mountsUnder, needsRoot, TEST_BASE, tsrun } from './helpers';

const have = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
const skip = needsRoot || (!have('podman') ? 'needs Debian podman' : false);

const dir = path.join(TEST_BASE, 'podman');
const calls = path.join(dir, 'calls');
const wrapper = path.join(dir, 'tsrun-runtime');
const PARENT = '/tsrun-test-podman';
const cache = '/var/lib/containers/cache';
const hadCache = fs.existsSync(cache);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Out {
  status: number | null;
  stdout: string;
  stderr: string;
}
function podman(args: string[], opts: { script?: boolean } = {}): Out {
  const full = ['--root', path.join(dir, 'root'), '--runroot', path.join(dir, 'runroot'), '--runtime', 'tsrun', ...args];
  const out = path.join(dir, 'podman.out');
  const err = path.join(dir, 'podman.err');
  const o = fs.openSync(out, 'w');
  const e = fs.openSync(err, 'w');
  try {
    const env = { ...process.env, CONTAINERS_CONF: path.join(dir, 'containers.conf') };
    // -t needs a terminal on podman's side: script(1) gives it one.
    const r = opts.script
      ? spawnSync('script', ['-qec', ['podman', ...full].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' '), '/dev/null'], { stdio: ['ignore', o, e], env, timeout: 90_000 })
      : spawnSync('podman', full, { stdio: ['ignore', o, e], env, timeout: 90_000 });
    return { status: r.status, stdout: fs.readFileSync(out, 'utf8'), stderr: fs.readFileSync(err, 'utf8') };
  } finally {
    fs.closeSync(o);
    fs.closeSync(e);
  }
}
// What this host needs of every container podman makes (its hard open-files limit is 20000).
const RUN = ['--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', '--cgroup-parent', PARENT];
const failedCalls = () =>
  (fs.existsSync(calls) ? fs.readFileSync(calls, 'utf8').trim().split('\n').filter(Boolean) : [])
    .map((l) => l.split('\t'))
    .filter(([status]) => status !== '0')
    .map(([status, args]) => `${status}: ${args}`);
const cgroupDirs = () => cgroupDirsNamed(PARENT);

t.before(() => {
  if (skip) return;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  fs.writeFileSync(wrapper, `#!/bin/sh\n${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} --root ${JSON.stringify(path.join(dir, 'state'))} "$@"\nstatus=$?\nprintf '%s\\t%s\\n' "$status" "$*" >> ${JSON.stringify(calls)}\nexit $status\n`, { mode: 0o755 });
  fs.writeFileSync(
    path.join(dir, 'containers.conf'),
    ['[engine]', 'cgroup_manager = "cgroupfs"', 'events_logger = "none"', `tmp_dir = "${dir}/tmp"`, 'runtime_supports_json = ["tsrun"]', '[engine.runtimes]', `tsrun = ["${wrapper}"]`, ''].join('\n'),
  );
  const storage = path.join(dir, 'storage');
  busyboxImage(storage);
  const saved = tsrun(['--storage', storage, 'save', '-o', path.join(dir, 'busybox.tar'), 'busybox']);
  if (saved.status !== 0) throw new Error(`save: ${saved.stderr}`);
  const loaded = podman(['load', '-i', path.join(dir, 'busybox.tar')]);
  if (loaded.status !== 0) throw new Error(`podman load: ${loaded.stderr}`);
});

t.teardown(async () => {
  if (skip) return;
  podman(['rm', '-af', '-t', '0']);
  podman(['rmi', '-af']);
  for (const m of mountsUnder(dir).reverse()) spawnSync('umount', ['-l', m]);
  // conmon's cgroup, podman's, below the test's parent.
  for (const d of cgroupDirs()) {
    if (fs.existsSync(path.join(d, 'conmon'))) fs.rmdirSync(path.join(d, 'conmon'));
    fs.rmdirSync(d);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  if (!hadCache) fs.rmSync(cache, { recursive: true, force: true });
});

t.test('podman run: output, exit code, seccomp on, the --memory limit read inside, a terminal with -it', { skip }, async (t) => {
  const r = podman(['run', '--rm', ...RUN, '--memory', '48m', 'busybox', 'sh', '-c', 'echo pid $$; grep ^Seccomp: /proc/self/status; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; exit 3']);
  t.equal(r.status, 3, r.stderr);
  t.equal(r.stdout, `pid 1\nSeccomp:\t2\n${48 << 20}\n`, 'pid 1, podman\'s seccomp filter, its own memory limit');
  const it = podman(['run', '--rm', '-it', ...RUN, 'busybox', 'tty'], { script: true });
  t.equal(it.status, 0, it.stderr);
  t.match(it.stdout, /\/dev\/pts\/0/);
  // podman reads the error from tsrun's JSON log.
  const missing = podman(['run', '--rm', ...RUN, 'busybox', '/no/such/command']);
  t.equal(missing.status, 127);
  t.match(missing.stderr, /tsrun: step \d+ \(find "\/no\/such\/command" in PATH\): cannot run "\/no\/such\/command": ENOENT/);
  t.same(failedCalls().filter((c) => !/ create /.test(c)), [], 'nothing but the failing create was refused');
  fs.rmSync(calls, { force: true });
  // podman's --tmpfs asks for tmpcopyup: the tmpfs starts with what the image has there.
  const tmp = podman(['run', '--rm', ...RUN, '--tmpfs', '/etc', 'busybox', 'sh', '-c', 'grep " /etc " /proc/self/mountinfo | cut -d" " -f9; head -1 /etc/passwd']);
  t.equal(tmp.status, 0, tmp.stderr);
  t.match(tmp.stdout, /^tmpfs\nroot:/, '--tmpfs /etc holds the image\'s /etc');
});

t.test('podman run -d, logs, exec, exec -it, top, pause and unpause, stop, rm', { skip }, async (t) => {
  const d = podman(['run', '-d', '--name', 'p1', ...RUN, 'busybox', 'sh', '-c', 'echo started; i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done']);
  t.equal(d.status, 0, d.stderr);
  const pid = Number(podman(['inspect', '-f', '{{.State.Pid}}', 'p1']).stdout.trim());
  t.ok(pid > 0);
  for (let i = 0; i < 100 && !fs.existsSync(`/proc/${pid}/root/tmp/n`); i++) await sleep(50);
  t.equal(podman(['logs', 'p1']).stdout, 'started\n');
  const ex = podman(['exec', 'p1', 'sh', '-c', 'echo $$ $(cat /proc/1/comm)']);
  t.equal(ex.status, 0, ex.stderr);
  t.match(ex.stdout, /^\d+ sh\n$/);
  const exit = podman(['exec', '-it', 'p1', 'tty'], { script: true });
  t.equal(exit.status, 0, exit.stderr);
  t.match(exit.stdout, /\/dev\/pts\/\d+/);
  const top = podman(['top', 'p1']);
  t.equal(top.status, 0, top.stderr);
  t.match(top.stdout, /sh -c echo started/);

  const count = () => Number(fs.readFileSync(`/proc/${pid}/root/tmp/n`, 'utf8'));
  t.equal(podman(['pause', 'p1']).status, 0);
  t.match(podman(['inspect', '-f', '{{.State.Status}}', 'p1']).stdout, /paused/);
  const frozen = count();
  await sleep(400);
  t.equal(count(), frozen, 'paused: the loop does not advance');
  t.equal(podman(['unpause', 'p1']).status, 0);
  for (let i = 0; i < 40 && count() === frozen; i++) await sleep(50);
  t.ok(count() > frozen, 'unpaused: it does');

  const stop = podman(['stop', '-t', '1', 'p1']);
  t.equal(stop.status, 0, stop.stderr);
  t.match(podman(['inspect', '-f', '{{.State.Status}}', 'p1']).stdout, /exited/);
  t.notOk(fs.existsSync(`/proc/${pid}`), 'stop ended it');
  t.equal(podman(['rm', 'p1']).status, 0);
  // conmon's clean-up (podman container cleanup) runs on after stop returns.
  for (let i = 0; i < 100 && (fs.readdirSync(path.join(dir, 'state')).filter((e) => !e.startsWith('.')).length || cgroupDirs().some((d) => fs.readdirSync(d, { withFileTypes: true }).some((e) => e.isDirectory() && e.name !== 'conmon'))); i++) await sleep(50);
  t.same(fs.readdirSync(path.join(dir, 'state')).filter((e) => !e.startsWith('.')), [], 'no runtime state is left');
  t.same(cgroupDirs().flatMap((d) => fs.readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory() && e.name !== 'conmon').map((e) => e.name)), [], 'nor a cgroup of the container (conmon\'s own is podman\'s)');
  t.same(failedCalls(), [], 'every call podman made was taken');
});
