// The runtime-spec lifecycle through the CLI: create, start, state, kill,
// delete, list; the refusals the spec requires; --trace; errors that leave
// nothing behind.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { busyboxRootfs, makeBundle, mountsUnder, needsRoot, processesRootedIn, removeBundle, removeRootfs, stateRoot, TEST_BASE, testSpec, tsrun, uniqueId, stateEntries } from './helpers';

const root = stateRoot('lifecycle');
t.teardown(removeRootfs);

const state = (id: string) => JSON.parse(tsrun(['state', id], { root }).stdout);
async function until(cond: () => boolean, what: string) {
  for (let i = 0; i < 200; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}
const alive = (pid: number) => fs.existsSync(`/proc/${pid}`) && !/^\S+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));

t.test('create, start, state, kill, delete, with the refusals of the spec', { skip: needsRoot }, async (t) => {
  const bundle = makeBundle(testSpec(['sh', '-c', 'echo started > /dev/shm/mark; sleep 1000']));
  t.teardown(() => removeBundle(bundle));
  const id = uniqueId('life');
  const pidFile = path.join(bundle, 'pid');

  const created = tsrun(['create', '--bundle', bundle, '--pid-file', pidFile, id], { root });
  t.equal(created.status, 0, created.stderr);
  const s1 = state(id);
  t.match(s1, { ociVersion: /^1\./, id, status: 'created', bundle, pid: Number(fs.readFileSync(pidFile, 'utf8')), rootfs: path.resolve(bundle, JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8')).root.path), owner: 'root' });
  t.ok(Math.abs(Date.parse(s1.created) - Date.now()) < 60_000, `created is a time (${s1.created}), as runc's state has it`);
  t.ok(alive(s1.pid), 'the created process exists and waits');
  t.equal(fs.readFileSync(`/proc/${s1.pid}/cmdline`, 'utf8').split('\0')[0], process.execPath, 'it has not exec\'d its command yet');

  const again = tsrun(['create', '--bundle', bundle, id], { root });
  t.equal(again.status, 125);
  t.match(again.stderr, /already exists/);
  t.equal(state(id).status, 'created', 'a refused create leaves the first container as it was');

  const del = tsrun(['delete', id], { root });
  t.not(del.status, 0);
  t.match(del.stderr, /it is created/);

  t.equal(tsrun(['start', id], { root }).status, 0);
  t.equal(state(id).status, 'running');
  await until(() => fs.readFileSync(`/proc/${s1.pid}/cmdline`, 'utf8').startsWith('sleep'), 'exec');

  const start2 = tsrun(['start', id], { root });
  t.not(start2.status, 0);
  t.match(start2.stderr, /it is running, and only a created container can start/);
  t.match(tsrun(['delete', id], { root }).stderr, /it is running/);

  const list = JSON.parse(tsrun(['list', '--format', 'json'], { root }).stdout);
  t.match(list.find((c: { id: string }) => c.id === id), { status: 'running', pid: s1.pid });

  t.equal(tsrun(['kill', id, 'KILL'], { root }).status, 0);
  await until(() => !alive(s1.pid), 'the container to die');
  t.equal(state(id).status, 'stopped', 'state says stopped until delete');
  t.equal(state(id).status, 'stopped');
  const kill2 = tsrun(['kill', id], { root });
  t.not(kill2.status, 0);
  t.match(kill2.stderr, /cannot kill container "[^"]+": it is stopped/);

  t.equal(tsrun(['delete', id], { root }).status, 0);
  const gone = tsrun(['state', id], { root });
  t.not(gone.status, 0);
  t.match(gone.stderr, /does not exist/);
  t.notOk(fs.existsSync(path.join(root, id)));
});

t.test('delete --force kills a created or running container', { skip: needsRoot }, async (t) => {
  const bundle = makeBundle(testSpec(['sleep', '1000']));
  t.teardown(() => removeBundle(bundle));
  for (const startIt of [false, true]) {
    const id = uniqueId('force');
    t.equal(tsrun(['create', '--bundle', bundle, id], { root }).status, 0);
    if (startIt) t.equal(tsrun(['start', id], { root }).status, 0);
    const pid = state(id).pid;
    const r = tsrun(['delete', '--force', id], { root });
    t.equal(r.status, 0, r.stderr);
    t.notOk(alive(pid), `the ${startIt ? 'running' : 'created'} process is gone`);
    t.notOk(fs.existsSync(path.join(root, id)));
    // Again, as clients do after a failure: gone is what was asked, as runc says.
    const again = tsrun(['delete', '--force', id], { root });
    t.same([again.status, again.stdout, again.stderr], [0, '', ''], 'delete --force of a container that is gone exits 0, silent');
  }
  const plain = tsrun(['delete', 'nope'], { root });
  t.not(plain.status, 0);
  t.match(plain.stderr, /container "nope" does not exist/, 'without --force it is an error');
});

t.test('kill takes TERM, SIGTERM and numbers', { skip: needsRoot }, async (t) => {
  const bundle = makeBundle(testSpec(['sh', '-c', 'trap "exit 0" USR1; while :; do sleep 0.05; done']));
  t.teardown(() => removeBundle(bundle));
  for (const sig of ['USR1', 'SIGUSR1', '10']) {
    const id = uniqueId('sig');
    t.equal(tsrun(['create', '--bundle', bundle, id], { root }).status, 0);
    t.equal(tsrun(['start', id], { root }).status, 0);
    const pid = state(id).pid;
    await new Promise((r) => setTimeout(r, 100));
    t.equal(tsrun(['kill', id, sig], { root }).status, 0);
    await until(() => !alive(pid), `${sig} to end the container`);
    t.equal(tsrun(['delete', id], { root }).status, 0);
  }
  t.match(tsrun(['kill', 'nope', 'TERM'], { root }).stderr, /container "nope" does not exist/);
});

t.test('--trace names each step as it runs, with why', { skip: needsRoot }, async (t) => {
  const bundle = makeBundle(testSpec(['true']));
  t.teardown(() => removeBundle(bundle));
  const r = tsrun(['--trace', 'run', '--bundle', bundle, uniqueId('trace')], { root });
  t.equal(r.status, 0, r.stderr);
  for (const re of [
    /clone\(CLONE_NEWNS\|CLONE_NEWPID\|CLONE_NEWNET\|CLONE_NEWIPC\|CLONE_NEWUTS\)/,
    /handshake: runtime places pid \d+ in cgroup \/tsrun\/trace-/,
    /\] unshare\(CLONE_NEWCGROUP\)\n/,
    /new pid namespace: isolates process ids/,
    /\[ ?\d+\/\d+\] mount --make-rslave \/\n\s+mounts made in the new mount namespace must not propagate/,
    /\] mount proc on \/proc\n\s+a procfs that belongs to the new PID namespace/,
    /\] mknod \/dev\/null c 1 3\n/,
    /\] pivot_root \S+\/rootfs\n\s+make the rootfs "\/"/,
    /\] sethostname\("tsrun"\)\n/,
    /\] setresuid\(0\)\n/,
    /\] execve \["true"\]\n/,
  ])
    t.match(r.stderr, re);
  const numbers = [...r.stderr.matchAll(/\[ ?(\d+)\/(\d+)\]/g)].map((m) => Number(m[1]));
  t.same(numbers, [...numbers].sort((a, b) => a - b), 'steps print in order');
  t.equal(numbers[numbers.length - 1], Number(/\/(\d+)\]/.exec(r.stderr)![1]), 'through the last step');
});

