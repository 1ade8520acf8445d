// Operations on a live container's cgroups: pause and resume, update,
// stats, events (OOM kills), and what delete --force leaves (nothing).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { CLI, needsRoot, PROJECT, stateRoot, TEST_BASE, tsrun, uniqueId } from './helpers';
import { execFileSync } from 'node:child_process';

const root = stateRoot('cgroup-ops');
const storage = path.join(TEST_BASE, 'storage', `cgroup-ops-${process.pid}`);
const shared = path.join(TEST_BASE, `ops-shared-${process.pid}`);
const ts = (args: string[]) => tsrun(['--storage', storage, ...args], { root });
t.before(() => {
  if (needsRoot) return;
  fs.mkdirSync(shared, { recursive: true });
  execFileSync(path.join(PROJECT, 'scripts', 'busybox-image.sh'), { env: { ...process.env, TSRUN_STORAGE: storage }, stdio: 'ignore' });
});
t.teardown(() => {
  fs.rmSync(storage, { recursive: true, force: true });
  fs.rmSync(shared, { recursive: true, force: true });
});

/** Starts `tsrun run --name NAME ...` in the background; resolves once it is running. */
async function background(name: string, args: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, '--root', root, '--storage', storage, 'run', '--rm', '--name', name, '-v', `${shared}:/shared`, ...args], { stdio: 'ignore' });
  for (let i = 0; i < 400; i++) {
    const s = ts(['state', name]);
    if (s.status === 0 && JSON.parse(s.stdout).status === 'running') return child;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${name} did not start`);
}
const exited = (c: ChildProcess) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.on('exit', r)));
const counter = (file: string) => Number(fs.readFileSync(file, 'utf8').trim() || 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Polls until cond holds (up to 15 s: an emulated guest is slow), then returns it. */
async function eventually(cond: () => boolean): Promise<boolean> {
  for (let i = 0; i < 300 && !cond(); i++) await sleep(50);
  return cond();
}

t.test('pause freezes (a counter stops), resume thaws (it goes on)', { skip: needsRoot }, async (t) => {
  const name = uniqueId('pause');
  const file = path.join(shared, `${name}.count`);
  const c = await background(name, ['busybox', 'sh', '-c', `i=0; while :; do i=$((i+1)); echo $i > /shared/${name}.count; usleep 20000; done`]);
  await sleep(300);
  t.equal(ts(['pause', name]).status, 0);
  t.equal(JSON.parse(ts(['state', name]).stdout).status, 'paused');
  const a = counter(file);
  await sleep(400);
  t.equal(counter(file), a, 'frozen: the counter does not move');
  t.match(ts(['pause', name]).stderr, /cannot pause container "[^"]+": it is paused/);
  t.equal(ts(['resume', name]).status, 0);
  t.ok(await eventually(() => counter(file) > a), 'thawed: the counter moves again');
  t.equal(JSON.parse(ts(['state', name]).stdout).status, 'running');
  t.equal(ts(['unpause', name]).status, 125, 'unpause of a running container is refused');
  t.equal(ts(['kill', name, 'KILL']).status, 0);
  t.equal(await exited(c), 137);
});

t.test('update changes a live limit; stats reports usage', { skip: needsRoot }, async (t) => {
  const name = uniqueId('upd');
  const c = await background(name, ['--pids-limit', '50', 'busybox', 'sh', '-c', `while :; do read n < /sys/fs/cgroup/pids/pids.max 2>/dev/null || read n < /sys/fs/cgroup/pids.max; echo $n > /shared/${name}.max; usleep 50000; done`]);
  const seen = () => (fs.existsSync(path.join(shared, `${name}.max`)) ? fs.readFileSync(path.join(shared, `${name}.max`), 'utf8').trim() : '');
  t.ok(await eventually(() => seen() === '50'), 'the container sees its limit');
  const u = ts(['update', name, '--pids-limit', '7', '--memory', '100m']);
  t.equal(u.status, 0, u.stderr);
  t.ok(await eventually(() => seen() === '7'), 'the container sees the new limit');
  const s = JSON.parse(ts(['stats', '--no-stream', '--format', 'json', name]).stdout)[0];
  t.match(s, { id: JSON.parse(ts(['inspect', name]).stdout)[0].Id, name, memory: { limit: 100 * 1024 * 1024 }, pids: { limit: 7 } });
  t.ok(s.memory.usage > 0 && s.pids.current >= 1 && s.cpuNanos > 0, 'usage is counted');
  t.match(ts(['update', name]).stderr, /give at least one limit/);

  // runc's form, as containerd's shim calls it: linux.resources as JSON on stdin, or in a file.
  const viaStdin = spawnSync(process.execPath, [CLI, '--root', root, '--storage', storage, 'update', '--resources', '-', name], { input: JSON.stringify({ pids: { limit: 9 }, memory: { limit: 80 * 1024 * 1024 } }), encoding: 'utf8' });
  t.equal(viaStdin.status, 0, viaStdin.stderr);
  t.ok(await eventually(() => seen() === '9'), 'the container sees the limit given on stdin');
  const file = path.join(shared, `${name}-resources.json`);
  fs.writeFileSync(file, JSON.stringify({ pids: { limit: 11 } }));
  t.equal(ts(['update', '-r', file, '--memory', '90m', name]).status, 0);
  t.ok(await eventually(() => seen() === '11'), 'and the one in a file');
  t.match(JSON.parse(ts(['stats', '--no-stream', '--format', 'json', name]).stdout)[0], { memory: { limit: 90 * 1024 * 1024 }, pids: { limit: 11 } }, 'a flag beside the file is applied too');
  for (const [doc, err] of [
    ['{"devices":[{"allow":true,"access":"rwm"}]}', /devices cannot be changed on a running container/],
    ['{"memory":{"kernel":1}}', /memory\.kernel cannot be changed/],
    ['[1]', /must be a JSON object/],
    ['{"pids":', /not valid JSON/],
  ] as const) {
    fs.writeFileSync(file, doc);
    const r = ts(['update', '-r', file, name]);
    t.equal(r.status, 125, doc);
    t.match(r.stderr, err, doc);
    t.equal(r.stderr.split('\n').length, 2, `${doc}: one line`);
  }
  t.ok(await eventually(() => seen() === '11'), 'a refused document changed nothing');
  t.equal(ts(['kill', name, 'KILL']).status, 0);
  await exited(c);
});

t.test('events reports an OOM kill inside a container that goes on', { skip: needsRoot }, async (t) => {
  const name = uniqueId('oom');
  const go = path.join(shared, `${name}.go`);
  // The hog waits for the test's go-ahead, given once the events watcher has had time to start.
  const c = await background(name, ['--memory', '24m', 'busybox', 'sh', '-c', `while [ ! -e /shared/${name}.go ]; do usleep 20000; done; (x=a; while :; do x="$x$x"; done); sleep 0.5; exit 3`]);
  const id = JSON.parse(ts(['inspect', name]).stdout)[0].Id;
  const ev = spawn(process.execPath, [CLI, '--root', root, '--storage', storage, 'events', name]);
  let out = '';
  ev.stdout.on('data', (d) => (out += d));
  // Time for the watcher to start: a few of tsrun's own start-ups (slow under emulation).
  const t0 = Date.now();
  tsrun(['--version']);
  await sleep(Math.max(3000, 4 * (Date.now() - t0)));
  fs.writeFileSync(go, '');
  t.equal(await exited(c), 3, 'pid 1 survived the OOM kill of its child');
  await exited(ev);
  const events = out.trim().split('\n').map((l) => JSON.parse(l));
  t.match(events, [{ type: 'oom', id, count: 1 }, { type: 'exit', id }]);
});

t.test('state reports a container whose process the OOM killer ended', { skip: needsRoot }, async (t) => {
  const bundle = path.join(TEST_BASE, `oomstate-${process.pid}`);
  execFileSync(path.join(PROJECT, 'scripts', 'busybox-bundle.sh'), [bundle, 'sh', '-c', '(x=a; while :; do x="$x$x"; done); sleep 1000'], { stdio: 'ignore' });
  t.teardown(() => fs.rmSync(bundle, { recursive: true, force: true }));
  const cfg = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8'));
  cfg.linux.resources = { ...cfg.linux.resources, memory: { limit: 24 * 1024 * 1024 } };
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(cfg));
  const id = uniqueId('oomstate');
  t.equal(tsrun(['create', '--bundle', bundle, id], { root }).status, 0);
  t.notOk(JSON.parse(tsrun(['state', id], { root }).stdout).oomKilled, 'not before');
  t.equal(tsrun(['start', id], { root }).status, 0);
  let state = { oomKilled: false };
  for (let i = 0; i < 200 && !state.oomKilled; i++) {
    await sleep(25);
    state = JSON.parse(tsrun(['state', id], { root }).stdout);
  }
  t.match(state, { status: 'running', oomKilled: true });
  t.equal(tsrun(['delete', '--force', id], { root }).status, 0);
});

t.test('delete --force kills everything in the cgroup, even without a PID namespace', { skip: needsRoot }, async (t) => {
  const bundle = path.join(TEST_BASE, `nopidns-${process.pid}`);
  execFileSync(path.join(PROJECT, 'scripts', 'busybox-bundle.sh'), [bundle, 'sh', '-c', 'sleep 1000 & sleep 1000 & sleep 1000'], { stdio: 'ignore' });
  t.teardown(() => fs.rmSync(bundle, { recursive: true, force: true }));
  const cfg = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8'));
  cfg.linux.namespaces = cfg.linux.namespaces.filter((n: { type: string }) => n.type !== 'pid');
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(cfg));
  const id = uniqueId('force');
  t.equal(tsrun(['create', '--bundle', bundle, id], { root }).status, 0);
  t.equal(tsrun(['start', id], { root }).status, 0);
  await sleep(300);
  // The pids hierarchy on v1 and hybrid hosts; the unified tree on v2.
  const dir = fs.existsSync('/sys/fs/cgroup/pids') ? `/sys/fs/cgroup/pids/tsrun/${id}` : `/sys/fs/cgroup/tsrun/${id}`;
  const pids = fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').trim().split('\n').map(Number);
  t.ok(pids.length >= 3, `the command and its children (${pids.length} processes)`);
  t.equal(tsrun(['delete', '--force', id], { root }).status, 0);
  // Killed processes may linger as zombies until their new parent reaps them.
  const alive = (p: number) => {
    try {
      return !/\) [ZX] /.test(fs.readFileSync(`/proc/${p}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };
  t.same(pids.filter(alive), [], 'every process is gone');
  t.notOk(fs.existsSync(dir), 'and the cgroup');
});

