// One compose file, two tools: Debian's podman-compose (1.0.x, podman with
// --runtime runc, private storage, run root and network directory) and
// tsrun compose give the same services, environment, published port and
// name resolution. Each tool runs the project from its own directory: the
// same compose.yaml, a .env that differs only in the published host port.
//
// The names differ by design: podman-compose 1.0 names a container
// PROJECT_SERVICE_N, Docker Compose (and tsrun compose) PROJECT-SERVICE-N.
// Each tool is held to its own scheme; the services and their counts match.
//
// Traffic goes to loopback and to the project's own containers only: the
// worker resolves nothing but the service names.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { busyboxImage, cgroupDirsNamed, mountsUnder, needsRoot, PROJECT, stateRoot, TEST_BASE, tsrun, httpGet } from './helpers';

const have = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
const skip = needsRoot || (!have('podman') ? 'needs Debian podman' : !have('podman-compose') ? 'needs Debian podman-compose' : false);

// podman refuses a run root longer than 50 characters: short names.
const base = path.join(TEST_BASE, `cpod-${process.pid}`);
const pdir = path.join(base, 'podman-project');
const tdir = path.join(base, 'tsrun-project');
const pstate = path.join(base, 'p');
const storage = path.join(TEST_BASE, 'storage', `compose-podman-${process.pid}`);
const root = stateRoot(`compose-podman-${process.pid}`);
const project = `cp${process.pid}`;
const PARENT = '/tsrun-test-compose-podman';
const cache = '/var/lib/containers/cache';
const hadCache = fs.existsSync(cache);
const portBase = 30000 + (process.pid % 15000) * 2;
const ports = { podman: portBase, tsrun: portBase + 1 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// netavark's chains are shared by every podman network on the host (another
// podman user's too): the test removes them only if they were not there
// before and no network's own chain or rule is left in them.
const iptablesS = (table: string) => spawnSync('iptables', ['-w', '-t', table, '-S'], { encoding: 'utf8' }).stdout.split('\n');
const hadNetavark = skip ? true : [...iptablesS('filter'), ...iptablesS('nat')].some((l) => /NETAVARK/.test(l));
function removeIdleNetavarkChains() {
  const shared = /^(NETAVARK_FORWARD|NETAVARK-HOSTPORT-(DNAT|MASQ|SETMARK))$/;
  const tables = { filter: iptablesS('filter'), nat: iptablesS('nat') };
  const all = [...tables.filter, ...tables.nat];
  if (all.some((l) => /^-N NETAVARK/.test(l) && !shared.test(l.slice(3)))) return;
  if (all.some((l) => /^-A (NETAVARK_FORWARD|NETAVARK-HOSTPORT-DNAT) /.test(l))) return;
  for (const [table, rules] of Object.entries(tables)) {
    for (const r of rules.filter((l) => l.startsWith('-A ') && / -j NETAVARK/.test(l) && !/^-A NETAVARK/.test(l))) spawnSync('sh', ['-c', `iptables -w -t ${table} ${r.replace(/^-A /, '-D ')}`]);
    const chains = rules.filter((l) => /^-N NETAVARK/.test(l)).map((l) => l.slice(3));
    for (const c of chains) spawnSync('iptables', ['-w', '-t', table, '-F', c]);
    for (const c of chains) spawnSync('iptables', ['-w', '-t', table, '-X', c]);
  }
}

interface Out {
  status: number | null;
  stdout: string;
  stderr: string;
}
const podmanGlobal = ['--root', path.join(pstate, 'root'), '--runroot', path.join(pstate, 'runroot'), '--runtime', 'runc'];
const podmanEnv = () => ({ ...process.env, CONTAINERS_CONF: path.join(pstate, 'containers.conf') });
function run(cmd: string, args: string[], cwd = base): Out {
  fs.mkdirSync(base, { recursive: true });
  if (!fs.existsSync(cwd)) cwd = base;
  const o = fs.openSync(path.join(base, 'cmd.out'), 'w');
  const e = fs.openSync(path.join(base, 'cmd.err'), 'w');
  try {
    const r = spawnSync(cmd, args, { cwd, env: podmanEnv(), stdio: ['ignore', o, e], timeout: 60_000 });
    return { status: r.status, stdout: fs.readFileSync(path.join(base, 'cmd.out'), 'utf8'), stderr: fs.readFileSync(path.join(base, 'cmd.err'), 'utf8') };
  } finally {
    fs.closeSync(o);
    fs.closeSync(e);
  }
}
const podman = (args: string[]) => run('podman', [...podmanGlobal, ...args]);
// podman-compose 1.0: --podman-args go before podman's own command, --podman-run-args after `run`.
const podmanCompose = (args: string[]) =>
  run('podman-compose', ['-f', path.join(pdir, 'compose.yaml'), '-p', project, '--podman-args', podmanGlobal.join(' '), '--podman-run-args', `--cgroup-parent ${PARENT}`, ...args], pdir);
const compose = (args: string[]) => tsrun(['--storage', storage, 'compose', '--project-directory', tdir, '-f', path.join(tdir, 'compose.yaml'), '-p', project, ...args], { root, timeout: 90_000 });

async function getSoon(port: number): Promise<string> {
  for (let i = 0; ; i++) {
    try {
      return await httpGet(port);
    } catch (e) {
      if (i >= 50) throw e;
      await sleep(100);
    }
  }
}

const COMPOSE = `
services:
  web:
    image: busybox
    command: httpd -f -p 80 -h /www
    init: true
    ports: ["127.0.0.1:\${WEB_PORT}:80"]
    volumes: ["./site:/www:ro"]
  db:
    image: busybox
    command: ["sh", "-c", "exec nc -ll -p 5432 -e echo pong"]
    environment:
      DB_NAME: \${DB_NAME}
      DB_MODE: map
  worker:
    image: busybox
    command: sleep 600
    environment:
      - GREETING=\${GREETING}
      - DEFAULTED=\${UNSET_IN_DOTENV:-fallback}
      - PLAIN=$$HOME
      - FROM_LIST=list value
    depends_on: [db]
`;
// What the file defines, as each service should see it.
const WORKER_ENV = { GREETING: 'from-dotenv', DEFAULTED: 'fallback', PLAIN: '$HOME', FROM_LIST: 'list value' };
const DB_ENV = { DB_NAME: 'shop', DB_MODE: 'map' };
const envOf = (out: string, keys: string[]) => Object.fromEntries(out.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]).filter(([k]) => keys.includes(k)));
const REACH = 'nc db 5432 </dev/null; wget -qO- http://web/';

