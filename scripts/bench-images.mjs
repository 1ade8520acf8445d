#!/usr/bin/env node
// npm run bench (images part): unpacking one large gzip layer with tsrun,
// `tar -xzf` and `umoci unpack`, interleaved, on tmpfs; then creating a
// container from a small and from a large cached image (the overlay makes
// them cost the same); then `tsrun run IMG true` beside `podman run`.
//
// The layer is a gzip tarball of /usr/share and /usr/include (tens of
// thousands of files), made once and kept in /var/tmp for later runs.
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const project = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(project, 'dist', 'tsrun.js');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const RUNS = Number(process.env.BENCH_N ?? 20);
const have = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const sh = (cmd, opts = {}) => execFileSync('sh', ['-c', cmd], { stdio: ['ignore', 'pipe', 'inherit'], ...opts });
const time = (fn) => {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
};
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

if (process.getuid() !== 0) {
  console.error('bench-images: needs root');
  process.exit(1);
}

// Everything happens on a tmpfs: the root disk's file creation speed swings
// with what was deleted just before.
const work = fs.mkdtempSync('/dev/shm/tsrun-bench-img-');
const cleanup = () => {
  // podman leaves its storage's overlay mount behind: detach whatever is mounted under work first.
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m && m.startsWith(work));
  for (const m of mounts.sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', m]);
  fs.rmSync(work, { recursive: true, force: true });
};
process.on('exit', cleanup);

const layer = '/var/tmp/tsrun-bench-layer.tar.gz';
if (!fs.existsSync(layer)) {
  console.log('making the benchmark layer (gzip of /usr/share and /usr/include), once ...');
  sh(`tar -C / -cf - usr/share usr/include 2>/dev/null | gzip -6 > ${layer}.tmp && mv ${layer}.tmp ${layer}`);
}
const layerSize = fs.statSync(layer).size;
const entries = Number(sh(`gzip -dc ${layer} | tar -tf - | wc -l`).toString().trim());

// An OCI layout with that one layer, for umoci.
const layout = path.join(work, 'layout');
fs.mkdirSync(path.join(layout, 'blobs', 'sha256'), { recursive: true });
const put = (file, data) => {
  const digest = data ? crypto.createHash('sha256').update(data).digest('hex') : sh(`sha256sum ${file}`).toString().split(' ')[0];
  const dest = path.join(layout, 'blobs', 'sha256', digest);
  if (data) fs.writeFileSync(dest, data);
  else fs.copyFileSync(file, dest);
  return { digest: `sha256:${digest}`, size: fs.statSync(dest).size };
};
const layerDesc = put(layer);
const diffID = 'sha256:' + sh(`gzip -dc ${layer} | sha256sum`).toString().split(' ')[0];
const config = JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [diffID] } });
const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...put(null, config) }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layerDesc }] });
const m = put(null, manifest);
fs.writeFileSync(path.join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, annotations: { 'org.opencontainers.image.ref.name': 'big' } }] }));

const unpackScript = `require(${JSON.stringify(path.join(project, 'dist', 'image', 'unpack.js'))}).unpackLayer(process.argv[1], process.argv[2], { expectDigest: process.argv[3], expectDiffID: process.argv[4] }).catch((e) => { console.error(e.message); process.exit(1); })`;
const tools = [
  ['gzip -dc (decompression alone)', (d) => sh(`gzip -dc ${layer} > /dev/null`)],
  ['tar -xzf', (d) => sh(`mkdir ${d} && tar -C ${d} -xzf ${layer}`)],
  ['tsrun unpack (digests checked)', (d) => execFileSync(process.execPath, ['-e', unpackScript, layer, d, layerDesc.digest, diffID], { stdio: 'inherit' })],
];
if (have('umoci')) tools.push(['umoci unpack', (d) => sh(`umoci unpack --image ${layout}:big ${d} > /dev/null`)]);

console.log(`\nunpack: one gzip layer of ${(layerSize / 1e6).toFixed(0)} MB, ${entries} entries, on tmpfs; ${ROUNDS} interleaved rounds`);
const results = new Map(tools.map(([n]) => [n, []]));
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, fn] of tools) {
    const d = path.join(work, `out-${r}-${crypto.randomBytes(3).toString('hex')}`);
    results.get(name).push(time(() => fn(d)));
    fs.rmSync(d, { recursive: true, force: true });
  }
}
const tarMs = median(results.get('tar -xzf'));
for (const [name, xs] of results) console.log(`  ${name.padEnd(32)} ${(median(xs) / 1000).toFixed(2).padStart(7)} s   ${(median(xs) / tarMs).toFixed(2)}x tar`);

