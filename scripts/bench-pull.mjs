#!/usr/bin/env node
// npm run bench (seventh part): images to and from a registry.
//  - pull of a 5-layer image of about 300 MB uncompressed (made here: half
//    pseudo-random bytes, as compressed media are, half text from a seeded
//    generator) from Debian's docker-registry on 127.0.0.1 into an empty
//    store: `tsrun pull` (download, verify and unpack overlapped) beside
//    `podman pull` (private storage) and `skopeo copy docker://… oci:DIR`
//    + `umoci unpack`, rounds interleaved in a random order; each store is
//    removed between rounds, untimed.
//  - push of the same image to an empty registry: `tsrun push` beside
//    `skopeo copy oci:DIR docker://…`; the registry's storage is emptied
//    and the registry restarted between rounds, untimed.
// tsrun's rows run with NODE_EXTRA_CA_CERTS as the caller has it and
// without it (Node reads that file before anything else).
import crypto from 'node:crypto';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchWork, time, q, med, withCa, withoutCa, seededBytes, seededText } from './bench-work.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const project = path.resolve(here, '..');
const cli = path.join(project, 'dist', 'tsrun.js');
const N = Number(process.env.BENCH_N ?? 5);
const LAYER_MB = Number(process.env.BENCH_LAYER_MB ?? 60);

if (process.getuid() !== 0) {
  console.error('bench: needs root');
  process.exit(1);
}
const have = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
if (!have('docker-registry')) {
  console.error('bench: pull: docker-registry is not installed (apt-get install docker-registry); skipped');
  process.exit(0);
}
const { work, cleanups } = benchWork('tsrun-bench-pull-');

// The image: an OCI layout of 5 gzip layers, the same on every run.
const layout = path.join(work, 'layout');
fs.mkdirSync(path.join(layout, 'blobs', 'sha256'), { recursive: true });
const put = (bytes) => {
  const digest = `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`;
  fs.writeFileSync(path.join(layout, 'blobs', 'sha256', digest.slice(7)), bytes);
  return { digest, size: bytes.length };
};
const layers = [];
const diffIDs = [];
for (let l = 0; l < 5; l++) {
  const dir = path.join(work, `layer${l}`);
  const files = 30;
  const size = Math.floor((LAYER_MB * 1e6) / files);
  for (let i = 0; i < files; i++) {
    fs.mkdirSync(path.join(dir, `d${i % 5}`), { recursive: true });
    const body = i % 2 ? Buffer.from(seededText(size)) : seededBytes(`${l}:${i}`, size);
    fs.writeFileSync(path.join(dir, `d${i % 5}`, `f${l}-${i}`), body);
  }
  const tar = execFileSync('tar', ['-C', dir, '--numeric-owner', '--owner=0', '--group=0', '--mtime=@0', '--sort=name', '-c', '.'], { maxBuffer: 1 << 30 });
  diffIDs.push(`sha256:${crypto.createHash('sha256').update(tar).digest('hex')}`);
  layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...put(execFileSync('gzip', ['-n', '-6'], { input: tar, maxBuffer: 1 << 30 })) });
  fs.rmSync(dir, { recursive: true });
}
const config = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: diffIDs } })));
const manifest = put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers })));
fs.writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }] }));
const compressed = layers.reduce((n, l) => n + l.size, 0);

