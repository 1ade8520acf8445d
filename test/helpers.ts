// Shared by the tests: the CLI as a user runs it, busybox bundles, and the
// places a test may leave things (checked by zz-leak-check.test.ts).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { defaultSpec } from '../src/spec/default';
import type { Spec } from '../src/spec/types';

export const PROJECT = path.resolve(__dirname, '..');
export const CLI = path.join(PROJECT, 'dist', 'tsrun.js');
/** Every state root and bundle a test makes lives under here. */
export const TEST_BASE = '/run/tsrun-test';
export const isRoot = process.getuid?.() === 0;
export const BUSYBOX = '/bin/busybox';
export const haveBusybox = fs.existsSync(BUSYBOX);

/** Skip reason for tests that need root and busybox, or false to run them. */
// Tests talk to registries on loopback only: Docker Hub (what a short name
// means) is blocked, so a missing image fails at once instead of a lookup.
if (isRoot) {
  fs.mkdirSync(TEST_BASE, { recursive: true });
  process.env.CONTAINERS_REGISTRIES_CONF = path.join(TEST_BASE, 'registries.conf');
  fs.writeFileSync(process.env.CONTAINERS_REGISTRIES_CONF, '[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\nblocked = true\n');
}
// A container without --network has none in the tests: the default bridge
// would cost every start its CNI plugins, and the v2 guest has no bridge
// module. test/network.test.ts checks the real default (bridge) on its own.
process.env.TSRUN_DEFAULT_NETWORK ??= 'none';

