// The cgroup tests again, inside a QEMU guest whose only hierarchy is
// cgroup v2 (scripts/v2-guest.sh): this host is hybrid, so only there does
// the pure-v2 driver run for real; and the user namespace fallback for a
// store without idmapped mounts (tmpfs before Linux 6.3). Slow (software
// emulation): about 20 min.
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
  // Also, where the store is on tmpfs of a kernel before 6.3 (no idmapped mounts there), a user
  // namespace container's chowned copy of its image, file capabilities included.
  const tap = 'npx tap -t0 --disable-coverage --reporter=tap';
  const cmd = `stat -fc %T /sys/fs/cgroup; ${tap} ${files.join(' ')}; a=$?; ${tap} --grep 'takes no idmapped mount' test/userns.test.ts || exit 1; exit $a`;
  const r = spawnSync(path.join(PROJECT, 'scripts', 'v2-guest.sh'), ['--timeout', '3600', '--env', 'TSRUN_EMULATED=1', '--', 'sh', '-c', cmd], { cwd: PROJECT, encoding: 'utf8', maxBuffer: 256 << 20 });
  const out = r.stdout ?? '';
  t.equal(out.split('\n')[0], 'cgroup2fs', 'the guest mounts only cgroup v2');
  const summaries = [...out.matchAll(/^# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?/gm)];
  t.equal(summaries.length, 2, `both tap runs ended in the guest (exit ${r.status}): ${(r.stderr ?? '').slice(-400)}`);
  t.equal(summaries.reduce((n, s) => n + Number(s[3] ?? 0), 0), 0, `no failures in the guest: ${out.split('\n').filter((l) => /not ok/.test(l)).join('; ')}`);
  t.ok(Number(summaries[0]?.[2]) > 30, `the guest passed ${summaries[0]?.[2]} of ${summaries[0]?.[1]} cgroup tests`);
  t.ok(Number(summaries[1]?.[2]) > 20, `and ${summaries[1]?.[2]} of ${summaries[1]?.[1]} of the chowned-copy test`);
  t.equal(r.status, 0, 'the guest run exited 0');
});
