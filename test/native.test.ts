// The addon on its own: spawn with plans that need no privilege, and the
// host primitives. Errors come back as (step, errno); EOF means exec worked.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { native } from '../src/native';
import type { Plan } from '../src/plan/compile';
import { launch } from '../src/plan/launch';
import { Op } from '../src/plan/ops';
import { step, type PlanStep } from '../src/plan/step';

function plan(steps: PlanStep[]): Plan {
  return { cloneFlags: 0, twoStage: false, newUserNamespace: false, uidMap: '', gidMap: '', trace: false, steps };
}
const wait = step(Op.SYNC_WAIT, 'wait', 'test');
const ready = step(Op.READY, 'ready', 'test');
const start = step(Op.WAIT_START, 'start', 'test', { n: [-1] });
const exec = (argv: string[]) => step(Op.EXEC, `exec ${argv[0]}`, 'test', { argv, envp: ['PATH=/usr/bin:/bin'] });

t.test('exec succeeds: EOF on the sync socket, then the exit status', async (t) => {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-native-')), 'out');
  const p = await launch(plan([wait, step(Op.CHDIR, 'chdir', 'test', { s: [path.dirname(out)] }), ready, start, exec(['/bin/sh', '-c', 'pwd > out; exit 42'])]));
  const exited = p.exited();
  await p.start();
  const status = await exited;
  p.closePidfd();
  t.same(status, { pid: p.pid, exitCode: 42, signal: null });
  t.equal(fs.readFileSync(out, 'utf8').trim(), path.dirname(out), 'the chdir step ran in the child');
  fs.rmSync(path.dirname(out), { recursive: true });
});

t.test('a failing exec reports its step and ENOENT, exit code 127', async (t) => {
  const p = await launch(plan([wait, ready, start, exec(['/nonexistent/cmd'])]));
  const exited = p.exited();
  await t.rejects(p.start(), { message: /^step 4 \(exec \/nonexistent\/cmd\): cannot run "\/nonexistent\/cmd": ENOENT/, exitCode: 127 });
  const status = await exited;
  p.closePidfd();
  t.equal(status?.exitCode, 127);
});

t.test('a failing step before ready rejects launch, and the child is reaped', async (t) => {
  await t.rejects(launch(plan([wait, step(Op.CHDIR, 'chdir /no/such/dir', 'test', { s: ['/no/such/dir'] }), ready, start, exec(['/bin/true'])])), {
    message: 'step 2 (chdir /no/such/dir): ENOENT (no such file or directory)',
  });
});

t.test('the PATH lookup finds commands before ready, and refuses missing ones', async (t) => {
  const lookup = (cmd: string) => step(Op.LOOKUP_EXEC, `find ${cmd}`, 'test', { s: [cmd, '/nope:/usr/bin:/bin'] });
  const ok = await launch(plan([wait, lookup('true'), ready, start, exec(['true'])]));
  const exited = ok.exited();
  await ok.start();
  t.equal((await exited)?.exitCode, 0);
  ok.closePidfd();
  await t.rejects(launch(plan([wait, lookup('no-such-command-here'), ready, start, exec(['no-such-command-here'])])), {
    message: /cannot run "no-such-command-here" in PATH=\/nope:\/usr\/bin:\/bin: ENOENT/,
    exitCode: 127,
  });
  await t.rejects(launch(plan([wait, lookup('/etc/passwd'), ready, start, exec(['/etc/passwd'])])), { message: /EACCES/, exitCode: 126 });
});

t.test('signals reach the child through its pidfd', async (t) => {
  const p = await launch(plan([wait, ready, start, exec(['/bin/sleep', '30'])]));
  const exited = p.exited();
  await p.start();
  p.signal(15);
  t.same(await exited, { pid: p.pid, exitCode: null, signal: 15 });
  p.closePidfd();
});

t.test('host primitives: mkfifo, xattrs, flock, errors with errno and path', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-native-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  native().mkfifo(path.join(dir, 'fifo'), 0o600);
  t.ok(fs.statSync(path.join(dir, 'fifo')).isFIFO());
  const f = path.join(dir, 'file');
  fs.writeFileSync(f, '');
  native().lsetxattr(f, 'user.tsrun', Buffer.from('yes'), 0);
  t.equal(native().lgetxattr(f, 'user.tsrun')?.toString(), 'yes');
  t.equal(native().lgetxattr(f, 'user.absent'), null);
  const fd = fs.openSync(f, 'r');
  const fd2 = fs.openSync(f, 'r');
  t.equal(native().flock(fd, 2 | 4), true);
  t.equal(native().flock(fd2, 2 | 4), false, 'a second exclusive lock is refused');
  fs.closeSync(fd);
  fs.closeSync(fd2);
  t.throws(() => native().mkfifo(path.join(dir, 'fifo'), 0o600), { syscall: 'mkfifo', code: 'EEXIST', path: path.join(dir, 'fifo') });
  t.throws(() => native().pidfdOpen(2 ** 22 + 1), { syscall: 'pidfd_open', code: 'ESRCH' });
});
