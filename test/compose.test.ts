// Compose as its users run it: a project of services from local busybox
// images, up -d, each service reached by name on the project network, a
// published port answering on 127.0.0.1, replicas, an idempotent up that
// recreates only what changed, logs, exec, run, down -v; interpolation,
// .env and the override file; profiles; a build: service; bad files
// refused in one line with file and line, nothing made.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { busyboxImage, CLI, needsRoot, stateRoot, TEST_BASE, tsrun, httpGet } from './helpers';

const root = stateRoot('compose');
const storage = path.join(TEST_BASE, 'storage', `compose-${process.pid}`);
const dir = path.join(TEST_BASE, `compose-project-${process.pid}`);
const project = `ct${process.pid}`;
const compose = (args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) => tsrun(['--storage', storage, 'compose', '--project-directory', opts.cwd ?? dir, '-f', path.join(opts.cwd ?? dir, 'compose.yaml'), ...(fs.existsSync(path.join(opts.cwd ?? dir, 'compose.override.yaml')) ? ['-f', path.join(opts.cwd ?? dir, 'compose.override.yaml')] : []), '-p', project, ...args], { root, env: opts.env, timeout: 120_000 });
const ts = (args: string[]) => tsrun(['--storage', storage, ...args], { root });
const inspect = (name: string) => JSON.parse(ts(['inspect', name]).stdout)[0];
const psJson = () =>
  compose(['ps', '-a', '--format', 'json'])
    .stdout.split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { ID: string; Name: string; Service: string; State: string; Health: string; Status: string; Labels: Record<string, string> });

const COMPOSE = `
name: ignored-by-p
services:
  web:
    image: busybox
    command: httpd -f -p 80 -h /www
    init: true
    ports: ["127.0.0.1:\${WEB_PORT}-\${WEB_PORT_END}:80"]
    volumes: ["./site:/www:ro", "data:/data"]
    deploy: {replicas: 2}
  db:
    image: busybox
    init: true
    command: ["sh", "-c", "echo db up; sleep 1; touch /tmp/ready; exec nc -ll -p 5432 -e echo pong"]
    healthcheck:
      test: ["CMD", "test", "-e", "/tmp/ready"]
      interval: 1m
      start_period: 30s
      start_interval: 200ms
    networks:
      default: {}
      back: {aliases: [database]}
  worker:
    image: busybox
    init: true
    command: sleep 600
    environment:
      GREETING: \${GREETING:-unset}
      PLAIN: "$$HOME"
    depends_on:
      db: {condition: service_healthy}
    networks: [back, default]
    volumes: [/scratch]
    secrets: [token, {source: apikey, target: api}]
  tools:
    image: busybox
    profiles: [debug]
    command: sleep 600
volumes:
  data: {}
networks:
  back: {}
secrets:
  token: {file: ./token.txt}
  apikey: {environment: COMPOSE_TEST_API_KEY}
`;
// A secret's value by the environment: the test's own, seen by every compose call.
process.env.COMPOSE_TEST_API_KEY = 'key-from-env-5e1f';

t.before(() => {
  if (needsRoot) return;
  busyboxImage(storage);
  fs.mkdirSync(path.join(dir, 'site'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'site', 'index.html'), 'hello from web\n');
  fs.writeFileSync(path.join(dir, 'compose.yaml'), COMPOSE);
  fs.writeFileSync(path.join(dir, 'token.txt'), 'token-from-file-9c2d');
  const port = 20000 + (process.pid % 20000);
  fs.writeFileSync(path.join(dir, '.env'), `WEB_PORT=${port}\nWEB_PORT_END=${port + 2}\nGREETING=from-dotenv\n`);
  fs.writeFileSync(path.join(dir, 'compose.override.yaml'), 'services:\n  worker:\n    environment: [EXTRA=override]\n');
});

t.teardown(() => {
  if (needsRoot) return;
  compose(['down', '-v', '--remove-orphans', '-t', '1']);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(storage, { recursive: true, force: true });
  fs.rmSync(root, { recursive: true, force: true });
});

