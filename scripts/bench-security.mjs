#!/usr/bin/env node
// The start-up cost of confinement: a seccomp filter (Docker's default
// rules, as run IMAGE applies them) and the session keyring, on `run
// --bundle` and on the library's warm path, beside runc with the same
// filter. Rounds are interleaved in a random order each round; prints
// medians, the spread (10th-90th percentile) and the differences.
import { spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { q, med } from './bench-work.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const project = path.resolve(here, '..');
const N = Number(process.env.BENCH_N ?? 60);
const cli = path.join(project, 'dist', 'tsrun.js');
if (process.getuid() !== 0) {
  console.error('bench: needs root (containers need namespaces)');
  process.exit(1);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-bench-sec-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));
const { defaultSeccomp } = await import(path.join(project, 'dist', 'security', 'seccomp-profile.js'));
const { DOCKER_CAPABILITIES } = await import(path.join(project, 'dist', 'image', 'runtime-config.js'));
const { compileSeccomp } = await import(path.join(project, 'dist', 'security', 'seccomp.js'));
const lib = await import(path.join(project, 'dist', 'index.js'));
const seccomp = defaultSeccomp(DOCKER_CAPABILITIES);

function bundle(name, edit) {
  const dir = path.join(work, name);
  execFileSync(path.join(project, 'scripts', 'busybox-bundle.sh'), [dir, '/bin/true'], { stdio: 'ignore' });
  const file = path.join(dir, 'config.json');
  const spec = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit?.(spec);
  fs.writeFileSync(file, JSON.stringify(spec, null, 2));
  return dir;
}
const plain = bundle('plain');
const filtered = bundle('seccomp', (s) => (s.linux.seccomp = seccomp));
const filteredNnp = bundle('seccomp-nnp', (s) => {
  s.linux.seccomp = seccomp;
  s.process.noNewPrivileges = true;
});

let seq = 0;
const id = () => `bench-sec-${process.pid}-${++seq}`;
const root = path.join(work, 'state');
const runcRoot = path.join(work, 'runc-state');
const which = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim() || null;
const runc = which('runc');

const cliRun = (file, args) => () => {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(file, args(), { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${file} ${args().join(' ')} failed (${r.status}): ${r.stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
};
const libRun = (dir, extra = {}) => async () => {
  const t0 = process.hrtime.bigint();
  const code = await lib.runContainer({ id: id(), bundle: dir, root, ...extra });
  if (code !== 0) throw new Error(`library run exited ${code}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
};

const rows = [
  ['library: no filter, no new keyring', libRun(plain, { noNewKeyring: true })],
  ['library: no filter, keyring', libRun(plain)],
  ['library: filter, keyring', libRun(filtered)],
  ['library: filter + no_new_privs, keyring', libRun(filteredNnp)],
  ['tsrun run --bundle: no filter, --no-new-keyring', cliRun(process.execPath, () => [cli, '--root', root, 'run', '--no-new-keyring', '--bundle', plain, id()])],
  ['tsrun run --bundle: no filter, keyring', cliRun(process.execPath, () => [cli, '--root', root, 'run', '--bundle', plain, id()])],
  ['tsrun run --bundle: filter, keyring', cliRun(process.execPath, () => [cli, '--root', root, 'run', '--bundle', filtered, id()])],
];
if (runc) {
  rows.push(['runc run: no filter', cliRun(runc, () => ['--root', runcRoot, 'run', '--bundle', plain, id()])]);
  rows.push(['runc run: filter', cliRun(runc, () => ['--root', runcRoot, 'run', '--bundle', filtered, id()])]);
}

const samples = new Map(rows.map(([name]) => [name, []]));
for (const [, run] of rows) await run(); // warm-up
for (let round = 0; round < N; round++) {
  const order = [...rows].sort(() => Math.random() - 0.5);
  for (const [name, run] of order) samples.get(name).push(await run());
}
// The filter's compile (libseccomp, in the runtime): the first build, then the cache.
const compile = [];
for (let i = 0; i < 200; i++) {
  const t0 = process.hrtime.bigint();
  compileSeccomp(seccomp);
  compile.push(Number(process.hrtime.bigint() - t0) / 1e6);
}

const width = Math.max(...rows.map(([n]) => n.length));
const program = compileSeccomp(seccomp);
console.log(`\nconfinement at start-up: ${N} interleaved rounds (random order), /bin/true from a busybox bundle; kernel ${os.release()}, ${os.cpus().length} cpus, load ${os.loadavg()[0].toFixed(2)}`);
console.log(`filter: the default profile for Docker's capabilities, ${program.instructions} BPF instructions`);
console.log(`${'what'.padEnd(width)}  median ms   p10-p90 ms`);
for (const [name] of rows) {
  const xs = samples.get(name);
  console.log(`${name.padEnd(width)}  ${med(xs).toFixed(2).padStart(9)}   ${q(xs, 0.1).toFixed(1)}-${q(xs, 0.9).toFixed(1)}`);
}
// Differences paired within each round, then their median: drift between rounds cancels out.
const d = (a, b) => {
  const xs = samples.get(a).map((v, i) => v - samples.get(b)[i]);
  return `${med(xs).toFixed(2)} ms (p25-p75 ${q(xs, 0.25).toFixed(2)}..${q(xs, 0.75).toFixed(2)})`;
};
console.log(`\ncompile of the filter alone (libseccomp, then cached): median ${med(compile).toFixed(2)} ms (p10-p90 ${q(compile, 0.1).toFixed(2)}-${q(compile, 0.9).toFixed(2)})`);
console.log('paired differences, median of the per-round differences:');
console.log(`  library:   keyring adds ${d('library: no filter, keyring', 'library: no filter, no new keyring')}; the filter adds ${d('library: filter, keyring', 'library: no filter, keyring')}; with no_new_privs ${d('library: filter + no_new_privs, keyring', 'library: no filter, keyring')}`);
console.log(`  tsrun run: keyring adds ${d('tsrun run --bundle: no filter, keyring', 'tsrun run --bundle: no filter, --no-new-keyring')}; the filter adds ${d('tsrun run --bundle: filter, keyring', 'tsrun run --bundle: no filter, keyring')}`);
if (runc) console.log(`  runc run:  the filter adds ${d('runc run: filter', 'runc run: no filter')}`);