t.test('bad input: one clear line, a non-zero exit, nothing left behind', { skip: needsRoot }, async (t) => {
  const cases: { name: string; make: () => string; status: number; err: RegExp }[] = [
    {
      name: 'unknown capability',
      make: () => makeBundle(testSpec(['true'], (s) => s.process!.capabilities!.bounding!.push('CAP_TELEPORT'))),
      status: 125,
      err: /^tsrun: invalid config: process\.capabilities\.bounding\[3\]: unknown capability "CAP_TELEPORT"\n$/,
    },
    { name: 'missing rootfs', make: () => makeBundle(testSpec(['true'], (s) => (s.root!.path = '/nonexistent/rootfs'))), status: 125, err: /^tsrun: invalid config: root\.path: \/nonexistent\/rootfs: ENOENT\n$/ },
    { name: 'missing command', make: () => makeBundle(testSpec(['/bin/nothing-here'])), status: 127, err: /^tsrun: step \d+ \(find "\/bin\/nothing-here" in PATH\): cannot run "\/bin\/nothing-here": ENOENT \(no such file or directory\)\n$/ },
    {
      name: 'invalid JSON',
      make: () => {
        const dir = makeBundle(testSpec(['true']));
        fs.writeFileSync(path.join(dir, 'config.json'), '{"ociVersion": "1.0.2",');
        return dir;
      },
      status: 125,
      err: /^tsrun: invalid config: \S+config\.json: not valid JSON/,
    },
    { name: 'a setup step that fails', make: () => makeBundle(testSpec(['true'], (s) => (s.linux!.sysctl = { 'net.ipv4.no_such_knob': '1' }))), status: 125, err: /^tsrun: step \d+ \(sysctl net\.ipv4\.no_such_knob=1\): ENOENT/ },
    { name: 'bad id', make: () => makeBundle(testSpec(['true'])), status: 125, err: /^tsrun: invalid container id/ },
  ];
  for (const c of cases) {
    const bundle = c.make();
    const id = c.name === 'bad id' ? '../escape' : uniqueId('bad');
    for (const verb of ['run', 'create']) {
      const r = tsrun([verb, '--bundle', bundle, id], { root });
      t.equal(r.status, c.status, `${c.name} (${verb}): exit code`);
      t.match(r.stderr, c.err, `${c.name} (${verb}): the error`);
      t.equal(r.stderr.trim().split('\n').length, 1, `${c.name} (${verb}): one line`);
      t.notOk(fs.existsSync(path.join(root, id)), `${c.name} (${verb}): no state directory`);
      t.same(processesRootedIn(busyboxRootfs()), [], `${c.name} (${verb}): no process`);
      t.same(mountsUnder(TEST_BASE), [], `${c.name} (${verb}): no mount`);
    }
    removeBundle(bundle);
  }
  t.same(stateEntries(root).filter((d) => !d.startsWith('life') && !d.startsWith('force') && !d.startsWith('sig')), [], 'the state root holds nothing from bad input');
});