t.test('a three-service project: up -d, names, ports, volumes, replicas, idempotent up, logs, exec, run, down -v', { skip: needsRoot }, async (t) => {
  const port = Number(/WEB_PORT=(\d+)/.exec(fs.readFileSync(path.join(dir, '.env'), 'utf8'))![1]);
  const up = compose(['up', '-d']);
  t.equal(up.status, 0, `up -d: ${up.stderr}`);
  t.match(up.stderr, new RegExp(`Network ${project}_default\\s+Created`));
  t.match(up.stderr, new RegExp(`Volume ${project}_data\\s+Created`));
  // db is started before worker, which depends on it.
  t.ok(up.stderr.indexOf(`${project}-db-1  Started`) < up.stderr.indexOf(`${project}-worker-1  Started`), 'db starts before the worker that depends on it');

  const ps = psJson();
  t.same(ps.map((c) => c.Name).sort(), [`${project}-db-1`, `${project}-web-1`, `${project}-web-2`, `${project}-worker-1`], 'Docker Compose\'s names; the profiled service is not started');
  t.ok(ps.every((c) => c.State === 'running'), 'all running');
  // The worker waited for the db's health check to pass (the db makes /tmp/ready a second after it starts).
  const db = inspect(`${project}-db-1`);
  const passed = db.State.Health.Log.find((l: { ExitCode: number }) => l.ExitCode === 0);
  t.ok(passed, 'the db\'s health check passed');
  t.not(db.State.Health.Log[0].ExitCode, 0, 'after failing first (in its start period)');
  t.ok(Date.parse(inspect(`${project}-worker-1`).State.StartedAt) >= Date.parse(passed.End), 'the worker started only after the db turned healthy');
  const dbRow = ps.find((c) => c.Name === `${project}-db-1`)!;
  t.equal(dbRow.Health, 'healthy');
  t.match(dbRow.Status, /\(healthy\)$/, 'compose ps shows the health');
  const web1 = inspect(`${project}-web-1`);
  t.equal(web1.Config.Labels['com.docker.compose.project'], project);
  t.equal(web1.Config.Labels['com.docker.compose.service'], 'web');
  t.equal(web1.Config.Labels['com.docker.compose.container-number'], '1');
  t.match(web1.Config.Labels['com.docker.compose.config-hash'], /^[0-9a-f]{64}$/);

  // Both replicas answer on the published range.
  t.equal(await httpGet(port), 'hello from web\n', 'web-1 answers on 127.0.0.1');
  t.equal(await httpGet(port + 1), 'hello from web\n', 'web-2 answers on the next port of the range');

  // By service name, alias and container name, from another service.
  const reach = compose(['exec', '-T', 'worker', 'sh', '-c', 'nc db 5432 </dev/null; nc database 5432 </dev/null; wget -qO- http://web/; wget -qO- http://' + project + '-web-2/']);
  t.equal(reach.status, 0, reach.stderr);
  t.equal(reach.stdout, 'pong\npong\nhello from web\nhello from web\n', 'db by name and alias, web by service and container name');
  const envOut = compose(['exec', '-T', 'worker', 'sh', '-c', 'echo "$GREETING|$PLAIN|$EXTRA"']);
  t.equal(envOut.stdout, 'from-dotenv|$HOME|override\n', '.env interpolated, $$ a dollar, the override file merged');
  t.equal(compose(['exec', '-T', 'worker', 'sh', '-c', 'exit 3']).status, 3, 'exec exits with the command\'s status');
  t.equal(compose(['exec', '-T', 'web', 'sh', '-c', 'echo kept > /data/f']).status, 0);

  const secrets = compose(['exec', '-T', 'worker', 'sh', '-c', 'cat /run/secrets/token; echo; cat /run/secrets/api; echo; echo x > /run/secrets/token']);
  t.equal(secrets.stdout, 'token-from-file-9c2d\nkey-from-env-5e1f\n', 'secrets from a file and from the environment at /run/secrets');
  t.match(secrets.stderr, /Read-only file system/, 'a secret is read-only inside');
  const record = ts(['inspect', `${project}-worker-1`]).stdout;
  t.notMatch(record, /token-from-file|key-from-env/, 'no secret value in inspect');

  const logs = compose(['logs', 'db']);
  t.match(logs.stdout, new RegExp(`^${project}-db-1 \\| db up$`, 'm'), 'logs prefixed with the container name');

  t.equal(compose(['exec', '-T', 'worker', 'sh', '-c', 'echo anon > /scratch/f']).status, 0);

  // Unchanged: nothing recreated. Changed worker: only it.
  const ids = Object.fromEntries(psJson().map((c) => [c.Name, c.ID]));
  const again = compose(['up', '-d']);
  t.equal(again.status, 0, again.stderr);
  t.same(Object.fromEntries(psJson().map((c) => [c.Name, c.ID])), ids, 'an unchanged project is left as it runs');
  fs.writeFileSync(path.join(dir, 'compose.override.yaml'), 'services:\n  worker:\n    environment: [EXTRA=changed]\n');
  const changed = compose(['up', '-d']);
  t.equal(changed.status, 0, changed.stderr);
  const after = Object.fromEntries(psJson().map((c) => [c.Name, c.ID]));
  t.not(after[`${project}-worker-1`], ids[`${project}-worker-1`], 'the changed service is recreated');
  for (const n of ['db-1', 'web-1', 'web-2']) t.equal(after[`${project}-${n}`], ids[`${project}-${n}`], `${n} is left running`);
  t.equal(compose(['exec', '-T', 'worker', 'sh', '-c', 'echo $EXTRA']).stdout, 'changed\n');
  t.equal(compose(['exec', '-T', 'worker', 'cat', '/scratch/f']).stdout, 'anon\n', 'the recreated container keeps its anonymous volume');

  // Scaled to three, all of them under the service's name.
  const scaled = compose(['up', '-d', '--scale', 'web=3']);
  t.equal(scaled.status, 0, scaled.stderr);
  t.equal(psJson().filter((c) => c.Service === 'web').length, 3, 'three web containers');
  const hosts = compose(['exec', '-T', 'worker', 'cat', '/etc/hosts']).stdout;
  t.equal(hosts.split('\n').filter((l) => /\sweb(\s|$)/.test(l)).length, 3, 'each replica is in /etc/hosts under the service name');
  t.equal(compose(['exec', '-T', 'worker', 'wget', '-qO-', `http://${project}-web-3/`]).stdout, 'hello from web\n', 'the new replica answers');
  t.equal(await httpGet(port + 2), 'hello from web\n', 'and takes the third port of the range');
  t.equal(compose(['exec', '-T', '--index', '3', 'web', 'cat', '/data/f']).stdout, 'kept\n', 'replicas share the named volume');

  // A one-off run: its output, its exit status, nothing left with --rm.
  const one = compose(['run', '--rm', '-T', 'worker', 'sh', '-c', 'nc db 5432 </dev/null; exit 4']);
  t.equal(one.status, 4, one.stderr);
  t.equal(one.stdout, 'pong\n');
  t.equal(psJson().filter((c) => c.Name.includes('-run-')).length, 0, 'run --rm leaves no container');

  // The profile's service runs only when asked.
  t.equal(compose(['--profile', 'debug', 'up', '-d', 'tools']).status, 0);
  t.ok(psJson().some((c) => c.Name === `${project}-tools-1`), 'a profiled service starts with --profile');

  const down = compose(['down', '-v', '-t', '1']);
  t.equal(down.status, 0, down.stderr);
  t.match(down.stderr, new RegExp(`${project}-tools-1\\s+Removed`), 'down takes the containers of profiles not enabled too');
  t.same(psJson(), [], 'no container left');
  t.notMatch(ts(['network', 'ls']).stdout, project, 'the project networks are gone');
  t.notMatch(ts(['volume', 'ls']).stdout, project, 'the project volume is gone');
  t.equal(ts(['volume', 'ls', '-q']).stdout, '', 'and the anonymous ones');
  t.ok(fs.existsSync(path.join(dir, 'site', 'index.html')), 'the bind source is the user\'s and stays');
});

