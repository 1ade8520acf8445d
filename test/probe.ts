// The probe (test/fixtures/probe.c), built static once per test process and
// bound read-only into containers at /probe.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TEST_BASE } from './helpers';

let built: string | undefined;

/** The probe's path on the host; throws with the compiler's words if it cannot be built. */
export function probe(): string {
  if (built) return built;
  const dir = path.join(TEST_BASE, 'probe', String(process.pid));
  fs.mkdirSync(dir, { recursive: true });
  const out = path.join(dir, 'probe');
  const r = spawnSync('gcc', ['-static', '-O2', '-Wall', '-o', out, path.join(__dirname, 'fixtures', 'probe.c')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gcc -static probe.c failed: ${r.stderr || r.error}`);
  built = out;
  return out;
}

export function removeProbe() {
  if (built) fs.rmSync(path.dirname(built), { recursive: true, force: true });
  built = undefined;
}

/** -v flags that put the probe at /probe. */
export const probeVolume = () => ['-v', `${probe()}:/probe:ro`];
