#!/usr/bin/env node
// npm run bench: sequential /bin/true containers from one busybox bundle,
// tsrun beside the runtimes installed here (runc, crun, bubblewrap), rounds
// interleaved so that drift hits every tool alike. Prints medians and ratios.
//
// crun 1.8 refuses this kind of hybrid cgroup host unless the cgroup2 mount
// at /sys/fs/cgroup/unified is out of sight, so the whole benchmark re-runs
// itself in a private mount namespace with it unmounted (the host is left as
// it is); every tool runs there, runc as the control.
import { spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const project = path.resolve(here, '..');
const N = Number(process.env.BENCH_N ?? 30);
const cli = path.join(project, 'dist', 'tsrun.js');

if (process.getuid() !== 0) {
  console.error('bench: needs root (containers need namespaces)');
  process.exit(1);
}
const mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8');
if (!process.env.TSRUN_BENCH_INNER && / \/sys\/fs\/cgroup\/unified .* - cgroup2 /.test(mountinfo)) {
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `umount /sys/fs/cgroup/unified && exec "${process.execPath}" "${fileURLToPath(import.meta.url)}"`], {
    stdio: 'inherit',
    env: { ...process.env, TSRUN_BENCH_INNER: '1' },
  });
  process.exit(r.status ?? 1);
}

const which = (cmd) => {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
};

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-bench-'));
const cleanups = [() => fs.rmSync(work, { recursive: true, force: true })];
process.on('exit', () => cleanups.reverse().forEach((f) => f()));

function bundle(name, edit) {
  const dir = path.join(work, name);
  execFileSync(path.join(project, 'scripts', 'busybox-bundle.sh'), [dir, '/bin/true'], { stdio: 'ignore' });
  const file = path.join(dir, 'config.json');
  const spec = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit?.(spec);
  fs.writeFileSync(file, JSON.stringify(spec, null, 2));
  return dir;
}
const withNet = bundle('net');
const noNet = bundle('nonet', (s) => (s.linux.namespaces = s.linux.namespaces.filter((n) => n.type !== 'network')));

const tsrunRoot = path.join(work, 'tsrun-state');
const runcRoot = path.join(work, 'runc-state');
const crunRoot = path.join(work, 'crun-state');
let seq = 0;
const id = () => `bench-${process.pid}-${++seq}`;

/** name -> function that runs one container and returns its wall time in ms */
const tools = [];
function cliTool(name, file, args) {
  tools.push({
    name,
    run() {
      const t0 = process.hrtime.bigint();
      const r = spawnSync(file, args(), { stdio: ['ignore', 'ignore', 'pipe'] });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r.status !== 0) throw new Error(`${name} failed (${r.status}): ${r.stderr}`);
      return ms;
    },
  });
}

cliTool('node -e 0 (floor of any Node CLI)', process.execPath, () => ['-e', '0']);
cliTool('tsrun --version (CLI start-up)', process.execPath, () => [cli, '--version']);
for (const [label, dir] of [
  ['with netns', withNet],
  ['no netns', noNet],
]) {
  cliTool(`tsrun run (${label})`, process.execPath, () => [cli, '--root', tsrunRoot, 'run', '--bundle', dir, id()]);
  const runc = which('runc');
  if (runc) cliTool(`runc run (${label})`, runc, () => ['--root', runcRoot, 'run', '--bundle', dir, id()]);
  const crun = which('crun');
  if (crun) cliTool(`crun run (${label})`, crun, () => ['--root', crunRoot, 'run', '--bundle', dir, id()]);
}
const bwrap = which('bwrap');
if (bwrap) {
  const rootfs = path.join(withNet, 'rootfs');
  cliTool('bwrap (all namespaces)', bwrap, () => ['--unshare-all', '--ro-bind', rootfs, '/', '--proc', '/proc', '--dev', '/dev', '/bin/true']);
}

// The warm path: many containers from one Node process through the library.
const lib = await import(path.join(project, 'dist', 'index.js'));
const warm = { name: 'tsrun library, warm (with netns)', samples: [] };

const results = new Map(tools.map((t) => [t.name, []]));
for (const t of tools) t.run(); // one warm-up each: page cache, first-time costs
await lib.runContainer({ id: id(), bundle: withNet, root: tsrunRoot });
for (let round = 0; round < N; round++) {
  for (const t of tools) results.get(t.name).push(t.run());
  const t0 = process.hrtime.bigint();
  const code = await lib.runContainer({ id: id(), bundle: withNet, root: tsrunRoot });
  warm.samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  if (code !== 0) throw new Error(`library run exited ${code}`);
}
results.set(warm.name, warm.samples);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const med = new Map([...results].map(([k, v]) => [k, median(v)]));
const ref = med.get('crun run (with netns)') ?? med.get('runc run (with netns)');
const refName = med.has('crun run (with netns)') ? 'crun' : 'runc';
const width = Math.max(...[...med.keys()].map((k) => k.length));
console.log(`\n${N} sequential containers per row, /bin/true from a busybox bundle; kernel ${os.release()}, ${os.cpus().length} cpus`);
console.log(`${'what'.padEnd(width)}  median ms  vs ${refName} (with netns)`);
for (const [k, v] of med) console.log(`${k.padEnd(width)}  ${v.toFixed(1).padStart(9)}  ${ref ? (v / ref).toFixed(2) + 'x' : '-'}`);
const node0 = med.get('node -e 0 (floor of any Node CLI)');
const ver = med.get('tsrun --version (CLI start-up)');
console.log(`\ntsrun CLI start-up over node -e 0: ${(ver - node0).toFixed(1)} ms`);
const tr = med.get('tsrun run (with netns)');
if (med.has('runc run (with netns)')) console.log(`tsrun run / runc run (with netns): ${(tr / med.get('runc run (with netns)')).toFixed(2)}`);
if (med.has('crun run (with netns)')) console.log(`tsrun run / crun run (with netns): ${(tr / med.get('crun run (with netns)')).toFixed(2)}`);
if (ref) console.log(`tsrun library warm / ${refName} run (with netns): ${(med.get(warm.name) / ref).toFixed(2)}`);