t.test('depends_on service_completed_successfully, and up attached to the logs', { skip: needsRoot }, async (t) => {
  const jdir = path.join(dir, 'jobs');
  fs.mkdirSync(jdir, { recursive: true });
  const file = (status: number) =>
    `services:\n  migrate:\n    image: busybox\n    command: ["sh", "-c", "sleep 1; echo migrated > /shared/flag; exit ${status}"]\n    volumes: [shared:/shared]\n  app:\n    image: busybox\n    command: ["sh", "-c", "cat /shared/flag"]\n    volumes: [shared:/shared]\n    depends_on:\n      migrate: {condition: service_completed_successfully}\nvolumes:\n  shared: {}\n`;
  fs.writeFileSync(path.join(jdir, 'compose.yaml'), file(0));
  // Attached: each container's lines after its name; up returns when they have all exited.
  const up = compose(['up'], { cwd: jdir });
  t.equal(up.status, 0, up.stderr);
  t.match(up.stdout, new RegExp(`^${project}-app-1\\s+\\| migrated$`, 'm'), 'app started after migrate finished, and its output is shown');
  t.equal(compose(['down', '-v'], { cwd: jdir }).status, 0);
  fs.writeFileSync(path.join(jdir, 'compose.yaml'), file(3));
  const failed = compose(['up', '-d'], { cwd: jdir });
  t.not(failed.status, 0);
  t.match(failed.stderr, new RegExp(`depends on migrate completing successfully, but ${project}-migrate-1 exited with 3`));
  t.notOk(psJson().some((c) => c.Service === 'app'), 'the dependent service was not started');
  t.equal(compose(['down', '-v'], { cwd: jdir }).status, 0);
});