// The registry, on 127.0.0.1 only, with a config and storage of its own.
const port = 20000 + Math.floor(Math.random() * 20000);
const regDir = path.join(work, 'registry');
fs.mkdirSync(regDir);
fs.writeFileSync(path.join(regDir, 'config.yml'), `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${regDir}/data\nhttp:\n  addr: 127.0.0.1:${port}\n`);
let registry;
async function startRegistry() {
  registry = spawn('docker-registry', ['serve', path.join(regDir, 'config.yml')], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/v2/`)).ok) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('bench: the registry did not come up');
}
async function stopRegistry() {
  if (!registry || registry.exitCode !== null || registry.signalCode !== null) return;
  const gone = new Promise((r) => registry.once('exit', r));
  registry.kill('SIGKILL');
  await gone;
}
cleanups.push(() => registry?.kill('SIGKILL'));
await startRegistry();
const ref = `127.0.0.1:${port}/bench/big:latest`;
const skopeo = (args) => execFileSync('skopeo', args, { stdio: ['ignore', 'pipe', 'pipe'] });
skopeo(['copy', '--dest-tls-verify=false', `oci:${layout}:latest`, `docker://${ref}`]);

const scratch = (name) => path.join(work, name);
const tsrun = (storage, args, env = withCa) => execFileSync(process.execPath, [cli, '--root', scratch('state'), '--storage', storage, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
const podman = (args) => execFileSync('podman', ['--root', scratch('podman-root'), '--runroot', scratch('podman-run'), '--storage-driver', 'overlay', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
const hasPodman = have('podman');
const hasUmoci = have('skopeo') && have('umoci');
const wipe = (...dirs) => {
  for (const d of dirs) {
    spawnSync('sh', ['-c', `grep -o " ${d}[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l`]);
    fs.rmSync(d, { recursive: true, force: true });
  }
  // What a round wrote reaches the disk before the next starts: no round pays for another's writeback.
  spawnSync('sync');
};
if (hasPodman) cleanups.push(() => wipe(scratch('podman-root'), scratch('podman-run')));

const pulls = [
  ['tsrun pull', () => tsrun(scratch('ts-store'), ['pull', '-q', ref]), () => wipe(scratch('ts-store'))],
  ['tsrun pull (no NODE_EXTRA_CA_CERTS)', () => tsrun(scratch('ts-store'), ['pull', '-q', ref], withoutCa), () => wipe(scratch('ts-store'))],
];
if (hasPodman) pulls.push(['podman pull', () => podman(['pull', '-q', '--tls-verify=false', ref]), () => wipe(scratch('podman-root'), scratch('podman-run'))]);
if (hasUmoci) pulls.push(['skopeo copy + umoci unpack', () => {
  skopeo(['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${scratch('oci')}:latest`]);
  execFileSync('umoci', ['unpack', '--image', `${scratch('oci')}:latest`, scratch('bundle')], { stdio: 'ignore' });
}, () => wipe(scratch('oci'), scratch('bundle'))]);

// Push: tsrun from a store that holds the image, skopeo from the layout.
const source = scratch('push-store');
tsrun(source, ['pull', '-q', ref]);
const emptyRegistry = async () => {
  await stopRegistry();
  fs.rmSync(path.join(regDir, 'data'), { recursive: true, force: true });
  spawnSync('sync');
  await startRegistry();
};
const pushes = [
  ['tsrun push', () => tsrun(source, ['push', ref])],
  ['tsrun push (no NODE_EXTRA_CA_CERTS)', () => tsrun(source, ['push', ref], withoutCa)],
];
if (have('skopeo')) pushes.push(['skopeo copy to the registry', () => skopeo(['copy', '--dest-tls-verify=false', `oci:${layout}:latest`, `docker://${ref}`])]);

async function bench(variants, between) {
  const samples = new Map(variants.map(([name]) => [name, []]));
  for (let round = 0; round < N; round++) {
    for (const [name, run, undo] of [...variants].sort(() => Math.random() - 0.5)) {
      await between?.();
      samples.get(name).push(time(run));
      undo?.();
    }
    console.error(`bench: pull: round ${round + 1}/${N}`);
  }
  return samples;
}
const pulled = await bench(pulls);
const pushed = await bench(pushes, emptyRegistry);

const mb = (n) => (n / 1e6).toFixed(0);
console.log(`\nregistry: a 5-layer image, ${mb(5 * LAYER_MB * 1e6)} MB uncompressed, ${mb(compressed)} MB as gzip layers, from docker-registry on 127.0.0.1; ${N} interleaved rounds (random order); kernel ${os.release()}, ${os.cpus().length} cpus, load ${os.loadavg()[0].toFixed(2)}`);
const width = Math.max(...[...pulls, ...pushes].map(([name]) => name.length));
console.log(`${'what'.padEnd(width)}  median ms   p10-p90 ms`);
for (const samples of [pulled, pushed]) {
  for (const [name, xs] of samples) console.log(`${name.padEnd(width)}  ${med(xs).toFixed(0).padStart(9)}   ${q(xs, 0.1).toFixed(0)}-${q(xs, 0.9).toFixed(0)}`);
}
const ratio = (a, b, samples) => (samples.has(a) && samples.has(b) ? `${(med(samples.get(a)) / med(samples.get(b))).toFixed(2)}` : 'n/a');
console.log(`tsrun pull / podman pull: ${ratio('tsrun pull', 'podman pull', pulled)} (without NODE_EXTRA_CA_CERTS: ${ratio('tsrun pull (no NODE_EXTRA_CA_CERTS)', 'podman pull', pulled)})`);
console.log(`tsrun pull / skopeo copy + umoci unpack: ${ratio('tsrun pull', 'skopeo copy + umoci unpack', pulled)}`);
console.log(`tsrun push / skopeo copy: ${ratio('tsrun push', 'skopeo copy to the registry', pushed)}`);
process.exit(0);
