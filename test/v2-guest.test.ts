// The cgroup tests whose code differs on a pure cgroup v2 hierarchy, again,
// inside a QEMU guest whose only hierarchy is cgroup v2 (scripts/v2-guest.sh):
// this host is hybrid, so only there does the pure-v2 driver run for real.
// Software emulation makes each container cost seconds, so the guest runs the
// tests that reach v2's own files (limits, freeze, kill, events, devices, the
// cgroup mount), not every cgroup test: about 12 minutes.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { isRoot, PROJECT } from './helpers';

const kernel = fs.existsSync('/boot') ? fs.readdirSync('/boot').find((f) => f.startsWith('vmlinuz-')) : undefined;
const qemu = spawnSync('sh', ['-c', 'command -v qemu-system-x86_64']).status === 0;
// Opt-in (TSRUN_V2_GUEST=1): about 12 min under emulation, and timing-sensitive there.
const skip = process.env.TSRUN_V2_GUEST !== '1' ? 'the pure cgroup v2 guest runs with TSRUN_V2_GUEST=1 (about 12 min)' : !isRoot ? 'needs root' : !qemu ? 'qemu-system-x86_64 is not installed (Debian package qemu-system-x86)' : !kernel ? 'no kernel image in /boot (Debian package linux-image-amd64)' : false;

// Lifts tap's per-file timeout for this file.
t.setTimeout(45 * 60 * 1000);

t.test('the cgroup tests pass on a pure cgroup v2 kernel', { skip, timeout: 45 * 60 * 1000 }, async (t) => {
  const files = ['test/cgroups.test.ts', 'test/cgroup-ops.test.ts', 'test/device-program.test.ts'];
  // The top-level tests that reach what v2 does its own way; the rest (and the user namespace
  // copy on a store without idmapped mounts, which ramfs exercises on the host) run on the host only.
  const grep = ['fork bomb', 'memory hog', 'every resource flag', 'limits are in place', 'own cgroup', 'devices: only', 'v2 core files', 'rules replayed', 'real cgroup2 directory'].join('|');
  const cmd = `stat -fc %T /sys/fs/cgroup; npx tap -t0 --disable-coverage --reporter=tap --grep '${grep}' ${files.join(' ')}`;
  const r = spawnSync(path.join(PROJECT, 'scripts', 'v2-guest.sh'), ['--timeout', '2400', '--env', 'TSRUN_EMULATED=1', '--', 'sh', '-c', cmd], { cwd: PROJECT, encoding: 'utf8', maxBuffer: 256 << 20 });
  const out = r.stdout ?? '';
  t.equal(out.split('\n')[0], 'cgroup2fs', 'the guest mounts only cgroup v2');
  const summary = /^# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?/m.exec(out);
  t.ok(summary, `the tap run ended in the guest (exit ${r.status}): ${(r.stderr ?? '').slice(-400)}`);
  t.equal(Number(summary?.[3] ?? 0), 0, `no failures in the guest: ${out.split('\n').filter((l) => /not ok/.test(l)).join('; ')}`);
  const ran = [...out.matchAll(/^ {4}ok \d+ - (.*?)(?: # time=.*)?$/gm)].map((m) => m[1]).filter((n) => !/# SKIP/.test(n));
  t.equal(ran.length, 9, `each chosen test ran: ${ran.join('; ')}`);
  t.equal(r.status, 0, 'the guest run exited 0');
});
