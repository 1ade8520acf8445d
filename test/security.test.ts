// What a hostile image or bundle must not get: the host's node binary through
// /proc/self/exe, the host's session keyring, root through an id that wraps.
// Each case was reproduced against the runtime before its fix.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { busyboxImage, busyboxRootfs, CLI, makeBundle, needsRoot, removeBundle, removeRootfs, stateRoot, TEST_BASE, testSpec, tsrun, uniqueId } from './helpers';
import { makeLayout, makeTar } from './images';
import { probe, removeProbe } from './probe';

const root = stateRoot('security');
const storage = path.join(TEST_BASE, 'storage', `security-${process.pid}`);
const work = path.join(TEST_BASE, `security-${process.pid}`);
const ts = (args: string[], timeout?: number) => tsrun(['--storage', storage, ...args], { root, timeout });

t.before(() => {
  if (needsRoot) return;
  fs.mkdirSync(work, { recursive: true });
  busyboxImage(storage);
});
t.teardown(() => {
  fs.rmSync(storage, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
  fs.rmSync(path.join(TEST_BASE, 'layouts'), { recursive: true, force: true });
  removeProbe();
  removeRootfs();
});

/**
 * A script the kernel runs with /proc/self/exe as its interpreter. If that
 * is the host's node, node runs the script as JavaScript (the "#!" line is
 * a comment to it) and says so; the image carries node's shared libraries,
 * as an attacker's would, so the host's binary can start inside.
 */
const EVIL = '#!/proc/self/exe\nconsole.log("HOST NODE RAN " + process.execPath);\n';

function nodeLibraries(dir: string) {
  for (const lib of execFileSync('ldd', [process.execPath], { encoding: 'utf8' }).match(/\/\S+/g) ?? []) {
    fs.mkdirSync(path.join(dir, path.dirname(lib)), { recursive: true });
    fs.copyFileSync(fs.realpathSync(lib), path.join(dir, lib));
  }
}

function assertRefused(t: Tap.Test, r: { status: number | null; stdout: string; stderr: string }, what: string) {
  t.notMatch(r.stdout + r.stderr, /HOST NODE RAN/, `${what}: the host's node never ran in the container`);
  t.equal(r.status, 126, `${what}: the command could not be invoked`);
  t.match(r.stderr, /tsrun-exec: this program only starts a container's command; it was run as "\/proc\/self\/exe"/, `${what}: /proc/self/exe reached the sealed exec helper`);
}

t.test('CVE-2019-5736: /proc/self/exe at the container\'s execve is never the host\'s node', { skip: needsRoot }, async (t) => {
  const libs = path.join(work, 'libs');
  nodeLibraries(libs);
  fs.writeFileSync(path.join(libs, 'evil.sh'), EVIL, { mode: 0o755 });
  const base = execFileSync('tar', ['-C', busyboxRootfs(), '--numeric-owner', '-c', '.'], { maxBuffer: 64 << 20 });
  const evilLayer = execFileSync('tar', ['-C', libs, '--numeric-owner', '-c', '.'], { maxBuffer: 256 << 20 });
  const evil = `oci:${makeLayout('evil', 'v1', [base, evilLayer], { Entrypoint: ['/evil.sh'] })}:v1`;

  assertRefused(t, ts(['run', '--rm', evil]), 'run');

  // create and start (runc's path), from a bundle holding the same files.
  const bundleRoot = path.join(work, 'bundle-rootfs');
  fs.mkdirSync(bundleRoot);
  execFileSync('cp', ['-a', `${busyboxRootfs()}/.`, bundleRoot]);
  execFileSync('cp', ['-a', `${libs}/.`, bundleRoot]);
  const bundle = makeBundle(testSpec(['/evil.sh'], (s) => (s.root!.path = bundleRoot)));
  t.teardown(() => removeBundle(bundle));
  const id = uniqueId('evil');
  const created = tsrun(['create', '--bundle', bundle, id], { root });
  t.equal(created.status, 0, created.stderr);
  tsrun(['start', id], { root });
  for (let i = 0; i < 200 && JSON.parse(tsrun(['state', id], { root }).stdout).status !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 25));
  t.notMatch(created.stdout + created.stderr, /HOST NODE RAN/, 'create/start: the host\'s node never ran');
  t.equal(tsrun(['delete', id], { root }).status, 0);
  assertRefused(t, tsrun(['run', '--bundle', bundle, uniqueId('evil')], { root }), 'run --bundle');

  // exec into a running container.
  const r = ts(['run', '-d', '--name', 'evil-exec', '--entrypoint', '/bin/sleep', evil, '60']);
  t.equal(r.status, 0, r.stderr);
  assertRefused(t, ts(['exec', 'evil-exec', '/evil.sh']), 'exec');
  t.equal(ts(['rm', '-f', 'evil-exec']).status, 0);
});

t.test('exec: no copy of the host\'s node ever appears in the container, even to one with CAP_SYS_PTRACE', { skip: needsRoot }, async (t) => {
  // The runtime's process joins the container's namespaces but stays outside
  // its PID namespace; tsrun-exec forks the command into it. A watcher with
  // CAP_SYS_PTRACE (which would let it open any process's exe) looks at every
  // process while execs come and go.
  const node = fs.statSync(process.execPath);
  let r = ts(['run', '-d', '--name', 'watcher', '--cap-add', 'SYS_PTRACE', '-v', `${probe()}:/probe:ro`, 'busybox', '/probe', 'watch-exe', String(node.dev), String(node.ino), '60000', '/tmp/stop']);
  t.equal(r.status, 0, r.stderr);
  let execs = 0;
  const failures: string[] = [];
  for (let i = 0; i < 12; i++) {
    const e = ts(['exec', 'watcher', 'true']);
    if (e.status === 0) execs++;
    else failures.push(e.stderr);
  }
  t.equal(execs, 12, `the execs ran ${failures.join('; ')}`);
  t.equal(ts(['exec', 'watcher', 'touch', '/tmp/stop']).status, 0);
  t.equal(ts(['wait', 'watcher']).stdout.trim(), '0');
  r = ts(['logs', 'watcher']);
  const m = /^never \(looked at (\d+) processes\)$/.exec(r.stdout.trim());
  t.ok(m, `the watcher never saw the host's node: ${r.stdout.trim()}`);
  t.ok(m && Number(m[1]) >= 1, 'and it did see the exec\'d processes');
  t.equal(ts(['rm', 'watcher']).status, 0);
});

t.test('the exec helper is a sealed memfd: no one can write to it', { skip: needsRoot }, async (t) => {
  // A process of this test's own, started through launch(): the addon makes
  // the memfd in this process, where the test can look at it.
  const { launch } = await import('../src/plan/launch');
  const { Op } = await import('../src/plan/ops');
  const { step } = await import('../src/plan/step');
  const steps = [step(Op.SYNC_WAIT, 'wait', ''), step(Op.READY, 'ready', ''), step(Op.WAIT_START, 'start', '', { n: [-1] }), step(Op.EXEC, 'exec', '', { argv: ['/bin/true'], envp: [] })];
  const child = await launch({ cloneFlags: 0, twoStage: false, newUserNamespace: false, uidMap: '', gidMap: '', trace: false, steps });
  const exited = child.exited();
  await child.start();
  t.match(await exited, { exitCode: 0 }, 'the helper ran /bin/true');
  child.closePidfd();
  const memfds = fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith('/memfd:tsrun-exec');
    } catch {
      return false;
    }
  });
  t.equal(memfds.length, 1, 'one memfd holds the helper');
  const file = `/proc/self/fd/${memfds[0]}`;
  t.equal(fs.statSync(file).mode & 0o7777, 0o555, 'read and execute only');
  t.throws(() => fs.writeFileSync(file, 'x'), { code: 'EPERM' }, 'writes are refused by the seal, even to root');
  t.throws(() => fs.truncateSync(file, 0), { code: 'EPERM' }, 'so is shrinking it');
  t.equal(fs.readFileSync(file).subarray(0, 4).toString('latin1'), '\x7fELF', 'it is the helper program');
});

