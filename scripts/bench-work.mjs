// A benchmark's scratch directory and its clean-up: what was registered is
// undone in reverse at exit, then whatever is still mounted under the
// directory (podman may leave its storage's overlay mounts) is detached and
// the directory removed.
import { spawnSync } from 'node:child_process';
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
