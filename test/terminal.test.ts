// Terminals: runc's --console-socket protocol (the pty master over a unix
// socket), and -it driven through a real pty: the window size follows the
// user's terminal, ^C reaches the container and not tsrun.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { CLI, makeBundle, needsRoot, PROJECT, removeBundle, removeRootfs, stateRoot, TEST_BASE, testSpec, tsrun, uniqueId, stateEntries } from './helpers';
import { execFileSync } from 'node:child_process';

const root = stateRoot('terminal');
const storage = path.join(TEST_BASE, 'storage', `terminal-${process.pid}`);
const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function eventually(cond: () => boolean, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end && !cond(); ) await sleep(50);
  return cond();
}
t.teardown(() => {
  removeRootfs();
  fs.rmSync(storage, { recursive: true, force: true });
});

// A console-socket receiver as podman's conmon is one: it takes the master and reads it to the end.
const RECEIVER = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
_, fds, _, _ = socket.recv_fds(c, 1, 1)
out = b""
while True:
    try:
        d = os.read(fds[0], 4096)
    except OSError:
        break
    if not d:
        break
    out += d
sys.stdout.write(out.decode())
`;

t.test('create --console-socket sends the pty master, as runc does', { skip: needsRoot || (!have('python3') && 'python3 is not installed') }, async (t) => {
  const bundle = makeBundle(testSpec(['sh', '-c', 'tty; stty size; echo via-console'], (s) => (s.process!.terminal = true)));
  t.teardown(() => removeBundle(bundle));
  const sock = path.join(bundle, 'console.sock');
  const receiver = spawn('python3', ['-c', RECEIVER, sock], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  receiver.stdout.on('data', (d) => (out += d));
  t.ok(await eventually(() => out.startsWith('ready')), 'the receiver listens');
  const id = uniqueId('console');
  const c = tsrun(['create', '--console-socket', sock, '--bundle', bundle, id], { root });
  t.equal(c.status, 0, c.stderr);
  t.equal(tsrun(['start', id], { root }).status, 0);
  await new Promise((r) => receiver.on('exit', r));
  t.match(out, /\/dev\/pts\/0\r\n/, 'the command\'s stdout is a pty of the container\'s own devpts');
  t.match(out, /via-console\r\n/, 'what it wrote came through the master');
  t.equal(tsrun(['delete', '--force', id], { root }).status, 0);

  const noSock = tsrun(['create', '--bundle', bundle, uniqueId('console')], { root });
  t.equal(noSock.status, 125);
  t.match(noSock.stderr, /process.terminal is true but no --console-socket was given/);
  const plain = makeBundle(testSpec(['true']));
  t.teardown(() => removeBundle(plain));
  const extra = tsrun(['create', '--console-socket', sock, '--bundle', plain, uniqueId('console')], { root });
  t.equal(extra.status, 125);
  t.match(extra.stderr, /console-socket|process.terminal is false/);
  t.same(stateEntries(root), [], 'the refused creates left nothing');
});

t.test('-it: the window size follows the user\'s terminal; ^C reaches the container, not tsrun', { skip: needsRoot || (!have('script') && 'script (util-linux) is not installed') }, async (t) => {
  execFileSync(path.join(PROJECT, 'scripts', 'busybox-image.sh'), { env: { ...process.env, TSRUN_STORAGE: storage }, stdio: 'ignore' });
  // The outer terminal starts at 30x90 and becomes 50x120 a moment later (SIGWINCH to tsrun).
  const cmd = `stty rows 30 cols 90; (sleep 2; stty rows 50 cols 120 </dev/tty) & ${process.execPath} ${CLI} --root ${root} --storage ${storage} run --rm -it busybox sh; echo "tsrun-exit=$?"`;
  const s = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  s.stdout.on('data', (d) => (out += d));
  t.ok(await eventually(() => /\/ # /.test(out)), 'the prompt appears');
  s.stdin.write('stty size\r');
  t.ok(await eventually(() => /^30 90\r?$/m.test(out)), 'the container\'s terminal has the user\'s size');
  await sleep(2500);
  s.stdin.write('stty size\r');
  t.ok(await eventually(() => /^50 120\r?$/m.test(out)), 'and follows it when it changes');
  s.stdin.write('sleep 30\r');
  await sleep(700);
  s.stdin.write('\x03');
  await sleep(300);
  s.stdin.write('echo after-sleep-$?\r');
  t.ok(await eventually(() => /after-sleep-130/.test(out)), '^C interrupted the sleep inside the container (status 130), and tsrun carries on');
  s.stdin.write('exit 7\r');
  await new Promise((r) => s.on('exit', r));
  t.match(out, /tsrun-exit=7/, 'exit 7 comes back through tsrun');
});
