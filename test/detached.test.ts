// Containers that outlive the command: run -d under the native monitor,
// and Docker's verbs over them (ps, logs, exec, stop, start, restart, kill,
// rm, wait, inspect, top, rename), each checked from inside the container
// or against its live processes.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { CLI, monitorsFor, needsRoot, PROJECT, stateRoot, TEST_BASE, tsrun, stateEntries } from './helpers';

const ALPINE = path.resolve(__dirname, '..', '..', 'shared', 'images', 'alpine-minirootfs-3.20.3-x86_64.tar.gz');
const root = stateRoot('detached');
const storage = path.join(TEST_BASE, 'storage', `detached-${process.pid}`);
const ts = (args: string[], timeout?: number) => tsrun(['--storage', storage, ...args], { root, timeout });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function eventually(cond: () => boolean, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end && !cond(); ) await sleep(50);
  return cond();
}
const inspect = (ref: string) => JSON.parse(ts(['inspect', ref]).stdout)[0];
const alive = (pid: number) => {
  try {
    return !fs.readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
};
/** Monitors of this file's containers (their command lines name our storage). */
const monitors = () => monitorsFor(storage);
/** Nothing of the container is left: its directory, name, runtime state, cgroups. */
type Asserts = { notOk(v: unknown, m?: string): unknown; same(a: unknown, b: unknown, m?: string): unknown };
function gone(t: Asserts, id: string, name: string) {
  t.notOk(fs.existsSync(path.join(storage, 'containers', id)), 'no container directory');
  t.notOk(fs.existsSync(path.join(storage, 'names', name)), 'the name is free');
  t.notOk(fs.existsSync(path.join(root, id)), 'no runtime state');
  const cg = fs.readdirSync('/sys/fs/cgroup').flatMap((h) => (fs.existsSync(`/sys/fs/cgroup/${h}/tsrun/${id}`) ? [h] : []));
  t.same(cg, [], 'no cgroup directories');
}

let image = 'busybox';
t.before(() => {
  if (needsRoot) return;
  execFileSync(path.join(PROJECT, 'scripts', 'busybox-image.sh'), { env: { ...process.env, TSRUN_STORAGE: storage }, stdio: 'ignore' });
  if (fs.existsSync(ALPINE)) {
    execFileSync(process.execPath, [CLI, '--storage', storage, 'import', ALPINE, 'alpine:3.20.3'], { stdio: 'ignore' });
    image = 'alpine:3.20.3';
  }
});
t.teardown(() => {
  for (const id of fs.existsSync(path.join(storage, 'containers')) ? fs.readdirSync(path.join(storage, 'containers')) : []) ts(['rm', '-f', id]);
  for (const pid of monitors()) process.kill(pid, 'SIGKILL');
  fs.rmSync(storage, { recursive: true, force: true });
});

t.test('a long-running server: run -d, ps, logs -f, exec, stop, rm', { skip: needsRoot }, async (t) => {
  // Alpine's busybox has nc -lk; Debian's (the fallback image) has httpd.
  const alpine = image.startsWith('alpine');
  const server = alpine ? 'nc -lk -s 127.0.0.1 -p 8080 -e echo served-page &' : 'mkdir -p /www && echo served-page > /www/index.html && httpd -p 127.0.0.1:8080 -h /www &&';
  const serve = `${server} i=0; while :; do i=$((i+1)); echo "tick $i"; echo "warn $i" >&2; sleep 0.2; done`;
  const run = ts(['run', '-d', '--name', 'web', '--hostname', 'web1', '-e', 'K=V', image, 'sh', '-c', serve]);
  t.equal(run.status, 0, run.stderr);
  const id = run.stdout.trim();
  t.match(id, /^[0-9a-f]{64}$/, 'run -d prints the id');

  const ps = ts(['ps']).stdout;
  t.match(ps, /^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$/m);
  t.match(ps, new RegExp(`^${id.slice(0, 12)}\\s+${image.replace('.', '\\.')}\\s+.*Up .*\\sweb$`, 'm'), 'ps lists it, running');
  t.equal(ts(['ps', '-q']).stdout, `${id.slice(0, 12)}\n`);
  t.match(JSON.parse(ts(['ps', '--format', 'json']).stdout), { ID: id, Names: 'web', State: 'running' });

  t.equal(ts(['exec', 'web', 'cat', '/etc/hostname']).stdout, 'web1\n', 'exec by name');
  t.match(ts(['exec', id.slice(0, 5), 'env']).stdout, /^K=V$/m, 'exec by id prefix: the container\'s environment');
  const ask = alpine ? ['nc', '127.0.0.1', '8080'] : ['wget', '-qO-', 'http://127.0.0.1:8080/'];
  t.ok(await eventually(() => ts(['exec', 'web', ...ask]).stdout === 'served-page\n'), 'the server answers on the container\'s loopback');
  t.equal(ts(['exec', 'web', 'sh', '-c', 'exit 42']).status, 42, 'exec returns the exit code');
  t.equal(ts(['exec', 'web', 'no-such-command']).status, 127);

  // logs -f streams what it writes; stdout and stderr stay apart.
  const follow = spawn(process.execPath, [CLI, '--root', root, '--storage', storage, 'logs', '-f', 'web'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  follow.stdout.on('data', (d) => (out += d));
  follow.stderr.on('data', (d) => (err += d));
  const seen = (n: number) => new RegExp(`^tick ${n}$`, 'm').test(out);
  t.ok(await eventually(() => seen(3)), 'logs -f shows the first lines');
  const later = Number(/tick (\d+)\n$/.exec(out)?.[1] ?? 0) + 3;
  t.ok(await eventually(() => seen(later)), 'and goes on streaming new ones');
  t.notMatch(out, /warn/, 'no stderr on stdout');
  t.match(err, /^warn 1$/m, 'stderr on stderr');

  t.match(ts(['top', 'web']).stdout, /^UID\s+PID\s+PPID\s+STIME\s+TIME\s+CMD$[\s\S]*(nc -lk|httpd -p)/m, 'top lists the container\'s processes');
  const state = inspect('web');
  t.match(state, { Id: id, Name: '/web', State: { Status: 'running', Running: true, Pid: Number, ExitCode: 0 }, Config: { Hostname: 'web1' } });
  t.ok(alive(state.State.Pid), 'the pid in inspect is alive');

  // sh as pid 1 ignores SIGTERM: stop must fall back to SIGKILL at the timeout.
  const t0 = Date.now();
  t.equal(ts(['stop', '-t', '1', 'web']).status, 0);
  const took = Date.now() - t0;
  t.ok(took >= 900 && took < 6000, `stop took effect within the timeout (${took} ms)`);
  t.notOk(alive(state.State.Pid), 'the process is gone');
  const follower = await new Promise<number | null>((r) => (follow.exitCode !== null ? r(follow.exitCode) : follow.on('exit', r)));
  t.equal(follower, 0, 'logs -f ends when the container stops');
  t.match(inspect('web'), { State: { Status: 'exited', Running: false, ExitCode: 137, FinishedAt: /^\d{4}-/ } });
  t.match(ts(['ps', '-a']).stdout, /Exited \(137\) .* ago\s+web$/m);
  t.equal(ts(['ps', '-q']).stdout, '', 'ps without -a lists no stopped container');
  t.same(monitors(), [], 'its monitor is gone');

  t.equal(ts(['rm', 'web']).status, 0);
  gone(t, id, 'web');
  t.match(ts(['inspect', 'web']).stderr, /no such container: web/);
});

t.test('logs: --tail, -t, --since, partial lines, rotation', { skip: needsRoot }, async (t) => {
  const r = ts(['run', '-d', '--name', 'logger', '--log-opt', 'max-size=2k', 'busybox', 'sh', '-c', 'i=0; while [ $i -lt 100 ]; do i=$((i+1)); echo "line $i of the log"; done; printf "no newline"']);
  t.equal(r.status, 0, r.stderr);
  t.equal(ts(['wait', 'logger']).stdout, '0\n');
  const id = inspect('logger').Id;
  t.ok(fs.existsSync(path.join(storage, 'containers', id, 'container.log.1')), 'the log was rotated at 2k');
  const all = ts(['logs', 'logger']).stdout;
  t.match(all, /line 100 of the log\nno newline$/, 'the last line, without a newline it never had');
  t.equal(ts(['logs', '--tail', '3', 'logger']).stdout, 'line 99 of the log\nline 100 of the log\nno newline');
  t.match(ts(['logs', '--tail', '1', '-t', 'logger']).stdout, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z no newline$/);
  t.equal(ts(['logs', '--since', '2099-01-01T00:00:00Z', 'logger']).stdout, '', '--since in the future: nothing');
  t.match(ts(['logs', '--since', '10m', 'logger']).stdout, /line 100/);
  t.equal(ts(['rm', 'logger']).status, 0);
});

t.test('-t: the monitor holds the terminal and logs it', { skip: needsRoot }, async (t) => {
  t.equal(ts(['run', '-dt', '--name', 'tty1', 'busybox', 'sh', '-c', 'tty; [ -t 1 ] && echo is-a-tty']).status, 0);
  t.equal(ts(['wait', 'tty1']).stdout, '0\n');
  t.equal(ts(['logs', 'tty1']).stdout, '/dev/pts/0\r\nis-a-tty\r\n');
  t.equal(ts(['rm', 'tty1']).status, 0);
});

t.test('-it through a real pty: prompt, a typed command, exit 3, terminal restored', { skip: needsRoot || (spawnSyncOk('script') ? false : 'script (util-linux) is not installed') }, async (t) => {
  const cmd = `${process.execPath} ${CLI} --root ${root} --storage ${storage} run --rm -it busybox sh; rc=$?; stty -a | grep -o -- ' -\\?icanon'; exit $rc`;
  const s = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  s.stdout.on('data', (d) => (out += d));
  t.ok(await eventually(() => /\/ # /.test(out)), 'the shell\'s prompt appears');
  s.stdin.write('echo typed-$((40+2))\r');
  t.ok(await eventually(() => /typed-42/.test(out)), 'a typed command runs');
  s.stdin.write('exit 3\r');
  const code = await new Promise<number | null>((r) => s.on('exit', r));
  t.equal(code, 3, 'exit 3 gives 3');
  t.match(out, / icanon/, 'the terminal is back in canonical mode');
  t.notMatch(out, / -icanon/);
});

function spawnSyncOk(cmd: string) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

t.test('exec -t and -it', { skip: needsRoot || (spawnSyncOk('script') ? false : 'script (util-linux) is not installed') }, async (t) => {
  t.equal(ts(['run', '-d', '--name', 'box', 'busybox', 'sleep', '60']).status, 0);
  t.equal(ts(['exec', '-t', 'box', 'tty']).stdout, '/dev/pts/0\r\n', 'exec -t: a terminal of the container\'s devpts');
  t.equal(ts(['exec', 'box', 'sh', '-c', 'tty || true']).stdout, 'not a tty\n', 'without -t: none');
  const r = spawnSync('script', ['-qec', `${process.execPath} ${CLI} --root ${root} --storage ${storage} exec -it box sh -c 'read x; echo got-$x; exit 5'`, '/dev/null'], { input: 'hello\n', encoding: 'utf8' });
  t.match(r.stdout, /got-hello/, 'exec -it: typed input reaches the command');
  t.equal(r.status, 5, `and its exit code comes back (${JSON.stringify(r.stdout)} ${JSON.stringify(r.stderr)})`);
  t.equal(ts(['rm', '-f', 'box']).status, 0);
});

t.test('--init reaps the zombies the command leaves; without it they stay', { skip: needsRoot }, async (t) => {
  for (const init of [false, true]) {
    const name = init ? 'zinit' : 'znoinit';
    t.equal(ts(['run', '-d', '--name', name, ...(init ? ['--init'] : []), 'busybox', 'sh', '-c', '(sleep 0.2 &); exec sleep 30']).status, 0);
    await sleep(800);
    const ps = ts(['exec', name, 'ps', '-o', 'pid,stat,comm']).stdout;
    if (init) {
      t.match(ps, /^\s+1 S\s+init$/m, 'with --init, pid 1 is the init');
      t.notMatch(ps, / Z /, 'and no zombie remains');
    } else t.match(ps, /^\s+\d+ Z\s+sleep$/m, 'without --init the orphan stays a zombie');
    t.equal(ts(['rm', '-f', name]).status, 0);
  }
  const r = ts(['run', '--rm', '--init', 'busybox', 'sh', '-c', 'exit 9']);
  t.equal(r.status, 9, 'the init exits with the command\'s status');
});

t.test('--restart on-failure:2 restarts exactly twice; wait returns the last status', { skip: needsRoot }, async (t) => {
  t.equal(ts(['run', '-d', '--name', 'flaky', '--restart', 'on-failure:2', 'busybox', 'sh', '-c', 'echo run; exit 7']).status, 0);
  t.equal(ts(['wait', 'flaky'], 60_000).stdout, '7\n');
  t.equal(ts(['logs', 'flaky']).stdout, 'run\nrun\nrun\n', 'three runs: the first and two restarts');
  t.match(inspect('flaky'), { RestartCount: 2, State: { Status: 'exited', ExitCode: 7 }, HostConfig: { RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 2 } } });
  t.equal(ts(['rm', 'flaky']).status, 0);

  // always: restarts after a crash, but not after stop.
  t.equal(ts(['run', '-d', '--name', 'always', '--restart', 'always', 'busybox', 'sh', '-c', 'sleep 0.3; exit 1']).status, 0);
  t.ok(await eventually(() => inspect('always').RestartCount >= 2), 'always restarts again and again');
  t.equal(ts(['stop', '-t', '1', 'always']).status, 0);
  await sleep(500);
  const after = inspect('always');
  t.notOk(after.State.Running, 'stop ends it for good');
  await sleep(700);
  t.equal(inspect('always').RestartCount, after.RestartCount, 'no restart after a stop');
  t.equal(ts(['rm', 'always']).status, 0);
  t.match(ts(['run', '-d', '--rm', '--restart', 'always', 'busybox', 'true']).stderr, /cannot be used together/);
  t.match(ts(['run', '-d', '--restart', 'sometimes', 'busybox', 'true']).stderr, /--restart sometimes/);
});

t.test('start keeps the writable layer; restart; kill -s; rename; --rm detached', { skip: needsRoot }, async (t) => {
  t.equal(ts(['run', '-d', '--name', 'keeper', 'busybox', 'sh', '-c', 'echo $$ >> /runs; trap "exit 0" USR1; while :; do sleep 0.1; done']).status, 0);
  t.ok(await eventually(() => ts(['exec', 'keeper', 'cat', '/runs']).stdout.length > 0));
  t.equal(ts(['kill', '-s', 'USR1', 'keeper']).status, 0);
  t.equal(ts(['wait', 'keeper']).stdout, '0\n', 'kill -s USR1 reached the trap');
  t.equal(ts(['start', 'keeper']).stdout, 'keeper\n');
  t.equal(ts(['exec', 'keeper', 'cat', '/runs']).stdout, '1\n1\n', 'start runs it again on its own files');
  const pid1 = inspect('keeper').State.Pid;
  t.equal(ts(['restart', '-t', '2', 'keeper']).status, 0);
  const pid2 = inspect('keeper').State.Pid;
  t.ok(pid2 !== pid1 && alive(pid2) && !alive(pid1), 'restart: a new process');
  t.equal(ts(['exec', 'keeper', 'cat', '/runs']).stdout, '1\n1\n1\n');
  t.equal(ts(['rename', 'keeper', 'holder']).status, 0);
  t.equal(ts(['exec', 'holder', 'true']).status, 0, 'the new name works');
  t.match(ts(['exec', 'keeper', 'true']).stderr, /no such container: keeper/, 'the old one does not');
  t.equal(ts(['kill', 'holder']).status, 0, 'kill: SIGKILL by default');
  t.equal(ts(['wait', 'holder']).stdout, '137\n');
  t.equal(ts(['rm', 'holder']).status, 0);

  const r = ts(['run', '-d', '--rm', '--name', 'temp', 'busybox', 'sh', '-c', 'sleep 1; exit 4']);
  const id = r.stdout.trim();
  t.equal(ts(['wait', 'temp']).stdout, '4\n', 'wait sees the status of a --rm container');
  t.ok(await eventually(() => !fs.existsSync(path.join(storage, 'containers', id))), '--rm removed it');
  gone(t, id, 'temp');
});

t.test('an exit claimed by a live process is left to it; a claim by a dead or reused pid is not', { skip: needsRoot }, async (t) => {
  // stop, rm -f and compose down claim the exit and clean up themselves; the monitor then runs no container-exited.
  const startTime = (pid: number) => fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[19];
  const exitsOn = (name: string) => {
    const r = ts(['run', '-d', '--network', 'none', '--name', name, 'busybox', 'sh', '-c', 'while [ ! -e /tmp/go ]; do sleep 0.05; done']);
    t.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  };
  const cases = [
    { name: 'claimed', claim: () => `${process.pid} ${startTime(process.pid)}`, cleaned: false },
    { name: 'claim-reused', claim: () => `${process.pid} 1`, cleaned: true },
    { name: 'claim-dead', claim: () => `999999999 ${startTime(process.pid)}`, cleaned: true },
  ];
  for (const c of cases) {
    const id = exitsOn(c.name);
    t.teardown(() => ts(['rm', '-f', c.name]));
    fs.writeFileSync(path.join(storage, 'containers', id, 'exit-claim'), `${c.claim()}\n`);
    t.equal(ts(['exec', c.name, 'touch', '/tmp/go']).status, 0);
    t.ok(await eventually(() => inspect(c.name).State.Status === 'exited'), `${c.name}: exited`);
    // container-exited removes the runtime state; it is there until someone cleans up.
    const cleaned = await eventually(() => !fs.existsSync(path.join(root, id)), 3000);
    t.equal(cleaned, c.cleaned, c.cleaned ? `${c.name}: the monitor cleaned up` : `${c.name}: the monitor left the clean-up to the claimant`);
    t.equal(ts(['rm', '-f', c.name]).status, 0);
    gone(t, id, c.name);
  }
});

t.test('rm refuses a running container without -f; names, prefixes and errors', { skip: needsRoot }, async (t) => {
  const id = ts(['run', '-d', '--name', 'busy', 'busybox', 'sleep', '60']).stdout.trim();
  const r = ts(['rm', 'busy']);
  t.equal(r.status, 125);
  t.match(r.stderr, /it is running; stop it first or use rm -f/);
  t.equal(ts(['rm', '-f', id.slice(0, 8)]).stdout, `${id.slice(0, 8)}\n`, 'rm -f by prefix');
  gone(t, id, 'busy');
  t.match(ts(['stop', 'nothing-here']).stderr, /no such container: nothing-here/);
  t.match(ts(['run', '-d', '--name', 'bad/name', 'busybox', 'true']).stderr, /invalid container name/);
  t.match(ts(['logs', '--tail', 'x', 'y']).stderr, /--tail x/);
  t.match(ts(['ps', '--filter', 'colour=red']).stderr, /--filter colour=red/);
});

t.test('ps filters', { skip: needsRoot }, async (t) => {
  t.equal(ts(['run', '-d', '--name', 'f-run', 'busybox', 'sleep', '60']).status, 0);
  t.equal(ts(['run', '--name', 'f-done', 'busybox', 'true']).status, 0);
  const names = (args: string[]) => ts(['ps', '--format', 'json', ...args]).stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l).Names).sort();
  t.same(names([]), ['f-run']);
  t.same(names(['-a']), ['f-done', 'f-run']);
  t.same(names(['--filter', 'status=exited']), ['f-done']);
  t.same(names(['-a', '--filter', 'name=run']), ['f-run']);
  t.equal(ts(['rm', '-f', 'f-run', 'f-done']).status, 0);
});

t.test('paused containers: stop and rm -f thaw them rather than hang', { skip: needsRoot }, async (t) => {
  t.equal(ts(['run', '-d', '--name', 'frozen1', 'busybox', 'sleep', '60']).status, 0);
  t.equal(ts(['pause', 'frozen1']).status, 0);
  t.match(ts(['ps']).stdout, /\(Paused\)\s+frozen1$/m);
  const stop = ts(['stop', '-t', '1', 'frozen1'], 20_000);
  t.equal(stop.status, 0, `stop of a paused container ends (${stop.stderr.trim()})`);
  t.match(inspect('frozen1').State, { Status: 'exited', ExitCode: 137 });
  t.equal(ts(['rm', 'frozen1']).status, 0);
  const id = ts(['run', '-d', '--name', 'frozen2', 'busybox', 'sleep', '60']).stdout.trim();
  t.equal(ts(['pause', 'frozen2']).status, 0);
  t.equal(ts(['rm', '-f', 'frozen2'], 20_000).status, 0, 'rm -f of a paused container ends');
  gone(t, id, 'frozen2');
});

t.test('run -d whose command cannot be exec\'d: its exit code, and nothing left', { skip: needsRoot }, async (t) => {
  const dir = path.join(TEST_BASE, `badexec-${process.pid}`);
  fs.mkdirSync(dir, { recursive: true });
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // Found by the lookup, refused by execve: an interpreter that does not exist.
  fs.writeFileSync(path.join(dir, 'bad'), '#!/nonexistent\n', { mode: 0o755 });
  for (let i = 0; i < 3; i++) {
    const r = ts(['run', '-d', '--name', 'badexec', '-v', `${dir}:/x`, 'busybox', '/x/bad']);
    t.equal(r.status, 127, r.stderr.trim());
    t.same(fs.readdirSync(path.join(storage, 'containers')), [], 'no container kept');
    t.same(fs.existsSync(path.join(storage, 'names')) ? fs.readdirSync(path.join(storage, 'names')) : [], [], 'the name is free');
    t.same(stateEntries(root), [], 'no runtime state');
  }
});

t.test('run -di: stdin stays open, so a shell waits', { skip: needsRoot }, async (t) => {
  t.equal(ts(['run', '-di', '--name', 'held', 'busybox', 'sh']).status, 0);
  await sleep(500);
  t.match(inspect('held').State, { Status: 'running' }, 'sh did not read EOF');
  t.equal(ts(['run', '-d', '--name', 'unheld', 'busybox', 'sh']).status, 0);
  t.equal(ts(['wait', 'unheld']).stdout, '0\n', 'without -i, sh reads /dev/null and ends');
  t.equal(ts(['rm', '-f', 'held', 'unheld']).status, 0);
});

t.test('rm -f of a container that writes all the time: no error, and the name is free again', { skip: needsRoot }, async (t) => {
  for (let i = 0; i < 4; i++) {
    const id = ts(['run', '-d', '--name', 'chatty', 'busybox', 'sh', '-c', 'while :; do echo hello; done']).stdout.trim();
    await sleep(200);
    const r = ts(['rm', '-f', 'chatty']);
    t.equal(r.status, 0, r.stderr.trim());
    gone(t, id, 'chatty');
  }
});

t.test('a detached container killed by the OOM killer: 137 and OOMKilled', { skip: needsRoot }, async (t) => {
  t.equal(ts(['run', '-d', '--name', 'hog', '--memory', '24m', 'busybox', 'sh', '-c', 'x=a; while :; do x="$x$x"; done']).status, 0);
  t.equal(ts(['wait', 'hog']).stdout, '137\n');
  t.match(inspect('hog').State, { Status: 'exited', ExitCode: 137, OOMKilled: true }, 'the monitor\'s clean-up recorded the OOM kill');
  t.equal(ts(['rm', 'hog']).status, 0);
});

t.test('stop sends the image\'s StopSignal; inspect shows the mounts', { skip: needsRoot || (!fs.existsSync(ALPINE) && `the Alpine rootfs is absent (${ALPINE})`) }, async (t) => {
  t.equal(ts(['import', ALPINE, 'alpine-usr1:1', '--change', 'STOPSIGNAL SIGUSR1']).status, 0);
  const vol = path.join(TEST_BASE, `stopsig-${process.pid}`);
  fs.mkdirSync(vol, { recursive: true });
  t.teardown(() => fs.rmSync(vol, { recursive: true, force: true }));
  t.equal(ts(['run', '-d', '--name', 'usr1', '-v', `${vol}:/data:ro`, 'alpine-usr1:1', 'sh', '-c', 'trap "echo got-usr1; exit 0" USR1; while :; do sleep 0.1; done']).status, 0);
  await sleep(300);
  const c = inspect('usr1');
  t.match(c, { Config: { StopSignal: 'SIGUSR1' }, Mounts: [{ Type: 'bind', Source: vol, Destination: '/data', RW: false }] });
  const t0 = Date.now();
  t.equal(ts(['stop', '-t', '20', 'usr1']).status, 0);
  t.ok(Date.now() - t0 < 10_000, 'it ended on the stop signal, long before the timeout');
  t.match(inspect('usr1').State, { ExitCode: 0 });
  t.equal(ts(['logs', 'usr1']).stdout, 'got-usr1\n');
  t.equal(ts(['rm', 'usr1']).status, 0);
  t.equal(ts(['rmi', 'alpine-usr1:1']).status, 0);
});
