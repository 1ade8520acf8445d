// A benchmark's scratch directory and its clean-up: what was registered is
// undone in reverse at exit, then whatever is still mounted under the
// directory (podman may leave its storage's overlay mounts) is detached and
// the directory removed.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function benchWork(prefix) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const cleanups = [];
  process.on('exit', () => {
    for (const f of cleanups.reverse()) {
      try {
        f();
      } catch (e) {
        console.error(`bench: clean-up: ${e.stderr ?? e.message}`);
      }
    }
    const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m && m.startsWith(work));
    for (const m of mounts.reverse()) spawnSync('umount', ['-l', m]);
    fs.rmSync(work, { recursive: true, force: true });
  });
  return { work, cleanups };
}

/**
 * tsrun's busybox image in a podman store (tsrun save, podman load: no
 * registry), and that store's containers and images gone at exit.
 */
export function podmanBusybox({ tsrun, podman, work, cleanups }) {
  tsrun(['save', '-o', path.join(work, 'bb.tar'), 'busybox']);
  podman(['load', '-i', path.join(work, 'bb.tar')]);
  cleanups.push(() => {
    podman(['rm', '-fa', '-t', '0']);
    podman(['system', 'reset', '--force']);
  });
}

/** Milliseconds a synchronous call takes. */
export const time = (f) => {
  const t0 = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t0) / 1e6;
};

/** The p-quantile of samples (nearest rank), and the median. */
export const q = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) + 0.5))];
};
export const med = (xs) => q(xs, 0.5);

/** The environment as the caller has it, and without NODE_EXTRA_CA_CERTS (which Node reads before anything else). */
export const withCa = { ...process.env };
export const withoutCa = { ...process.env };
delete withoutCa.NODE_EXTRA_CA_CERTS;

// Content the same on every run: text from a seeded generator (as sources
// and logs are) and pseudo-random bytes (as compressed media are).
let seed = 42;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / (1 << 24);
const words = ['container', 'runtime', 'layer', 'volume', 'the', 'of', 'and', 'mount', 'image', 'kernel', 'namespace', 'cgroup', 'file', 'process', 'network', 'a', 'to', 'is', '{', '}', '=', ';', '\n'];
export function seededText(n) {
  const parts = [];
  let len = 0;
  while (len < n) {
    const w = words[Math.floor(rand() * words.length)] + (rand() < 0.8 ? ' ' : `${Math.floor(rand() * 1000)} `);
    parts.push(w);
    len += w.length;
  }
  return parts.join('').slice(0, n);
}

/** n bytes of sha256 in counter mode over key. */
export function seededBytes(key, n) {
  return Buffer.concat(Array.from({ length: Math.ceil(n / 32) }, (_, k) => crypto.createHash('sha256').update(`${key}:${k}`).digest())).subarray(0, n);
}