t.test('a rolling start-first update of a replicated service keeps answering; restart brings a crashed replica back', { skip: needsRoot }, async (t) => {
  const rdir = path.join(dir, 'rolling');
  fs.mkdirSync(rdir, { recursive: true });
  const file = (version: number) => `services:
  web:
    image: busybox
    init: true
    restart: always
    command: ["sh", "-c", "echo v$$VERSION $$HOSTNAME > /tmp/index.html; exec httpd -f -p 80 -h /tmp"]
    environment: {VERSION: "${version}"}
    deploy:
      replicas: 3
      update_config: {order: start-first, parallelism: 1}
    healthcheck: {test: ["CMD", "wget", "-qO-", "http://127.0.0.1/"], interval: 1m, start_period: 30s, start_interval: 200ms}
  client:
    image: busybox
    init: true
    command: ["sh", "-c", "while :; do wget -qO- http://web/ >> /tmp/got 2>/tmp/err || { echo FAIL >> /tmp/got; cat /tmp/err >> /tmp/got; }; sleep 0.05; done"]
`;
  fs.writeFileSync(path.join(rdir, 'compose.yaml'), file(1));
  t.teardown(() => compose(['down', '-t', '1'], { cwd: rdir }));
  const up = compose(['up', '-d', '--wait'], { cwd: rdir });
  t.equal(up.status, 0, up.stderr);
  const got = () => compose(['exec', '-T', 'client', 'cat', '/tmp/got'], { cwd: rdir }).stdout.split('\n').filter(Boolean);
  const before = Object.fromEntries(psJson().filter((c) => c.Service === 'web').map((c) => [c.Name, c.ID]));
  t.equal(Object.keys(before).length, 3);
  await new Promise((r) => setTimeout(r, 1000));
  t.ok(got().length > 0 && got().every((l) => l.startsWith('v1 ')), 'the client is answered by v1');

  fs.writeFileSync(path.join(rdir, 'compose.yaml'), file(2));
  const update = compose(['up', '-d'], { cwd: rdir });
  t.equal(update.status, 0, update.stderr);
  t.equal((update.stderr.match(/Recreate \(start-first\)/g) ?? []).length, 3, 'each replica replaced start-first');
  // One at a time: each new replica started before an old one was removed.
  const events = [...update.stderr.matchAll(new RegExp(`${project}-web-\\d+\\s+(Started|Removed)`, 'g'))].map((m) => m[1]);
  t.same(events, ['Started', 'Removed', 'Started', 'Removed', 'Started', 'Removed'], 'start, then remove, one replica at a time');
  await new Promise((r) => setTimeout(r, 1000));
  const lines = got();
  t.same(lines.filter((l) => !/^v[12] /.test(l)), [], `no failed request during the update (${lines.length} requests)`);
  t.ok(lines.some((l) => l.startsWith('v1 ')) && lines.at(-1)!.startsWith('v2 '), 'answered by v1, then by v2');
  const after = psJson().filter((c) => c.Service === 'web');
  t.same(after.map((c) => c.Name).sort(), Object.keys(before).sort(), 'the same names, none left under a temporary one');
  t.ok(after.every((c) => c.ID !== before[c.Name] && c.State === 'running'), 'each replica is a new container, running');

  // restart: always brings a replica whose process died back.
  const victim = `${project}-web-2`;
  t.equal(ts(['exec', victim, 'sh', '-c', 'kill -9 $(pidof httpd)']).status, 0);
  let back = false;
  for (let i = 0; i < 100 && !back; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const c = inspect(victim);
    back = c.RestartCount === 1 && c.State.Running;
  }
  t.ok(back, 'the crashed replica was restarted by its policy');
  t.match(compose(['exec', '-T', 'client', 'wget', '-qO-', `http://${victim}/`], { cwd: rdir }).stdout, /^v2 /, 'and answers again');
});