t.test('--init: /proc/1/exe is a read-only host file', { skip: needsRoot }, async (t) => {
  const r = ts(['run', '--rm', '--init', '-v', `${probe()}:/probe:ro`, 'busybox', '/probe', 'open-write', '/proc/1/exe']);
  t.equal(r.status, 1, r.stderr);
  t.match(r.stdout, /^(EROFS|ETXTBSY)\n$/, 'tsrun-init cannot be opened for writing');
});

t.test('each container has a session keyring of its own, not the host\'s', { skip: needsRoot }, async (t) => {
  // tsrun started in a session keyring that holds a secret: host root's keys.
  const name = `tsrun-test-secret-${process.pid}`;
  const inSession = (args: string[]) => spawnSync(probe(), ['session-key', name, process.execPath, CLI, '--root', root, '--storage', storage, ...args], { encoding: 'utf8', timeout: 60_000 });
  t.equal(spawnSync(probe(), ['session-key', name, probe(), 'key-search', name], { encoding: 'utf8' }).stdout, 'ok\n', 'a process in that session finds the secret');
  const v = ['-v', `${probe()}:/probe:ro`, '--security-opt', 'seccomp=unconfined'];
  let r = inSession(['run', '--rm', ...v, 'busybox', 'sh', '-c', `/probe key-search ${name}; /probe keyring`]);
  t.equal(r.status, 0, r.stderr);
  const [search, keyring] = r.stdout.trim().split('\n');
  t.equal(search, 'ENOKEY', 'the container cannot find the runtime\'s key');
  t.match(keyring, /^keyring;0;0;[0-9a-f]+;[0-9a-f]{64}$/, 'its session keyring is its own, named after the container');

  // exec joins the container's keyring, not the caller's.
  r = ts(['run', '-d', '--name', 'keys2', ...v, 'busybox', 'sleep', '60']);
  t.equal(r.status, 0, r.stderr);
  const cid = r.stdout.trim();
  r = inSession(['exec', 'keys2', 'sh', '-c', `/probe key-search ${name}; /probe keyring`]);
  t.match(r.stdout, new RegExp(`^ENOKEY\\nkeyring;0;0;[0-9a-f]+;${cid}\\n$`), 'exec is in the container\'s keyring');
  t.equal(ts(['rm', '-f', 'keys2']).status, 0);

  // A bundle's container too (runc's create path), named by its id.
  const bundle = makeBundle(testSpec(['/probe', 'keyring'], (s) => s.mounts!.push({ destination: '/probe', type: 'bind', source: probe(), options: ['bind', 'ro'] })));
  t.teardown(() => removeBundle(bundle));
  const bid = uniqueId('keys');
  r = spawnSync(probe(), ['session-key', name, process.execPath, CLI, '--root', root, 'run', '--bundle', bundle, bid], { encoding: 'utf8' });
  t.match(r.stdout, new RegExp(`^keyring;0;0;[0-9a-f]+;${bid}\\n$`));
});

