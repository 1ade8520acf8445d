#!/usr/bin/env node
// npm run bench (ninth part): a five-service compose project.
// `tsrun compose up -d` and `tsrun compose down` beside `podman-compose up -d`
// and `podman-compose down` (podman-compose 1.0, podman with runc, its own
// --root/--runroot under the benchmark's directory through --podman-args, a
// containers.conf of its own for the network directory, rlimits and the init
// binary), rounds interleaved in a random order. The services, all of the
// busybox image on the project's default network and each with `init: true`
// (tsrun's static init for both, so neither `down` waits out a grace): web
// (httpd on a port published on 127.0.0.1), web2 (httpd), db (an nc
// listener), worker (depends on db), cache. After the warm-up each project
// answers on its published port and its worker reaches db by name: what is
// timed is checked to work.
// tsrun's rows run with NODE_EXTRA_CA_CERTS as the caller has it and
// without it (Node reads that file before anything else).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchWork, podmanBusybox, time, q, med, withCa, withoutCa } from './bench-work.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const project = path.resolve(here, '..');
const cli = path.join(project, 'dist', 'tsrun.js');
const init = path.join(project, 'build', 'Release', 'tsrun-init');
const N = Number(process.env.BENCH_N ?? 9);
const PORT = Number(process.env.BENCH_PORT ?? 20000 + (process.pid % 20000));

if (process.getuid() !== 0) {
  console.error('bench: needs root');
  process.exit(1);
}
if (!fs.existsSync('/usr/lib/cni/bridge') && !fs.existsSync('/opt/cni/bin/bridge')) {
  console.error('bench: compose: the CNI plugins are not installed (apt-get install containernetworking-plugins iptables)');
  process.exit(1);
}
const have = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const { work, cleanups } = benchWork('tsrun-bench-compose-');
const storage = path.join(work, 'storage');
const root = path.join(work, 'state');
const proot = path.join(work, 'podman');