// Container creation from cached images: 5 MB-ish and large, same time.
const storage = path.join(work, 'store');
const ts = (args, opts = {}) => execFileSync(process.execPath, [cli, '--storage', storage, '--root', path.join(work, 'state'), ...args], { stdio: ['ignore', 'pipe', 'inherit'], ...opts });
sh(`TSRUN_STORAGE=${storage} ${project}/scripts/busybox-image.sh small > /dev/null`);
const bbLayout = path.join(work, 'bb.tar');
ts(['save', '-o', bbLayout, 'small']);
console.log(`\nrun --rm IMG true from a cached image, ${RUNS} interleaved runs`);
const runs = new Map([
  ['small image (busybox, 1 layer)', []],
  ['large image (+ the big layer)', []],
]);
// The large image: busybox with the big layer on top, so `true` exists.
const big2 = path.join(work, 'layout2');
fs.cpSync(layout, big2, { recursive: true });
const smallImg = JSON.parse(ts(['image', 'inspect', 'small']).toString())[0];
for (const l of smallImg.Manifest.layers) fs.copyFileSync(path.join(storage, 'blobs', 'sha256', l.digest.slice(7)), path.join(big2, 'blobs', 'sha256', l.digest.slice(7)));
const config2 = JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['true'] }, rootfs: { type: 'layers', diff_ids: [...smallImg.Config.rootfs.diff_ids, diffID] } });
const cfg2 = crypto.createHash('sha256').update(config2).digest('hex');
fs.writeFileSync(path.join(big2, 'blobs', 'sha256', cfg2), config2);
const manifest2 = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${cfg2}`, size: config2.length }, layers: [...smallImg.Manifest.layers, { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layerDesc }] });
const m2 = crypto.createHash('sha256').update(manifest2).digest('hex');
fs.writeFileSync(path.join(big2, 'blobs', 'sha256', m2), manifest2);
fs.writeFileSync(path.join(big2, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${m2}`, size: manifest2.length, annotations: { 'org.opencontainers.image.ref.name': 'docker.io/library/large:latest' } }] }));
ts(['load', '-i', big2]);
ts(['run', '--rm', '--network', 'none', 'small', 'true']);
ts(['run', '--rm', '--network', 'none', 'large', 'true']); // unpacks the big layer once
for (let i = 0; i < RUNS; i++) {
  runs.get('small image (busybox, 1 layer)').push(time(() => ts(['run', '--rm', '--network', 'none', 'small', 'true'])));
  runs.get('large image (+ the big layer)').push(time(() => ts(['run', '--rm', '--network', 'none', 'large', 'true'])));
}
const smallMs = median(runs.get('small image (busybox, 1 layer)'));
for (const [name, xs] of runs) console.log(`  ${name.padEnd(32)} ${median(xs).toFixed(1).padStart(7)} ms   ${(median(xs) / smallMs).toFixed(2)}x small`);

if (have('podman')) {
  console.log(`\ntsrun run --rm IMG true vs podman run --rm IMG true (busybox image, --network none), ${RUNS} interleaved runs`);
  const proot = path.join(work, 'podman');
  // runc: podman's default crun refuses hybrid cgroup hosts like these.
  const podman = (args) => execFileSync('podman', ['--root', path.join(proot, 'root'), '--runroot', path.join(proot, 'run'), '--runtime', 'runc', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  podman(['load', '-i', bbLayout]);
  const pargs = ['run', '--rm', '--network', 'none', '--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=32768:32768', 'docker.io/library/small:latest', 'true'];
  podman(pargs);
  const t1 = [];
  const t2 = [];
  for (let i = 0; i < RUNS; i++) {
    t1.push(time(() => ts(['run', '--rm', '--network', 'none', 'small', 'true'])));
    t2.push(time(() => podman(pargs)));
  }
  console.log(`  tsrun run --rm ${median(t1).toFixed(1).padStart(8)} ms`);
  console.log(`  podman run --rm ${median(t2).toFixed(1).padStart(7)} ms`);
  console.log(`  tsrun / podman: ${(median(t1) / median(t2)).toFixed(2)}`);
  try {
    podman(['system', 'reset', '--force']);
  } catch {
    /* best effort */
  }
} else console.log('\npodman is not installed: the tsrun vs podman row is skipped (apt-get install podman)');