t.test('user and group ids past 2^31-1 are refused, never wrapped to root', { skip: needsRoot }, async (t) => {
  for (const u of ['4294967296', '4294967295', '2147483648', '0:4294967296']) {
    const r = ts(['run', '--rm', '-u', u, 'busybox', 'id']);
    t.equal(r.status, 125, `-u ${u}`);
    t.equal(r.stdout, '', `-u ${u}: nothing ran`);
    t.match(r.stderr, /^tsrun: (uid|gid) \d+ is out of range: ids go from 0 to 2147483647\n$/, `-u ${u}`);
  }
  t.equal(ts(['run', '--rm', '-u', '2147483647', 'busybox', 'id', '-u']).stdout, '2147483647\n', 'the largest id is fine');

  // An image's own /etc/passwd naming a user with a wrapping uid.
  const base = execFileSync('tar', ['-C', busyboxRootfs(), '--numeric-owner', '-c', '.'], { maxBuffer: 64 << 20 });
  const layout = makeLayout('wrap', 'v1', [base, await makeTar([{ name: 'etc/passwd', data: 'root:x:0:0::/root:/bin/sh\nevil:x:4294967296:0::/:/bin/sh\n' }])], { User: 'evil', Cmd: ['id'] });
  let r = ts(['run', '--rm', `oci:${layout}:v1`]);
  t.equal(r.status, 125);
  t.match(r.stderr, /^tsrun: uid of user evil 4294967296 is out of range/);

  // A bundle's process.user.
  for (const [field, edit] of [
    ['uid', (s: import('../src/spec/types').Spec) => (s.process!.user.uid = 4294967295)],
    ['gid', (s: import('../src/spec/types').Spec) => (s.process!.user.gid = 4294967296)],
    ['additionalGids', (s: import('../src/spec/types').Spec) => (s.process!.user.additionalGids = [4294967296])],
  ] as const) {
    const bundle = makeBundle(testSpec(['id'], edit));
    r = tsrun(['run', '--bundle', bundle, uniqueId('wrap')], { root });
    removeBundle(bundle);
    t.equal(r.status, 125, field);
    t.match(r.stderr, new RegExp(`^tsrun: invalid config: process\\.user\\.${field}: must be`), field);
  }
  const maps = makeBundle(testSpec(['id'], (s) => {
    s.linux!.namespaces!.push({ type: 'user' });
    s.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 2 ** 32 }];
    s.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
  }));
  r = tsrun(['run', '--bundle', maps, uniqueId('wrap')], { root });
  removeBundle(maps);
  t.equal(r.status, 125);
  t.match(r.stderr, /invalid config: linux\.uidMappings\[0\]: maps container ids up to 4294967295, past 2147483647/);
});