/** The CNI plugins' shared chains on the host (`-N CNI-...` lines of iptables-save, both tables). */
export function cniChains(): string[] {
  const r = spawnSync('sh', ['-c', 'iptables-save -t filter; iptables-save -t nat'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n').filter((l) => /^:CNI-/.test(l)).map((l) => l.split(' ')[0].slice(1)) : [];
}

/**
 * The default network's bridge and the plugins' chains are host-wide (as
 * docker0's): a file that may make them notes now whether they were there,
 * and the function returned removes them if this file made them.
 */
export function defaultBridgeUndo(): () => void {
  const hadBridge = fs.existsSync('/sys/class/net/tsrun0');
  const hadChains = cniChains().length > 0;
  return () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const guard = require('../src/network/guard') as typeof import('../src/network/guard');
    if (!hadBridge) {
      guard.unguardLoopback('tsrun0');
      guard.removeBridgeRules('tsrun0');
      spawnSync('ip', ['link', 'del', 'tsrun0']);
      fs.rmSync('/var/lib/cni/networks/tsrun0', { recursive: true, force: true });
    }
    if (!hadChains) guard.removeIdleCniChains();
  };
}

// What the host had before the first test file ran, for the leak check to compare with.
export const HOST_BEFORE = path.join(TEST_BASE, 'host-before.json');
if (isRoot && !fs.existsSync(HOST_BEFORE)) {
  try {
    fs.writeFileSync(HOST_BEFORE, JSON.stringify({ cniChains: cniChains() }), { flag: 'wx' });
  } catch {
    /* another test file wrote it first */
  }
}

export const needsRoot: string | false = !isRoot ? 'needs root' : !haveBusybox ? 'needs Debian busybox-static (/bin/busybox)' : false;

let counter = 0;
export function uniqueId(prefix = 't'): string {
  return `${prefix}-${process.pid}-${++counter}`;
}

/** A state root's container directories (its dot entries are the runtime's caches). */
export function stateEntries(root: string): string[] {
  return fs.readdirSync(root).filter((n) => !n.startsWith('.'));
}

export function stateRoot(name: string): string {
  const root = path.join(TEST_BASE, 'state', name);
  fs.mkdirSync(root, { recursive: true });
  return root;
}

let rootfs: string | undefined;
/** One busybox rootfs per test process, shared read-only by its bundles. */
export function busyboxRootfs(): string {
  if (rootfs) return rootfs;
  const dir = path.join(TEST_BASE, 'rootfs', String(process.pid));
  fs.rmSync(dir, { recursive: true, force: true });
  const r = spawnSync(path.join(PROJECT, 'scripts', 'busybox-bundle.sh'), [dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`busybox-bundle.sh failed: ${r.stderr}`);
  rootfs = path.join(dir, 'rootfs');
  return rootfs;
}

export function removeRootfs() {
  if (rootfs) fs.rmSync(path.dirname(rootfs), { recursive: true, force: true });
  rootfs = undefined;
}

/** A default spec with no terminal and the given command. */
export function testSpec(args: string[], edit?: (s: Spec) => void): Spec {
  const spec = defaultSpec({ args, terminal: false });
  if (edit) edit(spec);
  return spec;
}

/** A bundle directory holding config.json whose root is the shared busybox rootfs. */
export function makeBundle(spec: Spec): string {
  const dir = path.join(TEST_BASE, 'bundles', uniqueId('b'));
  fs.mkdirSync(dir, { recursive: true });
  const s = structuredClone(spec);
  if (s.root?.path === 'rootfs') s.root.path = busyboxRootfs();
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(s, null, 2));
  return dir;
}

export function removeBundle(dir: string) {
  fs.rmSync(dir, { recursive: true, force: true });
}

export interface Result {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI as a user would. Output goes to files, not pipes: a created
 * container inherits tsrun's stdio and would hold a pipe open long after
 * tsrun has exited.
 */
export function tsrun(args: string[], opts: { root?: string; timeout?: number; env?: NodeJS.ProcessEnv } = {}): Result {
  const full = opts.root ? ['--root', opts.root, ...args] : args;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-out-'));
  const out = fs.openSync(path.join(dir, 'out'), 'w+');
  const err = fs.openSync(path.join(dir, 'err'), 'w+');
  try {
    // Under software emulation (the v2 guest sets TSRUN_EMULATED=1) one command can take minutes.
    const r = spawnSync(process.execPath, [CLI, ...full], { env: opts.env ? { ...process.env, ...opts.env } : process.env, stdio: ['ignore', out, err], timeout: (opts.timeout ?? 60_000) * (process.env.TSRUN_EMULATED === '1' ? 4 : 1) });
    return { status: r.status, signal: r.signal, stdout: fs.readFileSync(path.join(dir, 'out'), 'utf8'), stderr: fs.readFileSync(path.join(dir, 'err'), 'utf8') };
  } finally {
    fs.closeSync(out);
    fs.closeSync(err);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a command in a fresh container from the busybox bundle; cleans the bundle up. */
export function runIn(args: string[], opts: { root: string; edit?: (s: Spec) => void; flags?: string[] }) {
  const bundle = makeBundle(testSpec(args, opts.edit));
  try {
    return tsrun([...(opts.flags ?? []), 'run', '--bundle', bundle, uniqueId('run')], { root: opts.root });
  } finally {
    removeBundle(bundle);
  }
}

export function spawnTsrun(args: string[], root: string) {
  return spawn(process.execPath, [CLI, '--root', root, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Makes the image "busybox" in a test's own store (scripts/busybox-image.sh). */
export function busyboxImage(storage: string) {
  execFileSync(path.join(PROJECT, 'scripts', 'busybox-image.sh'), { env: { ...process.env, TSRUN_STORAGE: storage }, stdio: 'ignore' });
}

/** Mount points in our mount namespace under a prefix. */
export function mountsUnder(prefix: string): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    // mountinfo writes space, tab, newline and backslash as octal escapes.
    .map((l) => l.split(' ')[4]?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))))
    .filter((p) => p && p.startsWith(prefix));
}

/** Processes whose root directory is inside dir: containers that outlived their test. */
export function processesRootedIn(dir: string): number[] {
  const out: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (fs.readlinkSync(`/proc/${p}/root`).startsWith(dir)) out.push(Number(p));
    } catch {
      /* gone, or a kernel thread */
    }
  }
  return out;
}

/** tsrun-monitor processes whose command line names dir (a test's image store). */
export function monitorsFor(dir: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
        return cmd.includes('tsrun-monitor') && cmd.includes(dir);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** The host's cgroup hierarchies, as mounted (v1 controllers' own directories, not their symlinks; the cgroup2 mount; on pure v2 /sys/fs/cgroup itself). */
export function cgroupHierarchies(): string[] {
  const out = new Set<string>();
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const fields = pre.split(' ');
    if ((post.startsWith('cgroup ') || post.startsWith('cgroup2 ')) && fields[3] === '/') out.add(fields[4]);
  }
  return [...out];
}

/** A cgroup path's directory in every hierarchy that has it. */
export function cgroupDirsNamed(rel: string): string[] {
  return cgroupHierarchies()
    .map((h) => path.join(h, rel))
    .filter((d) => fs.existsSync(d));
}

/** The body of GET / on 127.0.0.1:port (a published port's page). */
export function httpGet(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/', timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}
