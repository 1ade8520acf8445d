// Health checks as Docker runs them, with no daemon: a detached container's
// monitor starts each probe on schedule; what the probe sees is the
// container (its files, environment); the results show in inspect's
// State.Health, in ps, in events; an image's HEALTHCHECK applies unless
// --no-healthcheck; a foreground run probes too.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { busyboxImage, CLI, monitorsFor, needsRoot, stateRoot, TEST_BASE, tsrun } from './helpers';

const root = stateRoot('health');
const storage = path.join(TEST_BASE, 'storage', `health-${process.pid}`);
const ts = (args: string[], timeout?: number) => tsrun(['--storage', storage, ...args], { root, timeout });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function eventually(cond: () => boolean, ms = 15_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end && !cond(); ) await sleep(100);
  return cond();
}
interface Health {
  Status: string;
  FailingStreak: number;
  Log: { Start: string; End: string; ExitCode: number; Output: string }[];
}
const inspect = (ref: string) => {
  const r = ts(['inspect', ref]);
  return r.status === 0 ? JSON.parse(r.stdout)[0] : undefined;
};
const health = (ref: string): Health | undefined => inspect(ref)?.State?.Health;
const psStatus = (name: string) => ts(['ps', '-a', '--filter', `name=${name}`, '--format', 'json']).stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { Names: string; Status: string }).find((r) => r.Names === name)?.Status ?? '';

t.before(() => {
  if (!needsRoot) busyboxImage(storage);
});
t.teardown(() => {
  if (needsRoot) return;
  for (const id of fs.existsSync(path.join(storage, 'containers')) ? fs.readdirSync(path.join(storage, 'containers')) : []) ts(['rm', '-f', id]);
  fs.rmSync(storage, { recursive: true, force: true });
  fs.rmSync(root, { recursive: true, force: true });
});

t.test('run -d --health-cmd: starting, unhealthy after the retries, healthy once the probe passes; ps and inspect show it', { skip: needsRoot }, async (t) => {
  const r = ts(['run', '-d', '--init', '--name', 'hc-flip', '-e', 'WANT=/tmp/ok', '--health-cmd', 'test -e "$WANT" && echo ready', '--health-interval', '1s', '--health-retries', '2', 'busybox', 'sleep', '600']);
  t.equal(r.status, 0, r.stderr);
  t.teardown(() => ts(['rm', '-f', 'hc-flip']));
  const cfg = inspect('hc-flip').Config.Healthcheck;
  t.same(cfg, { Test: ['CMD-SHELL', 'test -e "$WANT" && echo ready'], Interval: 1e9, Retries: 2 }, 'Config.Healthcheck in Docker\'s form (nanoseconds)');
  t.equal(health('hc-flip')?.Status, 'starting', 'fewer failures than the retries so far: starting');
  t.match(psStatus('hc-flip'), /^Up .* \(health: starting\)$/);

  t.ok(await eventually(() => health('hc-flip')?.Status === 'unhealthy'), 'two failures in a row: unhealthy');
  const bad = health('hc-flip')!;
  t.ok(bad.FailingStreak >= 2, `the failing streak counts (${bad.FailingStreak})`);
  t.equal(bad.Log[bad.Log.length - 1].ExitCode, 1, 'the probe\'s exit status is recorded');
  t.match(psStatus('hc-flip'), /\(unhealthy\)$/);
  t.ok(ts(['ps', '--filter', 'health=unhealthy', '-q']).stdout.trim().length > 0, 'ps --filter health=unhealthy lists it');

  // What the probe sees is the container: its environment ($WANT) and its files.
  t.equal(ts(['exec', 'hc-flip', 'touch', '/tmp/ok']).status, 0);
  t.ok(await eventually(() => health('hc-flip')?.Status === 'healthy'), 'the file exists inside: healthy');
  const good = health('hc-flip')!;
  t.equal(good.FailingStreak, 0, 'a pass ends the streak');
  t.equal(good.Log[good.Log.length - 1].Output, 'ready\n', 'the probe\'s output is kept');
  t.ok(good.Log.length <= 5, 'at most five results are kept');
  t.match(psStatus('hc-flip'), /^Up .* \(healthy\)$/);

  // healthcheck run: a probe now, its verdict as the exit status.
  t.equal(ts(['healthcheck', 'run', 'hc-flip']).status, 0, 'healthcheck run: 0 while the probe passes');
  ts(['exec', 'hc-flip', 'rm', '/tmp/ok']);
  const now = ts(['healthcheck', 'run', 'hc-flip']);
  t.equal(now.status, 1, 'healthcheck run: 1 when it fails');
  t.equal(ts(['exec', 'hc-flip', 'touch', '/tmp/ok']).status, 0);
  t.ok(await eventually(() => health('hc-flip')?.Status === 'healthy'));
  t.equal(ts(['stop', '-t', '1', 'hc-flip']).status, 0);
  t.equal(health('hc-flip')?.Status, 'unhealthy', 'a stopped container is not healthy, whatever its last probe said (Docker\'s rule)');
});

