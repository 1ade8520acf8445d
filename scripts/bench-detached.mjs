#!/usr/bin/env node
// npm run bench (third part): what a detached container costs to hold, and
// how fast exec enters one.
//  - 20 detached `sleep` containers: resident (RSS) and proportional (PSS)
//    memory of tsrun's monitors beside podman's conmon for the same 20
//    containers (podman with runc: its default crun refuses hybrid hosts).
//  - exec latency: `tsrun exec ID true` beside `runc exec ID true`, rounds
//    interleaved.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchWork, podmanBusybox, time } from './bench-work.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const project = path.resolve(here, '..');
const cli = path.join(project, 'dist', 'tsrun.js');
const COUNT = Number(process.env.BENCH_DETACHED ?? 20);
const N = Number(process.env.BENCH_N ?? 30);

if (process.getuid() !== 0) {
  console.error('bench: needs root');
  process.exit(1);
}
const have = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const { work, cleanups } = benchWork('tsrun-bench-detached-');
const storage = path.join(work, 'storage');
const root = path.join(work, 'state');
const tsrun = (args, opts = {}) => execFileSync(process.execPath, [cli, '--root', root, '--storage', storage, ...args], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', ...opts });

/** kB from /proc/PID/smaps_rollup: Rss and Pss. */
function memoryOf(pid) {
  const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
  return { rss: kb('Rss'), pss: kb('Pss') };
}
function processesMatching(re) {
  return fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return re.test(fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' '));
      } catch {
        return false;
      }
    })
    .map(Number);
}
const sum = (xs, k) => xs.reduce((a, x) => a + x[k], 0);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

execFileSync(path.join(project, 'scripts', 'busybox-image.sh'), { env: { ...process.env, TSRUN_STORAGE: storage }, stdio: 'ignore' });

// tsrun: 20 detached containers, then their monitors' memory.
const ids = [];
cleanups.push(() => {
  for (const id of ids) {
    try {
      tsrun(['rm', '-f', id]);
    } catch (e) {
      console.error(`bench: rm -f ${id}: ${e.stderr ?? e.message}`);
    }
  }
});
for (let i = 0; i < COUNT; i++) ids.push(tsrun(['run', '-d', '--network', 'none', 'busybox', 'sleep', '3600']).trim());
await new Promise((r) => setTimeout(r, 500));
const monitors = processesMatching(new RegExp(`tsrun-monitor .*${storage}`)).map(memoryOf);

const rows = [['tsrun-monitor', monitors]];
let podmanNote = '';
if (have('podman') && have('conmon')) {
  const proot = path.join(work, 'podman');
  const podman = (args) => execFileSync('podman', ['--root', path.join(proot, 'root'), '--runroot', path.join(proot, 'run'), '--runtime', 'runc', ...args], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  podmanBusybox({ tsrun, podman, work, cleanups });
  // Without CAP_SYS_RESOURCE podman's default rlimits (above the hard limit) fail.
  for (let i = 0; i < COUNT; i++) podman(['run', '-d', '--network', 'none', '--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=32768:32768', 'docker.io/library/busybox:latest', 'sleep', '3600']);
  await new Promise((r) => setTimeout(r, 500));
  rows.push(['conmon (podman)', processesMatching(new RegExp(`^/usr/bin/conmon .*${proot}`)).map(memoryOf)]);
} else podmanNote = '\npodman/conmon are not installed: the conmon row is skipped (apt-get install podman)';

console.log(`\n${COUNT} detached \`sleep 3600\` containers: memory of what holds them (kB, from /proc/PID/smaps_rollup)`);
console.log(`${'holder'.padEnd(18)} ${'count'.padStart(5)} ${'RSS total'.padStart(10)} ${'RSS each'.padStart(9)} ${'PSS total'.padStart(10)} ${'PSS each'.padStart(9)}`);
for (const [name, m] of rows) {
  console.log(`${name.padEnd(18)} ${String(m.length).padStart(5)} ${String(sum(m, 'rss')).padStart(10)} ${(sum(m, 'rss') / Math.max(m.length, 1)).toFixed(0).padStart(9)} ${String(sum(m, 'pss')).padStart(10)} ${(sum(m, 'pss') / Math.max(m.length, 1)).toFixed(0).padStart(9)}`);
}
if (rows.length > 1) {
  const [t, c] = [rows[0][1], rows[1][1]];
  console.log(`tsrun / conmon: RSS ${(sum(t, 'rss') / sum(c, 'rss')).toFixed(2)}, PSS ${(sum(t, 'pss') / sum(c, 'pss')).toFixed(2)}`);
}
console.log(podmanNote);

// exec latency beside runc exec.
const target = ids[0];
const lat = { tsrun: [], runc: [] };
let runcId = null;
const runcRoot = path.join(work, 'runc-state');
if (have('runc')) {
  const bundle = path.join(work, 'runc-bundle');
  execFileSync(path.join(project, 'scripts', 'busybox-bundle.sh'), [bundle, 'sleep', '3600'], { stdio: 'ignore' });
  runcId = `bench-exec-${process.pid}`;
  execFileSync('runc', ['--root', runcRoot, 'run', '-d', '--bundle', bundle, runcId], { stdio: 'ignore' });
  cleanups.push(() => execFileSync('runc', ['--root', runcRoot, 'delete', '--force', runcId], { stdio: 'ignore' }));
}
tsrun(['exec', target, 'true']);
if (runcId) execFileSync('runc', ['--root', runcRoot, 'exec', runcId, 'true']);
for (let i = 0; i < N; i++) {
  lat.tsrun.push(time(() => tsrun(['exec', target, 'true'])));
  if (runcId) lat.runc.push(time(() => execFileSync('runc', ['--root', runcRoot, 'exec', runcId, 'true'])));
}
console.log(`exec latency, ${N} interleaved runs of \`exec ID true\` (median ms)`);
console.log(`  tsrun exec ${median(lat.tsrun).toFixed(1).padStart(7)}`);
if (runcId) {
  console.log(`  runc exec  ${median(lat.runc).toFixed(1).padStart(7)}`);
  console.log(`  tsrun / runc: ${(median(lat.tsrun) / median(lat.runc)).toFixed(2)}`);
} else console.log('  runc is not installed: no runc row');
