#!/usr/bin/env node
// npm run bench (sixth part): moving files in and out of containers.
//  - `cp` of a 200 MB tree (400 files of 500 kB in 20 directories: half
//    random bytes, as compressed media are, half text from a seeded
//    generator, as sources and logs are) from the host into a running
//    container, tsrun beside `podman
//    cp` (runc), rounds interleaved in a random order; the copy is removed
//    between rounds, untimed.
//  - `commit` of a container whose writable layer holds that tree (a new
//    gzip layer each time), tsrun beside `podman commit`; the image is
//    removed between rounds, untimed.
// tsrun's rows run with NODE_EXTRA_CA_CERTS as the caller has it and
// without it (Node reads that file before anything else).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchWork, podmanBusybox, time, q, med, withCa, withoutCa, seededBytes, seededText } from './bench-work.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const project = path.resolve(here, '..');
const cli = path.join(project, 'dist', 'tsrun.js');
const N = Number(process.env.BENCH_N ?? 7);
const MB = Number(process.env.BENCH_TREE_MB ?? 200);

if (process.getuid() !== 0) {
  console.error('bench: needs root');
  process.exit(1);
}
const have = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const { work, cleanups } = benchWork('tsrun-bench-volume-');
const storage = path.join(work, 'storage');
const root = path.join(work, 'state');
const proot = path.join(work, 'podman');

const tsrun = (args, env = withCa) => execFileSync(process.execPath, [cli, '--root', root, '--storage', storage, ...args], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', env, maxBuffer: 64 << 20 });
const podman = (args) => execFileSync('podman', ['--root', path.join(proot, 'root'), '--runroot', path.join(proot, 'run'), '--runtime', 'runc', ...args], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });

// The tree, the same on every run: gzip in commit meets both kinds of content.
const tree = path.join(work, 'tree');
const files = 400;
const size = Math.floor((MB * 1e6) / files);
for (let d = 0; d < 20; d++) fs.mkdirSync(path.join(tree, `d${d}`), { recursive: true });
for (let i = 0; i < files; i++) {
  // Random half from a seeded stream too (sha256 in counter mode).
  const body = i % 2 ? Buffer.from(seededText(size)) : seededBytes(i, size);
  fs.writeFileSync(path.join(tree, `d${i % 20}`, `f${i}`), body);
}

execFileSync(path.join(project, 'scripts', 'busybox-image.sh'), { env: { ...process.env, TSRUN_STORAGE: storage }, stdio: 'ignore' });
const hasPodman = have('podman') && have('runc');
const podmanLimits = ['--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=32768:32768'];
const tsBox = tsrun(['run', '-d', '--network', 'none', 'busybox', 'sleep', '1d']).trim();
const tsLayer = tsrun(['run', '-d', '--network', 'none', 'busybox', 'sleep', '1d']).trim();
tsrun(['cp', tree, `${tsLayer}:/tree`]);
cleanups.push(() => tsrun(['rm', '-f', tsBox, tsLayer]));
let pmBox = '';
let pmLayer = '';
if (hasPodman) {
  podmanBusybox({ tsrun, podman, work, cleanups });
  pmBox = podman(['run', '-d', ...podmanLimits, 'docker.io/library/busybox:latest', 'sleep', '1d']).trim();
  pmLayer = podman(['run', '-d', ...podmanLimits, 'docker.io/library/busybox:latest', 'sleep', '1d']).trim();
  podman(['cp', tree, `${pmLayer}:/tree`]);
}

let n = 0;
const variants = [
  ['tsrun cp', (env) => tsrun(['cp', tree, `${tsBox}:/copy`], env), () => tsrun(['exec', tsBox, 'rm', '-rf', '/copy']), 'cp'],
  ['tsrun commit', (env) => tsrun(['commit', tsLayer, `bench:${++n}`], env), () => tsrun(['rmi', `bench:${n}`]), 'commit'],
].flatMap(([name, run, undo, kind]) => [
  [name, () => run(withCa), undo, kind],
  [`${name} (no NODE_EXTRA_CA_CERTS)`, () => run(withoutCa), undo, kind],
]);
if (hasPodman) {
  variants.push(['podman cp', () => podman(['cp', tree, `${pmBox}:/copy`]), () => podman(['exec', pmBox, 'rm', '-rf', '/copy']), 'cp']);
  variants.push(['podman commit', () => podman(['commit', pmLayer, `localhost/bench:${++n}`]), () => podman(['rmi', `localhost/bench:${n}`]), 'commit']);
}
for (const [, run, undo] of variants) {
  run(); // warm-up
  undo();
}
const samples = new Map(variants.map(([name]) => [name, []]));
for (let round = 0; round < N; round++) {
  for (const [name, run, undo] of [...variants].sort(() => Math.random() - 0.5)) {
    samples.get(name).push(time(run));
    undo();
  }
  console.error(`bench: volume: round ${round + 1}/${N}`);
}

console.log(`\nfiles in and out of containers: ${N} interleaved rounds (random order), a ${MB} MB tree of ${files} files; kernel ${os.release()}, ${os.cpus().length} cpus, load ${os.loadavg()[0].toFixed(2)}`);
const width = Math.max(...variants.map(([name]) => name.length));
console.log(`${'what'.padEnd(width)}  median ms   p10-p90 ms`);
for (const [name] of variants) {
  const xs = samples.get(name);
  console.log(`${name.padEnd(width)}  ${med(xs).toFixed(0).padStart(9)}   ${q(xs, 0.1).toFixed(0)}-${q(xs, 0.9).toFixed(0)}`);
}
if (hasPodman) {
  for (const kind of ['cp', 'commit']) console.log(`tsrun ${kind} / podman ${kind}: ${(med(samples.get(`tsrun ${kind}`)) / med(samples.get(`podman ${kind}`))).toFixed(2)} (without NODE_EXTRA_CA_CERTS: ${(med(samples.get(`tsrun ${kind} (no NODE_EXTRA_CA_CERTS)`)) / med(samples.get(`podman ${kind}`))).toFixed(2)})`);
} else console.log('podman or runc is not installed: no podman rows (apt-get install podman runc)');