const tsrun = (args, env = withCa) => execFileSync(process.execPath, [cli, '--root', root, '--storage', storage, ...args], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', env });
// podman-compose 1.0 puts --podman-args after podman's subcommand, where podman takes its global flags too.
const podmanGlobal = ['--root', path.join(proot, 'root'), '--runroot', path.join(proot, 'run')];
const pmEnv = { ...process.env, CONTAINERS_CONF: path.join(work, 'containers.conf') };
const podman = (args) => execFileSync('podman', [...podmanGlobal, ...args], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', env: pmEnv });
const podmanCompose = (name, args) => execFileSync('podman-compose', ['-p', name, '-f', path.join(work, 'podman-compose.yaml'), ...podmanGlobal.map((a) => `--podman-args=${a}`), ...args], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', env: pmEnv, cwd: work });

const composeFile = (image, port) => `services:
  web:
    image: ${image}
    init: true
    command: ["httpd", "-f", "-p", "8080", "-h", "/etc"]
    ports: ["127.0.0.1:${port}:8080"]
  web2:
    image: ${image}
    init: true
    command: ["httpd", "-f", "-p", "8080", "-h", "/etc"]
  db:
    image: ${image}
    init: true
    command: ["nc", "-ll", "-p", "5432", "-e", "cat"]
  worker:
    image: ${image}
    init: true
    depends_on: [db]
    command: ["sh", "-c", "while :; do sleep 1; done"]
  cache:
    image: ${image}
    init: true
    command: ["sleep", "1d"]
`;
fs.writeFileSync(path.join(work, 'compose.yaml'), composeFile('busybox', PORT));
fs.writeFileSync(path.join(work, 'podman-compose.yaml'), composeFile('docker.io/library/busybox:latest', PORT + 1));
// podman's networks would otherwise be written to /etc/containers/networks; without CAP_SYS_RESOURCE its default rlimits fail.
fs.writeFileSync(
  path.join(work, 'containers.conf'),
  `[containers]
init_path = "${init}"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
[network]
network_config_dir = "${path.join(proot, 'networks')}"
`,
);

execFileSync(path.join(project, 'scripts', 'busybox-image.sh'), { env: { ...process.env, TSRUN_STORAGE: storage }, stdio: 'ignore' });
const hasPodman = have('podman') && have('podman-compose') && have('runc') && ['/usr/lib/podman/netavark', '/usr/libexec/podman/netavark'].some((f) => fs.existsSync(f));
const ts = `tsbench${process.pid}`;
const tsNoCa = `tsbench${process.pid}noca`;
const pm = `pmbench${process.pid}`;
const tsCompose = (name, args, env) => tsrun(['compose', '-p', name, '-f', path.join(work, 'compose.yaml'), ...args], env);
for (const name of [ts, tsNoCa]) cleanups.push(() => tsCompose(name, ['down', '-t', '0']));
if (hasPodman) {
  podmanBusybox({ tsrun, podman, work, cleanups });
}

// [row, up, down]: tsrun's with and without the CA file, each its own project.
const variants = [
  ['tsrun compose', () => tsCompose(ts, ['up', '-d'], withCa), () => tsCompose(ts, ['down'], withCa)],
  ['tsrun compose (no NODE_EXTRA_CA_CERTS)', () => tsCompose(tsNoCa, ['up', '-d'], withoutCa), () => tsCompose(tsNoCa, ['down'], withoutCa)],
];
if (hasPodman) variants.push(['podman-compose', () => podmanCompose(pm, ['up', '-d']), () => podmanCompose(pm, ['down'])]);

// The warm-up, checked: the published port answers, the worker reaches db by name, every service runs.
const check = (who, port, exec) => {
  const got = spawnSync('curl', ['-sf', '--retry', '10', '--retry-connrefused', '--retry-delay', '1', '--max-time', '2', `http://127.0.0.1:${port}/hostname`], { encoding: 'utf8' }).stdout.trim();
  if (!/^[0-9a-f]{12}$/.test(got)) console.error(`bench: compose: ${who}: web's published port 127.0.0.1:${port} did not answer (${JSON.stringify(got)})`);
  const web = exec(['wget', '-qO-', 'http://web2:8080/hostname']).trim();
  if (!/^[0-9a-f]{12}$/.test(web)) throw new Error(`bench: compose: ${who}: worker got ${JSON.stringify(web)} from web2`);
  const echo = exec(['sh', '-c', 'echo ping | nc -w 2 db 5432']).trim();
  if (echo !== 'ping') throw new Error(`bench: compose: ${who}: worker got ${JSON.stringify(echo)} from db`);
};
variants[0][1]();
check('tsrun', PORT, (cmd) => tsCompose(ts, ['exec', 'worker', ...cmd]));
const listed = tsCompose(ts, ['ps', '--format', 'json']).trim();
const running = listed.startsWith('[') ? JSON.parse(listed).length : listed.split('\n').filter(Boolean).length;
if (running !== 5) throw new Error(`bench: compose: tsrun: ${running} of 5 services running`);
variants[0][2]();
for (const [, up, down] of variants.slice(1)) {
  up();
  down();
}
if (hasPodman) {
  variants[2][1]();
  check('podman-compose', PORT + 1, (cmd) => podman(['exec', `${pm}_worker_1`, ...cmd]));
  const up = podman(['ps', '-q', '--filter', `label=io.podman.compose.project=${pm}`]).trim().split('\n').filter(Boolean).length;
  if (up !== 5) throw new Error(`bench: compose: podman-compose: ${up} of 5 services running`);
  variants[2][2]();
}

const samples = new Map(variants.flatMap(([name]) => [[`${name} up -d`, []], [`${name} down`, []]]));
for (let round = 0; round < N; round++) {
  for (const [name, up, down] of [...variants].sort(() => Math.random() - 0.5)) {
    samples.get(`${name} up -d`).push(time(up));
    samples.get(`${name} down`).push(time(down));
  }
  console.error(`bench: compose: round ${round + 1}/${N}`);
}

console.log(`\ncompose: ${N} interleaved rounds (random order), up -d then down of five busybox services (init: true) on the project's network, one port published; kernel ${os.release()}, ${os.cpus().length} cpus, load ${os.loadavg()[0].toFixed(2)}`);
const width = Math.max(...[...samples.keys()].map((name) => name.length));
console.log(`${'what'.padEnd(width)}  median ms   p10-p90 ms`);
for (const [name, xs] of samples) console.log(`${name.padEnd(width)}  ${med(xs).toFixed(0).padStart(9)}   ${q(xs, 0.1).toFixed(0)}-${q(xs, 0.9).toFixed(0)}`);
if (hasPodman) {
  for (const kind of ['up -d', 'down']) console.log(`tsrun compose ${kind} / podman-compose ${kind}: ${(med(samples.get(`tsrun compose ${kind}`)) / med(samples.get(`podman-compose ${kind}`))).toFixed(2)} (without NODE_EXTRA_CA_CERTS: ${(med(samples.get(`tsrun compose (no NODE_EXTRA_CA_CERTS) ${kind}`)) / med(samples.get(`podman-compose ${kind}`))).toFixed(2)})`);
} else console.log('podman, podman-compose or runc is not installed: no podman-compose rows (apt-get install podman podman-compose runc)');