t.test('a probe past its timeout is killed and counts as a failure; events report each change of health', { skip: needsRoot }, async (t) => {
  const r = ts(['run', '-d', '--init', '--name', 'hc-slow', '--health-cmd', 'if [ -e /tmp/fast ]; then exit 0; fi; sleep 30', '--health-timeout', '300ms', '--health-interval', '400ms', '--health-retries', '1', 'busybox', 'sleep', '600']);
  t.equal(r.status, 0, r.stderr);
  t.teardown(() => ts(['rm', '-f', 'hc-slow']));
  t.ok(await eventually(() => health('hc-slow')?.Status === 'unhealthy'), 'one timed-out probe with retries 1: unhealthy');
  const last = health('hc-slow')!.Log.at(-1)!;
  t.equal(last.ExitCode, -1, 'a timeout is exit code -1, as Docker records it');
  t.match(last.Output, /Health check exceeded timeout \(0\.3s\)/);
  t.ok(Date.parse(last.End) - Date.parse(last.Start) < 5000, 'the probe was ended at its timeout, not after its 30 s sleep');

  // events reports changes from when it starts watching.
  const events = spawn(process.execPath, [CLI, '--root', root, '--storage', storage, 'events', 'hc-slow'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let lines = '';
  events.stdout.on('data', (b) => (lines += b));
  t.teardown(() => events.kill());
  await sleep(2000);
  ts(['exec', 'hc-slow', 'touch', '/tmp/fast']);
  t.ok(await eventually(() => health('hc-slow')?.Status === 'healthy'), 'healthy once it answers in time');
  t.notMatch(ts(['top', 'hc-slow']).stdout, /sleep 30/, 'nothing of the killed probes is left running in the container');
  ts(['exec', 'hc-slow', 'rm', '/tmp/fast']);
  t.ok(await eventually(() => health('hc-slow')?.Status === 'unhealthy'), 'unhealthy again');
  t.ok(await eventually(() => /"health_status".*"unhealthy"/.test(lines)), 'events: health_status unhealthy');
  const statuses = lines.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((e) => e.type === 'health_status').map((e) => e.status);
  t.same(statuses, ['healthy', 'unhealthy'], 'one health_status event per change, in order');
});

t.test('however short the interval, the next probe waits at least as long as the last one took', { skip: needsRoot }, async (t) => {
  // Each probe is a tsrun process on the host: an image's 1 ms interval must not keep a CPU busy.
  const r = ts(['run', '-d', '--init', '--name', 'hc-busy', '--health-cmd', 'sleep 0.5', '--health-interval', '1ms', 'busybox', 'sleep', '600']);
  t.equal(r.status, 0, r.stderr);
  t.teardown(() => ts(['rm', '-f', 'hc-busy']));
  t.ok(await eventually(() => (health('hc-busy')?.Log.length ?? 0) >= 4), 'probes keep coming');
  const log = health('hc-busy')!.Log.map((e) => ({ start: Date.parse(e.Start), end: Date.parse(e.End) }));
  for (let i = 1; i < log.length; i++) {
    const took = log[i - 1].end - log[i - 1].start;
    const gap = log[i].start - log[i - 1].end;
    t.ok(took >= 500 && gap >= 0.9 * took, `probe ${i + 1} started ${gap} ms after probe ${i} ended, which took ${took} ms`);
  }
});

t.test('the start period: failures there do not count until a probe passes; probes then come every start interval', { skip: needsRoot }, async (t) => {
  const r = ts(['run', '-d', '--init', '--name', 'hc-start', '--health-cmd', 'test -e /tmp/ok', '--health-interval', '1h', '--health-start-period', '1h', '--health-start-interval', '200ms', '--health-retries', '1', 'busybox', 'sleep', '600']);
  t.equal(r.status, 0, r.stderr);
  t.teardown(() => ts(['rm', '-f', 'hc-start']));
  t.ok(await eventually(() => (health('hc-start')?.Log.length ?? 0) >= 3), 'probes every start interval (the interval is an hour)');
  const h = health('hc-start')!;
  t.equal(h.Status, 'starting', 'failures in the start period leave it starting, even with retries 1');
  t.equal(h.FailingStreak, 0, 'and are not counted');
  ts(['exec', 'hc-start', 'touch', '/tmp/ok']);
  t.ok(await eventually(() => health('hc-start')?.Status === 'healthy'), 'healthy at the next start-interval probe');
});

t.test("an image's HEALTHCHECK applies; flags replace its fields; --no-healthcheck removes it; a restart starts over", { skip: needsRoot }, async (t) => {
  const ctx = fs.mkdtempSync(path.join(TEST_BASE, 'health-build-'));
  t.teardown(() => fs.rmSync(ctx, { recursive: true, force: true }));
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM busybox\nHEALTHCHECK --interval=250ms --retries=1 CMD ["cat", "/etc/healthy"]\nRUN echo image-ok > /etc/healthy\n');
  const b = ts(['build', '-q', '--network', 'none', '-t', 'hc-image', ctx], 120_000);
  t.equal(b.status, 0, b.stderr);
  t.teardown(() => ts(['rmi', 'hc-image']));

  t.equal(ts(['run', '-d', '--init', '--name', 'hc-img', 'hc-image', 'sleep', '600']).status, 0);
  t.teardown(() => ts(['rm', '-f', 'hc-img']));
  t.same(inspect('hc-img').Config.Healthcheck.Test, ['CMD', 'cat', '/etc/healthy'], 'the image\'s test');
  t.notOk(inspect('hc-img').Config.Shell, 'no SHELL in the image: none in the config');
  t.ok(await eventually(() => health('hc-img')?.Status === 'healthy'), 'the image\'s check runs and passes');
  t.equal(health('hc-img')!.Log.at(-1)!.Output, 'image-ok\n');

  // A restart is a new run: its health starts over.
  t.equal(ts(['exec', 'hc-img', 'rm', '/etc/healthy']).status, 0);
  t.ok(await eventually(() => health('hc-img')?.Status === 'unhealthy'), 'unhealthy once the file is gone (retries 1)');
  t.equal(ts(['restart', '-t', '1', 'hc-img']).status, 0);
  // The file stays deleted in the writable layer: the new run's probes fail, and only they are listed.
  const after = health('hc-img')!;
  t.ok(after.Log.every((l) => l.ExitCode !== 0 && Date.parse(l.Start) >= Date.parse(inspect('hc-img').State.StartedAt)), 'a restart starts over: none of the old run\'s results');

  t.equal(ts(['run', '-d', '--name', 'hc-over', '--health-retries', '7', 'hc-image', 'sleep', '600']).status, 0);
  t.teardown(() => ts(['rm', '-f', 'hc-over']));
  t.same(inspect('hc-over').Config.Healthcheck, { Test: ['CMD', 'cat', '/etc/healthy'], Interval: 250e6, Retries: 7 }, 'a flag replaces one field of the image\'s check');

  // An image's check is input like a flag: one that would probe without pause is refused.
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM busybox\nHEALTHCHECK --interval=1ns CMD true\n');
  t.equal(ts(['build', '-q', '--network', 'none', '-t', 'hc-fast', ctx], 120_000).status, 0);
  t.teardown(() => ts(['rmi', 'hc-fast']));
  const fast = ts(['run', '-d', 'hc-fast', 'sleep', '600']);
  t.equal(fast.status, 125);
  t.match(fast.stderr, /the image's HEALTHCHECK Interval is 1 ns: a duration must be 0 \(the default\) or at least 1ms/);

  t.equal(ts(['run', '-d', '--name', 'hc-none', '--no-healthcheck', 'hc-image', 'sleep', '600']).status, 0);
  t.teardown(() => ts(['rm', '-f', 'hc-none']));
  t.notOk(inspect('hc-none').Config.Healthcheck, '--no-healthcheck: no check in the config');
  t.notOk(inspect('hc-none').State.Health, 'and no health in the state');
  t.match(psStatus('hc-none'), /^Up [^(]*$/, 'ps shows no health');
  const id = inspect('hc-none').Id;
  const mine = monitorsFor(storage).map((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')).filter((c) => c.includes(id));
  t.equal(mine.length, 1, 'its monitor');
  t.notMatch(mine[0], /healthcheck/, 'is given no probe to start');
});

t.test("a CMD-SHELL check runs in the image's SHELL", { skip: needsRoot }, async (t) => {
  const ctx = fs.mkdtempSync(path.join(TEST_BASE, 'health-shell-'));
  t.teardown(() => fs.rmSync(ctx, { recursive: true, force: true }));
  // Only this shell sets VIA: under /bin/sh -c the check would fail.
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM busybox\nSHELL ["/bin/busybox", "env", "VIA=image-shell", "sh", "-c"]\nHEALTHCHECK --interval=250ms --retries=1 CMD test "$VIA" = image-shell && echo "$VIA"\n');
  const b = ts(['build', '-q', '--network', 'none', '-t', 'hc-shell', ctx], 120_000);
  t.equal(b.status, 0, b.stderr);
  t.teardown(() => ts(['rmi', 'hc-shell']));
  t.equal(ts(['run', '-d', '--init', '--name', 'hc-sh', 'hc-shell', 'sleep', '600']).status, 0);
  t.teardown(() => ts(['rm', '-f', 'hc-sh']));
  t.same(inspect('hc-sh').Config.Shell, ['/bin/busybox', 'env', 'VIA=image-shell', 'sh', '-c'], 'Config.Shell is the image\'s');
  t.equal(inspect('hc-sh').Config.Healthcheck.Test[0], 'CMD-SHELL');
  t.ok(await eventually(() => health('hc-sh')?.Status === 'healthy'), 'the check passed: it ran in that shell');
  t.equal(health('hc-sh')!.Log.at(-1)!.Output, 'image-shell\n');
  // --health-cmd is CMD-SHELL too, and runs in the same shell.
  t.equal(ts(['run', '-d', '--init', '--name', 'hc-sh2', '--health-cmd', 'echo "[$VIA]"', '--health-interval', '250ms', 'hc-shell', 'sleep', '600']).status, 0);
  t.teardown(() => ts(['rm', '-f', 'hc-sh2']));
  t.ok(await eventually(() => health('hc-sh2')?.Log.at(-1)?.Output === '[image-shell]\n'), '--health-cmd through the image\'s shell');
});

t.test('a foreground run probes too', { skip: needsRoot }, async (t) => {
  const fg = spawn(process.execPath, [CLI, '--root', root, '--storage', storage, 'run', '--rm', '--name', 'hc-fg', '--health-cmd', 'true', '--health-interval', '200ms', 'busybox', 'sleep', '4'], { stdio: 'ignore' });
  const ended = new Promise((r) => fg.on('exit', r));
  t.ok(await eventually(() => health('hc-fg')?.Status === 'healthy', 3500), 'healthy while the run holds it');
  t.match(psStatus('hc-fg'), /\(healthy\)$/);
  await ended;
  t.notOk(fs.existsSync(path.join(storage, 'names', 'hc-fg')), '--rm removed it after');
});

t.test('bad health options: one clear line each, nothing made', { skip: needsRoot }, async (t) => {
  const before = fs.readdirSync(path.join(storage, 'containers')).length;
  for (const [flags, msg] of [
    [['--health-interval', '1s'], /needs a health check: give --health-cmd/],
    [['--health-cmd', 'true', '--health-interval', 'soon'], /--health-interval soon: not a duration/],
    [['--health-cmd', 'true', '--health-timeout', '10us'], /--health-timeout 10us: must be at least 1ms/],
    [['--health-cmd', 'true', '--health-retries', 'x'], /--health-retries x: expected a whole number/],
    [['--no-healthcheck', '--health-cmd', 'true'], /--no-healthcheck conflicts with the other health options/],
  ] as const) {
    const r = ts(['run', '-d', ...flags, 'busybox', 'true']);
    t.equal(r.status, 125, `${flags.join(' ')}: exit 125`);
    t.match(r.stderr, msg);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
  t.equal(fs.readdirSync(path.join(storage, 'containers')).length, before, 'no container left behind');
  const none = ts(['run', '-d', '--name', 'hc-plain', 'busybox', 'sleep', '600']);
  t.teardown(() => ts(['rm', '-f', 'hc-plain']));
  const r = ts(['healthcheck', 'run', 'hc-plain']);
  t.equal(none.status, 0);
  t.not(r.status, 0);
  t.match(r.stderr, /the container has no health check/);
});
