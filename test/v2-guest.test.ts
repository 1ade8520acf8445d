// The cgroup tests again, inside a QEMU guest whose only hierarchy is
// cgroup v2 (scripts/v2-guest.sh): this host is hybrid, so only there does
// the pure-v2 driver run for real. Slow (software emulation): about 15 min.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { isRoot, PROJECT } from './helpers';

const kernel = fs.existsSync('/boot') ? fs.readdirSync('/boot').find((f) => f.startsWith('vmlinuz-')) : undefined;
const qemu = spawnSync('sh', ['-c', 'command -v qemu-system-x86_64']).status === 0;
// Opt-in (TSRUN_V2_GUEST=1): about 15 min under emulation, and timing-sensitive there.
const skip = process.env.TSRUN_V2_GUEST !== '1' ? 'the pure cgroup v2 guest runs with TSRUN_V2_GUEST=1 (about 15 min)' : !isRoot ? 'needs root' : !qemu ? 'qemu-system-x86_64 is not installed (Debian package qemu-system-x86)' : !kernel ? 'no kernel image in /boot (Debian package linux-image-amd64)' : false;

// Lifts tap's per-file timeout for this file.
t.setTimeout(60 * 60 * 1000);

t.test('the cgroup tests pass on a pure cgroup v2 kernel', { skip, timeout: 60 * 60 * 1000 }, async (t) => {
  const files = ['test/cgroups.test.ts', 'test/cgroup-ops.test.ts', 'test/device-program.test.ts'];
  const r = spawnSync(path.join(PROJECT, 'scripts', 'v2-guest.sh'), ['--timeout', '3000', '--env', 'TSRUN_EMULATED=1', '--', 'sh', '-c', `stat -fc %T /sys/fs/cgroup; npx tap -t0 --disable-coverage --reporter=tap ${files.join(' ')}`], { cwd: PROJECT, encoding: 'utf8', maxBuffer: 256 << 20 });
  const out = r.stdout ?? '';
  t.equal(out.split('\n')[0], 'cgroup2fs', 'the guest mounts only cgroup v2');
  const summary = /^# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?/m.exec(out);
  t.ok(summary, `tap ran in the guest (exit ${r.status}): ${(r.stderr ?? '').slice(-400)}`);
  if (summary) {
    t.equal(Number(summary[3] ?? 0), 0, `no failures in the guest: ${out.split('\n').filter((l) => /not ok/.test(l)).join('; ')}`);
    t.ok(Number(summary[2]) > 30, `the guest passed ${summary[2]} of ${summary[1]}`);
  }
  t.equal(r.status, 0, 'the guest run exited 0');
});