t.test('logs -f streams each container\'s new lines as they come and ends when the containers stop', { skip: needsRoot }, async (t) => {
  const ldir = path.join(dir, 'follow');
  fs.mkdirSync(ldir, { recursive: true });
  fs.writeFileSync(path.join(ldir, 'compose.yaml'), 'services:\n  ticker:\n    image: busybox\n    init: true\n    command: ["sh", "-c", "i=0; while :; do i=$$((i+1)); echo tick $$i; sleep 0.2; done"]\n    deploy: {replicas: 2}\n');
  t.teardown(() => compose(['down', '-t', '1'], { cwd: ldir }));
  t.equal(compose(['up', '-d'], { cwd: ldir }).status, 0);
  const follow = spawn(process.execPath, [CLI, '--root', root, '--storage', storage, 'compose', '--project-directory', ldir, '-f', path.join(ldir, 'compose.yaml'), '-p', project, 'logs', '-f', '--tail', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  follow.stdout.on('data', (b) => (out += b));
  const ended = new Promise<number | null>((r) => follow.on('exit', r));
  const seen = (n: number) => new RegExp(`^${project}-ticker-${n}\\s+\\| tick \\d+$`, 'm').test(out);
  for (let i = 0; i < 100 && !(seen(1) && seen(2)); i++) await new Promise((r) => setTimeout(r, 100));
  t.ok(seen(1) && seen(2), 'new lines of both replicas arrive while they run, after their names');
  const before = out.split('\n').length;
  await new Promise((r) => setTimeout(r, 1000));
  t.ok(out.split('\n').length > before + 3, 'and keep coming');
  t.equal(compose(['stop', '-t', '1'], { cwd: ldir }).status, 0);
  const timer = setTimeout(() => follow.kill(), 15_000);
  t.equal(await ended, 0, 'logs -f ends once the containers have stopped');
  clearTimeout(timer);
});

t.test('up --wait returns once every container runs and is healthy, and fails on an unhealthy one', { skip: needsRoot }, async (t) => {
  const wdir = path.join(dir, 'wait');
  fs.mkdirSync(wdir, { recursive: true });
  const file = (test: string) =>
    `services:\n  slow:\n    image: busybox\n    init: true\n    command: ["sh", "-c", "sleep 2; touch /tmp/up; exec sleep 600"]\n    healthcheck:\n      test: ${test}\n      interval: 300ms\n      retries: 30\n  plain:\n    image: busybox\n    init: true\n    command: sleep 600\n`;
  fs.writeFileSync(path.join(wdir, 'compose.yaml'), file('test -e /tmp/up'));
  const up = compose(['up', '--wait'], { cwd: wdir });
  t.equal(up.status, 0, up.stderr);
  t.match(up.stderr, new RegExp(`Container ${project}-slow-1  Healthy`));
  t.match(up.stderr, new RegExp(`Container ${project}-plain-1  Running`));
  t.equal(inspect(`${project}-slow-1`).State.Health.Status, 'healthy', 'healthy when up --wait returns');
  t.equal(compose(['down', '-t', '1'], { cwd: wdir }).status, 0);

  fs.writeFileSync(path.join(wdir, 'compose.yaml'), file('["CMD", "false"]').replace('retries: 30', 'retries: 2'));
  const failed = compose(['up', '--wait'], { cwd: wdir });
  t.not(failed.status, 0, 'an unhealthy container fails up --wait');
  t.match(failed.stderr, new RegExp(`up --wait: service slow, but ${project}-slow-1 is unhealthy`));
  fs.writeFileSync(path.join(wdir, 'compose.yaml'), file('["CMD", "false"]').replace('retries: 30', 'retries: 1000'));
  const late = compose(['up', '--wait', '--wait-timeout', '1'], { cwd: wdir });
  t.not(late.status, 0);
  t.match(late.stderr, /was not ready in time/, '--wait-timeout bounds the wait');
  t.equal(compose(['down', '-t', '1'], { cwd: wdir }).status, 0);
});

t.test('a build: service is built, tagged PROJECT-SERVICE, and run', { skip: needsRoot }, async (t) => {
  const bdir = path.join(dir, 'built');
  fs.mkdirSync(path.join(bdir, 'app'), { recursive: true });
  fs.writeFileSync(path.join(bdir, 'app', 'Dockerfile'), 'FROM busybox\nARG WHO\nRUN echo "built for $WHO" > /built\nCMD ["sleep", "600"]\n');
  fs.writeFileSync(path.join(bdir, 'compose.yaml'), 'services:\n  app:\n    build:\n      context: ./app\n      args: {WHO: compose}\n      network: none\n    init: true\n');
  const up = compose(['up', '-d', '--build'], { cwd: bdir });
  t.equal(up.status, 0, up.stderr);
  t.match(ts(['images']).stdout, `${project}-app`, 'the image is named PROJECT-SERVICE');
  t.equal(compose(['exec', '-T', 'app', 'cat', '/built'], { cwd: bdir }).stdout, 'built for compose\n', 'the build arg reached the RUN step');
  const down = compose(['down', '--rmi', 'local', '-t', '1'], { cwd: bdir });
  t.equal(down.status, 0, down.stderr);
  t.notMatch(ts(['images']).stdout, `${project}-app`, '--rmi local removes the built image');
});

t.test('bad compose files: one line naming file, line and key; nothing made', { skip: needsRoot }, async (t) => {
  const bad = path.join(dir, 'bad');
  fs.mkdirSync(bad, { recursive: true });
  const cases: [string, RegExp][] = [
    ['services:\n  web:\n    image: busybox\n    colour: red\n', /compose\.yaml:4: services\.web\.colour: unknown key/],
    ['services:\n  web: {image: busybox\n', /compose\.yaml:\d+: invalid YAML/],
    ['services:\n  web:\n    image: busybox\n    depends_on: [nope]\n', /compose\.yaml:4: services\.web\.depends_on\.nope: depends on undefined service nope/],
    ['services:\n  a:\n    image: busybox\n    depends_on: [b]\n  b:\n    image: busybox\n    depends_on: [a]\n', /dependency cycle: a -> b -> a/],
    ['services:\n  web:\n    image: "${MUST:?set it}"\n', /compose\.yaml:3: services\.web\.image: required variable MUST is missing: set it/],
    ['services:\n  web:\n    image: busybox\n    logging: {driver: syslog}\n', /services\.web\.logging: not supported by tsrun/],
    ['services:\n  web:\n    image: busybox\n    volumes: ["undeclared:/x"]\n', /volume undeclared is not declared/],
    ['services:\n  web:\n    image: busybox\n    ports: ["99999:80"]\n', /host ports run from 1 to 65535/],
    ['services:\n  web:\n    image: busybox\n    healthcheck: {test: "true", interval: soon}\n', /compose\.yaml:4: services\.web\.healthcheck\.interval: expected a duration/],
  ];
  for (const [text, want] of cases) {
    fs.writeFileSync(path.join(bad, 'compose.yaml'), text);
    const r = compose(['up', '-d'], { cwd: bad });
    t.not(r.status, 0, `refused: ${want}`);
    t.match(r.stderr, want);
    t.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr.trim()}`);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  t.notMatch(ts(['network', 'ls']).stdout, project, 'no network was made');
  t.same(psJson(), [], 'no container was made');
});

t.test('config prints the merged, interpolated model', { skip: needsRoot }, async (t) => {
  const r = compose(['config', '--format', 'json'], { env: { GREETING: 'from-shell' } });
  t.equal(r.status, 0, r.stderr);
  const model = JSON.parse(r.stdout);
  t.equal(model.name, project);
  t.equal(model.services.worker.environment.GREETING, 'from-shell', 'the shell wins over .env');
  t.equal(model.services.worker.environment.PLAIN, '$HOME');
  t.same(model.services.worker.command, ['sleep', '600'], 'a string command is split into words');
  t.same(Object.keys(model.services).sort(), ['db', 'web', 'worker'], 'a service of a disabled profile is not in the model');
  t.equal(model.services.web.ports[0].host_ip, '127.0.0.1');
  t.equal(model.services.web.volumes[0].source, path.join(dir, 'site'), 'a relative bind is resolved from the project directory');
  t.equal(model.networks.back.name, `${project}_back`);
});
