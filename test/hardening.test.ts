// Regressions for attacks and faults found in review: each would hurt the
// host or hang tsrun if the fix were undone.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { native } from '../src/native';
import { busyboxRootfs, makeBundle, needsRoot, processesRootedIn, removeBundle, removeRootfs, runIn, stateRoot, TEST_BASE, testSpec, tsrun, uniqueId } from './helpers';

const root = stateRoot('hardening');
const work = path.join(TEST_BASE, `hardening-${process.pid}`);
t.teardown(() => {
  fs.rmSync(work, { recursive: true, force: true });
  removeRootfs();
});
const sh = (script: string) => ['sh', '-c', script];

t.test('a device node smuggled in (not in the config) cannot be opened: the devices cgroup denies it', { skip: needsRoot }, async (t) => {
  const dir = path.join(work, 'devs');
  fs.mkdirSync(dir, { recursive: true });
  native().mknod(path.join(dir, 'kmsg'), 0o020000 | 0o666, 1, 11);
  fs.chmodSync(path.join(dir, 'kmsg'), 0o666);
  const r = runIn(sh('echo hi > /smuggled/kmsg && echo opened || echo denied; echo ok > /dev/null && echo null-ok'), {
    root,
    edit: (s) => {
      s.process!.user = { uid: 1000, gid: 1000 };
      s.mounts!.push({ destination: '/smuggled', type: 'bind', source: dir, options: ['rbind'] });
    },
  });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, 'denied\nnull-ok\n');
  t.match(r.stderr, /Operation not permitted/);
});

t.test('a fifo where a file is bind-mounted does not hang setup', { skip: needsRoot }, async (t) => {
  const dir = path.join(work, 'fifo');
  fs.mkdirSync(dir, { recursive: true });
  native().mkfifo(path.join(dir, 'hosts'), 0o644);
  fs.writeFileSync(path.join(work, 'real-hosts'), '127.0.0.1 real\n');
  const r = runIn(sh('cat /etc2/hosts'), {
    root,
    edit: (s) => {
      s.mounts!.push({ destination: '/etc2', type: 'bind', source: dir, options: ['rbind'] });
      s.mounts!.push({ destination: '/etc2/hosts', type: 'bind', source: path.join(work, 'real-hosts'), options: ['bind'] });
    },
  });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, '127.0.0.1 real\n');
});

t.test('a symlink where a device node goes is replaced, not followed to the host', { skip: needsRoot }, async (t) => {
  const dir = path.join(work, 'devdir');
  fs.mkdirSync(dir, { recursive: true });
  const victim = path.join(work, 'victim');
  fs.writeFileSync(victim, 'secret', { mode: 0o600 });
  fs.symlinkSync(victim, path.join(dir, 'null'));
  // /dev is the image's own directory here (no tmpfs), holding the symlink.
  const r = runIn(sh('ls -l /dev/null | cut -c1'), {
    root,
    edit: (s) => {
      s.mounts = s.mounts!.filter((m) => !m.destination.startsWith('/dev'));
      s.mounts.push({ destination: '/dev', type: 'bind', source: dir, options: ['rbind'] });
    },
  });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, 'c\n', 'a real device node now');
  t.equal(fs.statSync(victim).mode & 0o777, 0o600, 'the host file kept its mode');
  t.equal(fs.readFileSync(victim, 'utf8'), 'secret');
});

t.test('a foreground container with a non-root user dies with a SIGKILLed tsrun', { skip: needsRoot }, async (t) => {
  const bundle = makeBundle(testSpec(['sleep', '1000'], (s) => (s.process!.user = { uid: 1000, gid: 1000 })));
  t.teardown(() => removeBundle(bundle));
  const id = uniqueId('orphan');
  const pidFile = path.join(bundle, 'pid');
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'dist', 'tsrun.js'), '--root', root, 'run', '--bundle', bundle, '--pid-file', pidFile, id], { stdio: 'ignore' });
  for (let i = 0; i < 200 && !fs.existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 25));
  const pid = Number(fs.readFileSync(pidFile, 'utf8'));
  await new Promise((r) => setTimeout(r, 200));
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));
  let alive = true;
  for (let i = 0; i < 100 && alive; i++) {
    alive = fs.existsSync(`/proc/${pid}`) && !/\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
    if (alive) await new Promise((r) => setTimeout(r, 20));
  }
  t.notOk(alive, 'the container process is gone');
  // tsrun died before its own clean-up: delete --force clears what it left.
  t.equal(tsrun(['delete', '--force', id], { root }).status, 0);
});