t.test('the v2 core files on this host\'s own cgroup2 mount: procs, freeze, events, kill', { skip: needsRoot || (!fs.existsSync('/sys/fs/cgroup/unified/cgroup.controllers') && !fs.existsSync('/sys/fs/cgroup/cgroup.controllers') && 'no cgroup2 mount') }, async (t) => {
  const { freeze, thaw, isFrozen } = await import('../src/cgroup/ops');
  const { killCgroups, removeCgroups } = await import('../src/cgroup/placement');
  const base = fs.existsSync('/sys/fs/cgroup/unified/cgroup.controllers') ? '/sys/fs/cgroup/unified' : '/sys/fs/cgroup';
  const dir = path.join(base, `tsrun-test-v2-${process.pid}`);
  fs.mkdirSync(dir);
  const sleeper = spawn('sh', ['-c', 'while :; do usleep 10000 2>/dev/null || sleep 0.01; done']);
  fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(sleeper.pid));
  const placement = { dirs: [dir], created: [dir] };
  const ticks = () => Number(fs.readFileSync(`/proc/${sleeper.pid}/stat`, 'utf8').split(') ')[1].split(' ')[11]);
  await freeze(placement);
  t.match(fs.readFileSync(path.join(dir, 'cgroup.events'), 'utf8'), /^frozen 1$/m, 'cgroup.events says frozen');
  t.ok(isFrozen(placement));
  const a = ticks();
  await sleep(300);
  t.equal(ticks(), a, 'a frozen process uses no CPU time');
  await thaw(placement);
  t.match(fs.readFileSync(path.join(dir, 'cgroup.events'), 'utf8'), /^frozen 0$/m);
  const died = exited(sleeper);
  await killCgroups(placement);
  t.equal(await Promise.race([died.then(() => 'killed'), sleep(3000).then(() => 'alive')]), 'killed', 'cgroup.kill ended it');
  removeCgroups(placement);
  t.notOk(fs.existsSync(dir));
});