t.before(() => {
  if (skip) return;
  try {
    setUp();
  } catch (e) {
    cleanUp();
    throw e;
  }
});

function setUp() {
  fs.rmSync(base, { recursive: true, force: true });
  for (const [d, port] of [[pdir, ports.podman], [tdir, ports.tsrun]] as const) {
    fs.mkdirSync(path.join(d, 'site'), { recursive: true });
    fs.writeFileSync(path.join(d, 'site', 'index.html'), 'hello from web\n');
    fs.writeFileSync(path.join(d, 'compose.yaml'), COMPOSE);
    fs.writeFileSync(path.join(d, '.env'), `WEB_PORT=${port}\nGREETING=from-dotenv\nDB_NAME=shop\n`);
  }
  fs.mkdirSync(path.join(pstate, 'tmp'), { recursive: true });
  fs.mkdirSync(path.join(pstate, 'networks'), { recursive: true });
  // Debian's podman has no catatonit: init: true runs tsrun's own static init (it takes podman's "--").
  fs.writeFileSync(
    path.join(pstate, 'containers.conf'),
    [
      '[containers]',
      'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
      `init_path = "${path.join(PROJECT, 'build', 'Release', 'tsrun-init')}"`,
      '[engine]',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "none"',
      `tmp_dir = "${pstate}/tmp"`,
      '[network]',
      `network_config_dir = "${pstate}/networks"`,
      '',
    ].join('\n'),
  );
  busyboxImage(storage);
  const saved = tsrun(['--storage', storage, 'save', '-o', path.join(base, 'busybox.tar'), 'busybox']);
  if (saved.status !== 0) throw new Error(`save: ${saved.stderr}`);
  const loaded = podman(['load', '-i', path.join(base, 'busybox.tar')]);
  if (loaded.status !== 0) throw new Error(`podman load: ${loaded.stderr}`);
}

t.teardown(() => {
  if (!skip) cleanUp();
});