t.test('an existing cgroup with processes in it is refused, and its processes live on', { skip: needsRoot }, async (t) => {
  const cg = `/tsrun-test-busy-${process.pid}`;
  const dir = `/sys/fs/cgroup/pids${cg}`;
  fs.mkdirSync(dir);
  const sleeper = spawn('sleep', ['1000']);
  t.teardown(() => {
    sleeper.kill('SIGKILL');
    return new Promise<void>((resolve) =>
      sleeper.on('exit', () => {
        fs.rmdirSync(dir);
        resolve();
      }),
    );
  });
  fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(sleeper.pid));
  const bundle = makeBundle(testSpec(['true'], (s) => (s.linux!.cgroupsPath = cg)));
  t.teardown(() => removeBundle(bundle));
  const id = uniqueId('busy');
  const r = tsrun(['run', '--bundle', bundle, id], { root });
  t.equal(r.status, 125);
  t.match(r.stderr, /cgroup \/sys\/fs\/cgroup\/\S+ already exists and has processes in it/);
  t.ok(fs.existsSync(`/proc/${sleeper.pid}`), 'the other process is untouched');
  t.notOk(fs.existsSync(path.join(root, id)));
  for (const h of ['memory', 'cpu', 'freezer']) t.notOk(fs.existsSync(`/sys/fs/cgroup/${h}${cg}`), `no ${h} cgroup left behind`);
  void execFileSync;
});

t.test('tsrun SIGKILLed in the middle of create: the next delete --force leaves nothing', { skip: needsRoot }, async (t) => {
  const bundle = makeBundle(testSpec(['sleep', '1000']));
  t.teardown(() => removeBundle(bundle));
  for (const marker of ['handshake: runtime places pid', '] pivot_root ', '] handshake: report ready']) {
    const id = uniqueId('midcreate');
    const child = spawn(process.execPath, [path.join(__dirname, '..', 'dist', 'tsrun.js'), '--root', root, '--trace', 'create', '--bundle', bundle, id], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    await new Promise<void>((resolve) =>
      child.stderr!.on('data', (d: Buffer) => {
        err += d;
        if (err.includes(marker)) resolve();
      }),
    );
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const state = JSON.parse(tsrun(['state', id], { root }).stdout);
    // Stopped if tsrun died before recording the process; created if just after (the trace lags a little).
    t.ok(['stopped', 'created'].includes(state.status), `killed at "${marker}": reported truthfully (${state.status})`);
    const del = tsrun(['delete', '--force', id], { root });
    t.equal(del.status, 0, del.stderr);
    t.notOk(fs.existsSync(path.join(root, id)), `killed at "${marker}": no state left`);
    const cgroups = fs.readdirSync('/sys/fs/cgroup').filter((h) => fs.existsSync(`/sys/fs/cgroup/${h}/tsrun/${id}`));
    t.same(cgroups, [], `killed at "${marker}": no cgroup left`);
    t.same(processesRootedIn(path.dirname(busyboxRootfs())), [], `killed at "${marker}": no process left`);
  }
});

t.test('device rules in runc\'s order: linux.devices makes nodes, linux.resources.devices decides, in order', { skip: needsRoot }, async (t) => {
  const tun = { path: '/dev/net/tun', type: 'c', major: 10, minor: 200, fileMode: 0o666 };
  // Each line counts "Operation not permitted": 1 is a refusal by the devices controller, 0 the driver's own answer.
  const script = 'cat /dev/net/tun 2>&1 | grep -c "Operation not permitted"; (echo x > /dev/net/tun) 2>&1 | grep -c "Operation not permitted"; echo ok > /dev/null && echo null-ok';
  const run = (rules: object[]) =>
    runIn(sh(script), {
      root,
      edit: (s) => {
        s.linux!.devices = [tun];
        s.linux!.resources = { devices: [{ allow: false, access: 'rwm' }, ...rules] };
      },
    }).stdout;
  t.equal(run([]), '1\n1\nnull-ok\n', 'a node with no rule is made but cannot be opened');
  t.equal(run([{ allow: true, type: 'c', major: 10, minor: 200, access: 'rwm' }]), '0\n0\nnull-ok\n', 'a rule allows it');
  t.equal(run([{ allow: true, type: 'c', major: 10, minor: 200, access: 'rwm' }, { allow: false, type: 'c', major: 10, minor: 200, access: 'w' }]), '0\n1\nnull-ok\n', 'a later deny takes write away (as the v1 controller: from the same device); the default devices come after and stay usable');
});

t.test('a fifo in linux.devices is a node with no cgroup rule (the controller knows a, b and c only)', { skip: needsRoot }, async (t) => {
  const r = runIn(sh('ls -l /dev/myfifo | cut -c1; echo hi > /dev/null && echo null-ok'), {
    root,
    edit: (s) => {
      s.linux!.devices = [{ path: '/dev/myfifo', type: 'p', fileMode: 0o644 }];
    },
  });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, 'p\nnull-ok\n');
});