t.test('spec writes a default config as runc spec does, and refuses to overwrite', { skip: needsRoot }, async (t) => {
  const dir = fs.mkdtempSync(path.join(TEST_BASE, 'spec-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  t.equal(tsrun(['spec', '--bundle', dir]).status, 0);
  const spec = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  t.match(spec, { ociVersion: /^1\.0\./, root: { path: 'rootfs', readonly: true }, process: { args: ['sh'], terminal: true } });
  t.same(spec.linux.namespaces.map((n: { type: string }) => n.type).sort(), ['cgroup', 'ipc', 'mount', 'network', 'pid', 'uts']);
  const again = tsrun(['spec', '--bundle', dir]);
  t.equal(again.status, 125);
  t.match(again.stderr, /EEXIST/);
});

t.test('unknown flags and verbs are refused', async (t) => {
  const r = tsrun(['create', '--no-such-flag', 'x']);
  t.equal(r.status, 125);
  t.match(r.stderr, /unknown option '--no-such-flag'/);
  t.equal(tsrun(['frobnicate']).status, 125);
});

t.test('runc verbs take exact ids: a prefix of another container\'s id is no container', { skip: needsRoot }, async (t) => {
  const bundle = makeBundle(testSpec(['sleep', '100']));
  t.teardown(() => removeBundle(bundle));
  const id = uniqueId('exact');
  t.equal(tsrun(['create', '--bundle', bundle, id], { root }).status, 0);
  const prefix = id.slice(0, -1);
  for (const args of [['kill', prefix, 'KILL'], ['start', prefix], ['state', prefix], ['delete', prefix], ['exec', prefix, 'true'], ['pause', prefix]]) {
    const r = tsrun(args, { root });
    t.not(r.status, 0, `${args[0]} ${prefix} is refused`);
  }
  t.equal(tsrun(['delete', '--force', prefix], { root }).status, 0, 'delete --force of the prefix: no such container, nothing to do');
  t.equal(state(id).status, 'created', 'and the container is untouched');
  t.equal(tsrun(['delete', '--force', id], { root }).status, 0);
});
