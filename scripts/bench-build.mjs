#!/usr/bin/env node
// npm run bench (eighth part): building an image from a Dockerfile.
// One multi-stage Dockerfile from Alpine (a WORKDIR, a COPY of a 2 MB source
// tree of 200 seeded text files, a RUN that digests and packs it, then a
// second stage that copies the result --from the first and unpacks it),
// built by tsrun and by `buildah bud` (runc, its own storage under the
// benchmark's directory, overlay driver), rounds interleaved in a random
// order:
//  - cold: --no-cache, every step runs (the image is removed between rounds, untimed);
//  - cached: an unchanged rebuild (tsrun's cache; buildah's --layers).
// tsrun's rows run with NODE_EXTRA_CA_CERTS as the caller has it and
// without it (Node reads that file before anything else).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchWork, time, q, med, withCa, withoutCa, seededText } from './bench-work.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const project = path.resolve(here, '..');
const cli = path.join(project, 'dist', 'tsrun.js');
const N = Number(process.env.BENCH_N ?? 9);
const ALPINE = path.resolve(project, '..', 'shared', 'images', 'alpine-minirootfs-3.20.3-x86_64.tar.gz');

if (process.getuid() !== 0) {
  console.error('bench: needs root');
  process.exit(1);
}
if (!fs.existsSync(ALPINE)) {
  console.error(`bench: build: needs the Alpine image ${ALPINE}`);
  process.exit(1);
}
const have = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const { work, cleanups } = benchWork('tsrun-bench-build-');
const storage = path.join(work, 'storage');
const root = path.join(work, 'state');
const bh = path.join(work, 'buildah');

const tsrun = (args, env = withCa) => execFileSync(process.execPath, [cli, '--root', root, '--storage', storage, ...args], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', env, maxBuffer: 64 << 20 });
const buildah = (args) => execFileSync('buildah', ['--root', path.join(bh, 'root'), '--runroot', path.join(bh, 'run'), '--storage-driver', 'overlay', ...args], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });

const ctx = path.join(work, 'context');
for (let i = 0; i < 200; i++) {
  fs.mkdirSync(path.join(ctx, 'src', `pkg${i % 10}`), { recursive: true });
  fs.writeFileSync(path.join(ctx, 'src', `pkg${i % 10}`, `file${i}.txt`), seededText(10_000));
}
fs.writeFileSync(
  path.join(ctx, 'Dockerfile'),
  `FROM alpine:3.20 AS build
WORKDIR /src
COPY src/ ./
RUN find . -type f | sort | xargs cat | sha256sum > /digest && tar -czf /app.tgz .

FROM alpine:3.20
COPY --from=build /app.tgz /digest /opt/
RUN mkdir -p /srv && tar -xzf /opt/app.tgz -C /srv
CMD ["cat", "/opt/digest"]
`,
);

tsrun(['import', ALPINE, 'alpine:3.20']);
const hasBuildah = have('buildah') && have('runc');
const bud = (extra) => buildah(['bud', '--pull=never', '--runtime', 'runc', '--isolation', 'oci', '--network', 'none', ...extra, '-t', 'bench', ctx]);
if (hasBuildah) {
  const archive = path.join(work, 'alpine.tar');
  tsrun(['save', '-o', archive, 'alpine:3.20']);
  buildah(['pull', '-q', `oci-archive:${archive}`]);
  cleanups.push(() => {
    spawnSync('buildah', ['--root', path.join(bh, 'root'), '--runroot', path.join(bh, 'run'), '--storage-driver', 'overlay', 'rm', '-a'], { stdio: 'ignore' });
    spawnSync('buildah', ['--root', path.join(bh, 'root'), '--runroot', path.join(bh, 'run'), '--storage-driver', 'overlay', 'rmi', '-a', '-f'], { stdio: 'ignore' });
  });
}

const tsBuild = (flags, env) => tsrun(['build', '-q', '--network', 'none', ...flags, '-t', 'bench', ctx], env);
const tsUndo = () => tsrun(['rmi', 'bench']);
const variants = [
  ['tsrun cold', () => tsBuild(['--no-cache'], withCa), tsUndo, 'cold'],
  ['tsrun cold (no NODE_EXTRA_CA_CERTS)', () => tsBuild(['--no-cache'], withoutCa), tsUndo, 'cold'],
  ['tsrun cached', () => tsBuild([], withCa), () => {}, 'cached'],
  ['tsrun cached (no NODE_EXTRA_CA_CERTS)', () => tsBuild([], withoutCa), () => {}, 'cached'],
];
if (hasBuildah) {
  variants.push(['buildah bud cold', () => bud(['--layers', '--no-cache']), () => buildah(['rmi', 'bench']), 'cold']);
  variants.push(['buildah bud cached', () => bud(['--layers']), () => {}, 'cached']);
}
// The cached rows need one build of each to reuse; the warm-up is that build.
tsBuild([], withCa);
if (hasBuildah) bud(['--layers']);
for (const [, run, undo] of variants) {
  run();
  undo();
}
const samples = new Map(variants.map(([name]) => [name, []]));
for (let round = 0; round < N; round++) {
  for (const [name, run, undo] of [...variants].sort(() => Math.random() - 0.5)) {
    samples.get(name).push(time(run));
    undo();
  }
  console.error(`bench: build: round ${round + 1}/${N}`);
}
// The image runs and prints its digest: the build is checked, not just timed.
tsBuild([], withCa);
const digest = tsrun(['run', '--rm', '--network', 'none', 'bench']).trim();
if (!/^[0-9a-f]{64}  -$/.test(digest)) throw new Error(`bench: build: the built image printed ${JSON.stringify(digest)}`);

console.log(`\nbuild: ${N} interleaved rounds (random order), a two-stage Dockerfile from Alpine with a 2 MB context; kernel ${os.release()}, ${os.cpus().length} cpus, load ${os.loadavg()[0].toFixed(2)}`);
const width = Math.max(...variants.map(([name]) => name.length));
console.log(`${'what'.padEnd(width)}  median ms   p10-p90 ms`);
for (const [name] of variants) {
  const xs = samples.get(name);
  console.log(`${name.padEnd(width)}  ${med(xs).toFixed(0).padStart(9)}   ${q(xs, 0.1).toFixed(0)}-${q(xs, 0.9).toFixed(0)}`);
}
if (hasBuildah) {
  for (const kind of ['cold', 'cached']) console.log(`tsrun ${kind} / buildah bud ${kind}: ${(med(samples.get(`tsrun ${kind}`)) / med(samples.get(`buildah bud ${kind}`))).toFixed(2)} (without NODE_EXTRA_CA_CERTS: ${(med(samples.get(`tsrun ${kind} (no NODE_EXTRA_CA_CERTS)`)) / med(samples.get(`buildah bud ${kind}`))).toFixed(2)})`);
} else console.log('buildah or runc is not installed: no buildah rows (apt-get install buildah runc)');
