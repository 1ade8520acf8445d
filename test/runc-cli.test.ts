// The runc command line that OCI clients (containerd's shim, podman) speak:
// the global --log/--log-format/--debug/--systemd-cgroup/--rootless, runc's
// `ps ID`, `kill --all`, and the features document checked against what the
// runtime then does.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { makeBundle, needsRoot, removeBundle, removeRootfs, stateRoot, TEST_BASE, testSpec, tsrun, uniqueId } from './helpers';
import { validateSpec } from '../src/spec/validate';

const root = stateRoot('runc-cli');
t.teardown(removeRootfs);

const alive = (pid: number) => fs.existsSync(`/proc/${pid}`) && !/^\S+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, what: string) {
  for (let i = 0; i < 200; i++) {
    if (cond()) return;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}
const children = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  } catch {
    return [];
  }
};

t.test('--log: errors as JSON lines or logrus text, as runc writes them; the file is made even when nothing fails', { skip: needsRoot }, async (t) => {
  const dir = fs.mkdtempSync(path.join(TEST_BASE, 'log-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const json = path.join(dir, 'log.json');
  const r = tsrun(['--log', json, '--log-format', 'json', 'state', 'no-such-container'], { root });
  t.not(r.status, 0);
  t.match(r.stderr, /^tsrun: container "no-such-container" does not exist/, 'stderr still carries the error');
  const lines = fs.readFileSync(json, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.equal(lines.length, 1);
  t.equal(lines[0].level, 'error');
  t.match(lines[0].msg, /container "no-such-container" does not exist/);
  t.ok(Math.abs(Date.parse(lines[0].time) - Date.now()) < 60_000, 'with the time');

  // An unknown flag of a verb is logged too (commander's own error).
  t.not(tsrun(['--log', json, '--log-format=json', 'delete', '--no-such-flag', 'x'], { root }).status, 0);
  const last = JSON.parse(fs.readFileSync(json, 'utf8').trim().split('\n').pop()!);
  t.match(last.msg, /unknown option '--no-such-flag'/);

  const text = path.join(dir, 'log.txt');
  tsrun(['--log', text, 'kill', 'nope'], { root });
  t.match(fs.readFileSync(text, 'utf8'), /^time="[^"]+" level=error msg="container \\"nope\\" does not exist"\n$/);

  const quiet = path.join(dir, 'quiet.json');
  t.equal(tsrun(['--log', quiet, '--log-format', 'json', 'list'], { root }).status, 0);
  t.equal(fs.readFileSync(quiet, 'utf8'), '', 'made, and empty when all went well');

  const bad = tsrun(['--log', json, '--log-format', 'xml', 'list'], { root });
  t.match(bad.stderr, /^tsrun: --log-format xml: use text or json\n$/);
  t.match(tsrun(['--log-format', 'xml', 'list'], { root }).stderr, /^tsrun: --log-format xml: use text or json\n$/, 'the format is checked without --log too');
  const none = tsrun(['--log=', '--log-format', 'json', 'kill', 'nope'], { root });
  t.match(none.stderr, /^tsrun: container "nope" does not exist\n$/, 'an empty --log= is no log');
  const unwritable = tsrun(['--log', path.join(dir, 'no', 'such', 'dir', 'log'), 'list'], { root });
  t.match(unwritable.stderr, /^tsrun: --log .*\/no\/such\/dir\/log: cannot open it for appending: ENOENT\n$/);
});

t.test('--debug logs each set-up step; --systemd-cgroup and --rootless true are refused, --rootless false taken', { skip: needsRoot }, async (t) => {
  const dir = fs.mkdtempSync(path.join(TEST_BASE, 'debug-'));
  const bundle = makeBundle(testSpec(['true']));
  t.teardown(() => {
    removeBundle(bundle);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const log = path.join(dir, 'log.json');
  const r = tsrun(['--debug', '--log', log, '--log-format', 'json', 'run', '--bundle', bundle, uniqueId('dbg')], { root });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stderr, '', 'the steps go to the log, not stderr');
  const lines = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.ok(lines.length > 5 && lines.every((l) => l.level === 'debug'), 'debug lines');
  t.ok(lines.some((l) => /pivot_root/.test(l.msg)), 'one of them is the pivot_root step');

  const sd = tsrun(['--systemd-cgroup', 'run', '--bundle', bundle, uniqueId('sd')], { root });
  t.equal(sd.status, 125);
  t.match(sd.stderr, /^tsrun: --systemd-cgroup: .*cgroupfs.*SystemdCgroup = false/);
  const rl = tsrun(['--rootless', 'true', 'list'], { root });
  t.match(rl.stderr, /^tsrun: --rootless true: tsrun runs containers as root only/);
  t.equal(tsrun(['--rootless', 'false', 'list'], { root }).status, 0);
  t.equal(tsrun(['--rootless', 'auto', 'list'], { root }).status, 0);
  t.match(tsrun(['--rootless', 'maybe', 'list'], { root }).stderr, /--rootless maybe: use true, false or auto/);
});

t.test('ps ID (runc\'s): the container\'s pids as JSON, ps(1) lines of them as a table', { skip: needsRoot }, async (t) => {
  const bundle = makeBundle(testSpec(['sh', '-c', 'sleep 1000 & sleep 1001 & wait']));
  const id = uniqueId('ps');
  t.teardown(() => {
    tsrun(['delete', '--force', id], { root });
    removeBundle(bundle);
  });
  t.equal(tsrun(['create', '--bundle', bundle, id], { root }).status, 0);
  t.equal(tsrun(['start', id], { root }).status, 0);
  const pid = JSON.parse(tsrun(['state', id], { root }).stdout).pid;
  await until(() => children(pid).length === 2, 'the two sleeps');
  const pids = JSON.parse(tsrun(['ps', '--format', 'json', id], { root }).stdout);
  t.same(pids, [pid, ...children(pid)].sort((a, b) => a - b), 'pid 1 and its two children, by their host pids');
  const table = tsrun(['ps', id], { root }).stdout.trim().split('\n');
  t.match(table[0], /^UID\s+PID\s+PPID/, 'ps -ef\'s header');
  t.same(table.slice(1).map((l) => Number(l.trim().split(/\s+/)[1])).sort((a, b) => a - b), pids, 'and its lines of exactly those pids');
  t.match(table.slice(1).join('\n'), /sleep 1001/);
  const custom = tsrun(['ps', id, '-o', 'pid,comm'], { root }).stdout.trim().split('\n');
  t.match(custom[0], /^\s*PID COMMAND/, 'ps options after the id go to ps(1)');
  t.equal(custom.length, 4);
  t.match(tsrun(['ps', 'nope'], { root }).stderr, /nope/, 'an unknown container is an error');
});

t.test('kill --all signals every process of the cgroup; plain kill only pid 1 (a container in the host\'s PID namespace)', { skip: needsRoot }, async (t) => {
  // Without a PID namespace of its own, pid 1's death does not end its children: that is what --all is for.
  const spec = testSpec(['sh', '-c', 'sleep 1000 & sleep 1001 & wait'], (s) => {
    s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== 'pid');
    s.mounts = s.mounts!.filter((m) => m.type !== 'proc');
  });
  const bundle = makeBundle(spec);
  t.teardown(() => removeBundle(bundle));
  for (const all of [false, true]) {
    const id = uniqueId('killall');
    t.equal(tsrun(['create', '--bundle', bundle, id], { root }).status, 0);
    t.equal(tsrun(['start', id], { root }).status, 0);
    const pid = JSON.parse(tsrun(['state', id], { root }).stdout).pid;
    await until(() => children(pid).length === 2, 'the two sleeps');
    const kids = children(pid);
    const r = tsrun(all ? ['kill', '--all', id, 'KILL'] : ['kill', id, 'KILL'], { root });
    t.equal(r.status, 0, r.stderr);
    await until(() => !alive(pid), 'pid 1 to die');
    await sleep(100);
    if (all) t.same(kids.filter(alive), [], 'kill --all: its children are gone too');
    else t.same(kids.filter(alive), kids, 'plain kill: its children live on');
    // Stopped, yet processes remain: kill --all still reaches them, as runc's.
    if (!all) t.equal(tsrun(['kill', '--all', id, 'KILL'], { root }).status, 0);
    await until(() => kids.every((k) => !alive(k)), 'the children to die');
    t.equal(tsrun(['delete', id], { root }).status, 0);
  }
});

/** The cgroup directories of a process, one per hierarchy, from /proc/PID/cgroup and the host's cgroup mounts. */
function cgroupDirsOf(pid: number): string[] {
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((l) => {
    const [pre, post] = l.split(' - ');
    const [fstype, , opts] = post.split(' ');
    return { at: pre.split(' ')[4], root: pre.split(' ')[3], fstype, opts: opts.split(',') };
  });
  return fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').filter(Boolean).flatMap((line) => {
    const [, controllers, rel] = line.split(/:(.*?):/);
    const m = controllers === '' ? mounts.find((x) => x.fstype === 'cgroup2') : mounts.find((x) => x.fstype === 'cgroup' && controllers.split(',').every((c) => x.opts.includes(c)) && x.root === '/');
    return m ? [path.join(m.at, rel)] : [];
  });
}

t.test('a process the container moved into a cgroup below its own is still its own: ps ID lists it, kill --all reaches it', { skip: needsRoot }, async (t) => {
  const bundle = makeBundle(testSpec(['sh', '-c', 'sleep 1000 & sleep 1001 & wait']));
  t.teardown(() => removeBundle(bundle));
  const id = uniqueId('subcg');
  t.equal(tsrun(['create', '--bundle', bundle, id], { root }).status, 0);
  t.equal(tsrun(['start', id], { root }).status, 0);
  const pid = JSON.parse(tsrun(['state', id], { root }).stdout).pid;
  await until(() => children(pid).length === 2, 'the two sleeps');
  const [moved, stays] = children(pid);
  const subs = cgroupDirsOf(moved).map((d) => path.join(d, 'sub'));
  t.teardown(() => {
    tsrun(['delete', '--force', id], { root });
    for (const d of subs) if (fs.existsSync(d)) fs.rmdirSync(d);
  });
  for (const d of subs) {
    fs.mkdirSync(d);
    // A v1 cpuset cgroup takes no process before it has cpus and mems.
    for (const f of ['cpuset.cpus', 'cpuset.mems']) if (fs.existsSync(path.join(d, f))) fs.writeFileSync(path.join(d, f), fs.readFileSync(path.join(d, '..', f)));
    fs.writeFileSync(path.join(d, 'cgroup.procs'), String(moved));
  }
  t.ok(cgroupDirsOf(moved).every((d) => d.endsWith('/sub')), 'moved below the container\'s cgroup in every hierarchy');
  const listed = JSON.parse(tsrun(['ps', '--format', 'json', id], { root }).stdout) as number[];
  t.ok(listed.includes(moved) && listed.includes(stays) && listed.includes(pid), `ps lists it with the others (${listed.join(' ')})`);
  t.equal(tsrun(['kill', '--all', id, 'TERM'], { root }).status, 0);
  await until(() => !alive(moved), 'the moved sleep to die of TERM');
  t.notOk(alive(moved), 'kill --all TERM reached it');
  t.equal(tsrun(['kill', '--all', id, 'KILL'], { root }).status, 0);
  await until(() => !alive(pid), 'pid 1 to die');
  t.equal(tsrun(['delete', id], { root }).status, 0);
  t.same(subs.filter((d) => fs.existsSync(d)), [], 'delete removed the cgroups below the container\'s too');
  t.same(subs.map((d) => path.dirname(d)).filter((d) => fs.existsSync(d)), [], 'and the container\'s own');
});

t.test('features: the document, and the runtime does what it says', { skip: needsRoot }, async (t) => {
  const r = tsrun(['features']);
  t.equal(r.status, 0, r.stderr);
  const f = JSON.parse(r.stdout);
  t.equal(f.ociVersionMin, '1.0.0');
  t.match(f.ociVersionMax, /^1\.\d+\.\d+$/);
  t.same(f.hooks, [], 'no hook is run, so none is claimed');
  t.same(f.linux.cgroup, { v1: true, v2: true, systemd: false, systemdUser: false, rdma: false });
  t.equal(f.linux.selinux.enabled, false);
  t.equal(f.linux.apparmor.enabled, fs.existsSync('/sys/module/apparmor/parameters/enabled') && fs.readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').trim() === 'Y');
  const dpkg = spawnSync('dpkg-query', ['-W', '-f', '${Version}', 'libseccomp2'], { encoding: 'utf8' }).stdout;
  t.ok(dpkg.startsWith(f.annotations['io.github.seccomp.libseccomp.version']), `libseccomp ${f.annotations['io.github.seccomp.libseccomp.version']} is the installed ${dpkg}`);
  t.ok(f.linux.capabilities.includes('CAP_SYS_ADMIN') && f.linux.capabilities.includes('CAP_CHECKPOINT_RESTORE'));
  t.notOk(f.linux.namespaces.includes('time'), 'time namespaces are refused, so not claimed');

  // Each claim, put to the runtime: a config at ociVersionMax with every namespace, one mount with each
  // option (propagation and bind ones aside), and a seccomp filter with each action and operator runs.
  const options = (f.mountOptions as string[]).filter((o) => !/bind|shared|slave|private|unbindable|remount/.test(o) && o !== 'ro');
  const spec = testSpec(['sh', '-c', 'grep -c " /m[0-9]* " /proc/self/mountinfo; echo $$'], (s) => {
    s.ociVersion = f.ociVersionMax;
    s.linux!.namespaces = (f.linux.namespaces as string[]).filter((n) => n !== 'user' && n !== 'network').map((type) => ({ type })) as never;
    s.mounts!.push(...options.map((o, i) => ({ destination: `/m${i}`, type: 'tmpfs', source: 'tmpfs', options: [o] })));
    s.linux!.seccomp = {
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ['SCMP_ARCH_X86_64'],
      syscalls: [
        ...(f.linux.seccomp.actions as string[]).filter((a) => a !== 'SCMP_ACT_ALLOW').map((action, i) => ({ names: ['setns'], action, args: [{ index: 0, value: 1000 + i, op: 'SCMP_CMP_EQ' }], errnoRet: action === 'SCMP_ACT_ERRNO' ? 1 : undefined })),
        ...(f.linux.seccomp.operators as string[]).map((op, i) => ({ names: ['unshare'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, args: [{ index: 0, value: op === 'SCMP_CMP_MASKED_EQ' ? 0xff00 : 0x7ff0000 + i, valueTwo: op === 'SCMP_CMP_MASKED_EQ' ? 0x1200 : 0, op }] })),
      ],
    } as never;
  });
  t.doesNotThrow(() => validateSpec(JSON.parse(JSON.stringify(spec))), 'the config validates');
  const bundle = makeBundle(spec);
  t.teardown(() => removeBundle(bundle));
  const run = tsrun(['run', '--bundle', bundle, uniqueId('feat')], { root });
  t.equal(run.status, 0, run.stderr);
  t.equal(run.stdout, `${options.length}\n1\n`, 'every mount is there, and pid 1 in its own namespace');
});