function cleanUp() {
  podmanCompose(['down', '-t', '1']);
  podman(['rm', '-af', '-t', '0']);
  podman(['network', 'rm', '-f', `${project}_default`]);
  podman(['rmi', '-af']);
  compose(['down', '-v', '--remove-orphans', '-t', '1']);
  for (const m of mountsUnder(base).reverse()) spawnSync('umount', ['-l', m]);
  // conmon's cgroup, podman's, below the test's parent.
  for (const d of cgroupDirsNamed(PARENT)) {
    try {
      if (fs.existsSync(path.join(d, 'conmon'))) fs.rmdirSync(path.join(d, 'conmon'));
      fs.rmdirSync(d);
    } catch {
      /* a process still in it: the leak check names it */
    }
  }
  if (!hadNetavark) removeIdleNetavarkChains();
  if (!hadCache) fs.rmSync(cache, { recursive: true, force: true });
  fs.rmSync(base, { recursive: true, force: true });
  fs.rmSync(storage, { recursive: true, force: true });
  fs.rmSync(root, { recursive: true, force: true });
}

t.test('podman-compose and tsrun compose: the same services, environment, published port and name resolution', { skip }, async (t) => {
  const pup = podmanCompose(['up', '-d']);
  t.equal(pup.status, 0, `podman-compose up -d: ${pup.stderr}`);
  const tup = compose(['up', '-d']);
  t.equal(tup.status, 0, `tsrun compose up -d: ${tup.stderr}`);

  // Names: each tool's own scheme, the same services and counts.
  const pnames = podman(['ps', '-a', '--filter', `label=io.podman.compose.project=${project}`, '--format', '{{.Names}}']).stdout.split('\n').filter(Boolean).sort();
  const tnames = compose(['ps', '-a', '--format', 'json']).stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { Name: string }).Name).sort();
  t.same(pnames, ['db', 'web', 'worker'].map((s) => `${project}_${s}_1`), 'podman-compose 1.0: PROJECT_SERVICE_N');
  t.same(tnames, ['db', 'web', 'worker'].map((s) => `${project}-${s}-1`), 'tsrun compose: PROJECT-SERVICE-N, as Docker Compose');
  const services = (names: string[], sep: string) => names.map((n) => n.slice(project.length + 1).split(sep)[0]);
  t.same(services(tnames, '-'), services(pnames, '_'), 'the same services, one container each');
  const prunning = podman(['ps', '--filter', `label=io.podman.compose.project=${project}`, '--format', '{{.Names}}']).stdout.split('\n').filter(Boolean);
  t.equal(prunning.length, 3, 'all three running under podman');

  const pexec = (svc: string, cmd: string) => podman(['exec', `${project}_${svc}_1`, 'sh', '-c', cmd]);
  const texec = (svc: string, cmd: string) => compose(['exec', '-T', svc, 'sh', '-c', cmd]);

  // The environment the file defines: a list, a map, .env interpolation, a default, $$.
  for (const [svc, want] of [['worker', WORKER_ENV], ['db', DB_ENV]] as const) {
    const pe = pexec(svc, 'env');
    const te = texec(svc, 'env');
    t.equal(pe.status, 0, pe.stderr);
    t.equal(te.status, 0, te.stderr);
    t.same(envOf(pe.stdout, Object.keys(want)), want, `${svc}: podman-compose's environment`);
    t.same(envOf(te.stdout, Object.keys(want)), want, `${svc}: tsrun compose's environment`);
  }

  // The published port on 127.0.0.1: the same page.
  const pbody = await getSoon(ports.podman);
  const tbody = await getSoon(ports.tsrun);
  t.equal(pbody, 'hello from web\n', 'podman-compose\'s web answers on 127.0.0.1');
  t.equal(tbody, pbody, 'tsrun compose\'s web gives the same body');
  // init: true: an init is pid 1 and httpd its child, under both.
  t.notMatch(pexec('web', 'cat /proc/1/comm').stdout, /^httpd/, 'podman: httpd is not pid 1');
  t.notMatch(texec('web', 'cat /proc/1/comm').stdout, /^httpd/, 'tsrun: httpd is not pid 1');

  // From the worker, db and web by service name.
  const preach = pexec('worker', REACH);
  const treach = texec('worker', REACH);
  t.equal(preach.status, 0, preach.stderr);
  t.equal(treach.status, 0, treach.stderr);
  t.equal(preach.stdout, 'pong\nhello from web\n', 'podman-compose: db and web by service name');
  t.equal(treach.stdout, preach.stdout, 'tsrun compose: the same');

  const pdown = podmanCompose(['down', '-t', '1']);
  t.equal(pdown.status, 0, pdown.stderr);
  const tdown = compose(['down', '-v', '-t', '1']);
  t.equal(tdown.status, 0, tdown.stderr);
  t.same(podman(['ps', '-aq']).stdout.trim(), '', 'podman-compose down leaves no container');
  t.same(compose(['ps', '-a', '--format', 'json']).stdout.trim(), '', 'tsrun compose down leaves no container');
});
