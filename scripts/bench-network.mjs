#!/usr/bin/env node
// npm run bench (fifth part): what a network costs.
//  - start+exit of `run --rm busybox true` with --network bridge and with
//    --network none, tsrun beside podman (netavark, runc), rounds
//    interleaved in a random order: the network's own cost is the paired
//    difference bridge - none, and its ratio to podman's.
//  - throughput of 1 GiB sent from the host to a container through a port
//    published on 127.0.0.1 (busybox nc in the container), tsrun beside
//    podman.
// tsrun's CLI rows run with NODE_EXTRA_CA_CERTS as the caller has it and
// without it (Node reads that file before anything else). The receiver is
// `nc -l -e sh -c 'cat > /dev/null'`: cat reads the socket itself (nc's own
// copy loop and a shell pipe would be what is measured, not the network).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { benchWork, podmanBusybox, time, q, med, withCa, withoutCa } from './bench-work.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const project = path.resolve(here, '..');
const cli = path.join(project, 'dist', 'tsrun.js');
const N = Number(process.env.BENCH_N ?? 20);
const GIB = Number(process.env.BENCH_BYTES ?? 1 << 30);
const ROUNDS = Number(process.env.BENCH_THROUGHPUT_ROUNDS ?? 3);

if (process.getuid() !== 0) {
  console.error('bench: needs root');
  process.exit(1);
}
const have = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
if (!fs.existsSync('/usr/lib/cni/bridge') && !fs.existsSync('/opt/cni/bin/bridge')) {
  console.error('bench: network: the CNI plugins are not installed (apt-get install containernetworking-plugins iptables)');
  process.exit(1);
}
const { work, cleanups } = benchWork('tsrun-bench-network-');
// The default network's bridge and the plugins' shared chains are host-wide: made by this run, they go with it.
if (!fs.existsSync('/sys/class/net/tsrun0')) {
  cleanups.push(() => {
    const guard = createRequire(import.meta.url)(path.join(project, 'dist', 'network', 'guard.js'));
    guard.unguardLoopback('tsrun0');
    guard.removeBridgeRules('tsrun0');
    spawnSync('ip', ['link', 'del', 'tsrun0']);
    guard.removeIdleCniChains();
  });
}
const storage = path.join(work, 'storage');
const root = path.join(work, 'state');
const proot = path.join(work, 'podman');

const tsrunArgs = (args) => [cli, '--root', root, '--storage', storage, ...args];
const tsrun = (args, env = withCa) => execFileSync(process.execPath, tsrunArgs(args), { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', env });
const podmanArgs = (args) => ['--root', path.join(proot, 'root'), '--runroot', path.join(proot, 'run'), '--runtime', 'runc', ...args];
const podman = (args) => execFileSync('podman', podmanArgs(args), { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });

execFileSync(path.join(project, 'scripts', 'busybox-image.sh'), { env: { ...process.env, TSRUN_STORAGE: storage }, stdio: 'ignore' });
const hasPodman = have('podman') && have('runc') && ['/usr/lib/podman/netavark', '/usr/libexec/podman/netavark'].some((f) => fs.existsSync(f));
// Without CAP_SYS_RESOURCE podman's default rlimits (above the hard limit) fail.
const podmanLimits = ['--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=32768:32768'];
if (hasPodman) {
  podmanBusybox({ tsrun, podman, work, cleanups });
}

const rows = [
  ['tsrun run --rm --network none', (env) => tsrun(['run', '--rm', '--network', 'none', 'busybox', 'true'], env)],
  ['tsrun run --rm --network bridge', (env) => tsrun(['run', '--rm', '--network', 'bridge', 'busybox', 'true'], env)],
];
const cliRows = new Set(rows.map(([n]) => n));
if (hasPodman) {
  rows.push(['podman run --rm --network none', () => podman(['run', '--rm', ...podmanLimits, '--network', 'none', 'docker.io/library/busybox:latest', 'true'])]);
  rows.push(['podman run --rm --network bridge', () => podman(['run', '--rm', ...podmanLimits, '--network', 'bridge', 'docker.io/library/busybox:latest', 'true'])]);
}
const variants = rows.flatMap(([name, run]) => (cliRows.has(name) ? [[name, () => run(withCa)], [`${name} (no NODE_EXTRA_CA_CERTS)`, () => run(withoutCa)]] : [[name, run]]));
for (const [, run] of variants) run(); // warm-up: the default networks are made here
const samples = new Map(variants.map(([n]) => [n, []]));
for (let round = 0; round < N; round++) {
  for (const [name, run] of [...variants].sort(() => Math.random() - 0.5)) samples.get(name).push(time(run));
}

console.log(`\nnetwork set-up: ${N} interleaved rounds (random order) of \`run --rm busybox true\`; kernel ${os.release()}, ${os.cpus().length} cpus, load ${os.loadavg()[0].toFixed(2)}`);
const width = Math.max(...variants.map(([n]) => n.length));
console.log(`${'what'.padEnd(width)}  median ms   p10-p90 ms`);
for (const [name] of variants) {
  const xs = samples.get(name);
  console.log(`${name.padEnd(width)}  ${med(xs).toFixed(1).padStart(9)}   ${q(xs, 0.1).toFixed(0)}-${q(xs, 0.9).toFixed(0)}`);
}
// Paired within each round: drift between rounds cancels out.
const cost = (bridge, none) => samples.get(bridge).map((v, i) => v - samples.get(none)[i]);
const tsCost = cost('tsrun run --rm --network bridge', 'tsrun run --rm --network none');
console.log('the network\'s own cost (bridge - none, median of per-round differences):');
console.log(`  tsrun  ${med(tsCost).toFixed(1)} ms (p25-p75 ${q(tsCost, 0.25).toFixed(1)}..${q(tsCost, 0.75).toFixed(1)})`);
if (hasPodman) {
  const pmCost = cost('podman run --rm --network bridge', 'podman run --rm --network none');
  console.log(`  podman ${med(pmCost).toFixed(1)} ms (p25-p75 ${q(pmCost, 0.25).toFixed(1)}..${q(pmCost, 0.75).toFixed(1)})`);
  console.log(`  tsrun / podman: ${(med(tsCost) / med(pmCost)).toFixed(2)}`);
} else console.log('  podman, netavark or runc is not installed: no podman rows (apt-get install podman netavark runc)');

/** A free port on 127.0.0.1. */
const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });

/** Sends BYTES to 127.0.0.1:port once something listens there; resolves MiB/s once the receiver has closed. */
async function send(port) {
  const chunk = Buffer.alloc(1 << 20, 0x61);
  for (let attempt = 0; ; attempt++) {
    const r = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      let t0 = 0;
      let sent = 0;
      s.on('error', () => resolve(undefined));
      s.on('connect', () => {
        t0 = performance.now();
        const pump = () => {
          while (sent < GIB) {
            sent += chunk.length;
            if (!s.write(chunk)) return void s.once('drain', pump);
          }
          s.end();
        };
        pump();
      });
      s.setTimeout(30_000, () => s.destroy(new Error('stalled for 30 s')));
      s.on('close', () => resolve(sent >= GIB ? GIB / (1 << 20) / ((performance.now() - t0) / 1000) : undefined));
    });
    if (r !== undefined) return r;
    if (attempt > 100) throw new Error(`nothing accepted 1 GiB on 127.0.0.1:${port}`);
    await new Promise((r2) => setTimeout(r2, 100));
  }
}

const throughput = { tsrun: [], podman: [] };
for (let round = 0; round < ROUNDS; round++) {
  for (const who of hasPodman ? ['tsrun', 'podman'].sort(() => Math.random() - 0.5) : ['tsrun']) {
    const port = await freePort();
    const args = ['run', '--rm', '-p', `127.0.0.1:${port}:9000`, ...(who === 'podman' ? [...podmanLimits, 'docker.io/library/busybox:latest'] : ['busybox']), 'nc', '-l', '-p', '9000', '-e', 'sh', '-c', 'cat > /dev/null'];
    const child = who === 'tsrun' ? spawn(process.execPath, tsrunArgs(args), { stdio: 'ignore' }) : spawn('podman', podmanArgs(args), { stdio: 'ignore' });
    const ended = new Promise((r) => child.on('exit', r));
    const rate = await send(port);
    throughput[who].push(rate);
    console.error(`bench: network: round ${round + 1}, ${who}: ${rate.toFixed(0)} MiB/s`);
    await ended;
  }
}
console.log(`\nthroughput: ${(GIB / (1 << 20)).toFixed(0)} MiB from the host into a container through a port published on 127.0.0.1 (busybox nc -e cat), ${ROUNDS} interleaved rounds, MiB/s (median, min-max)`);
for (const who of Object.keys(throughput)) {
  const xs = throughput[who];
  if (xs.length) console.log(`  ${who.padEnd(7)} ${med(xs).toFixed(0).padStart(6)}   ${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)}`);
}
if (hasPodman) console.log(`  tsrun / podman: ${(med(throughput.tsrun) / med(throughput.podman)).toFixed(2)}`);
