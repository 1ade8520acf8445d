// The cgroup v2 device program: the v1 controller's reading of a rule list,
// and the program loaded into a real cgroup2 directory, judged by a process
// in it opening device nodes.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { devicePolicy, deviceProgram } from '../src/cgroup/device-program';
import { DEFAULT_DEVICE_RULES, hostHierarchies, type DeviceRule } from '../src/cgroup/placement';
import { native } from '../src/native';
import { isRoot, TEST_BASE } from './helpers';
import { probe, removeProbe } from './probe';

t.teardown(removeProbe);

t.test('rules replayed as the v1 devices controller takes them', async (t) => {
  t.same(devicePolicy(DEFAULT_DEVICE_RULES).defaultAllow, false);
  t.match(devicePolicy(DEFAULT_DEVICE_RULES).exceptions, [{ type: 'c', major: -1, minor: -1, access: 1 }, { type: 'b', major: -1, minor: -1, access: 1 }, { type: 'c', major: 1, minor: 3, access: 7 }]);
  const p = devicePolicy([{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 10, minor: 200, access: 'rw' }, { allow: false, type: 'c', major: 10, minor: 200, access: 'w' }, { allow: true, type: 'c', major: 10, minor: 200, access: 'm' }]);
  t.same(p.exceptions, [{ type: 'c', major: 10, minor: 200, access: 3 }], 'a deny takes access away from an equal exception, an allow adds it');
  t.same(devicePolicy([{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 3 }, { allow: true, access: 'rwm' }]), { defaultAllow: true, exceptions: [] }, '"a" resets the default and drops the exceptions');
  t.same(devicePolicy([{ allow: true, access: 'rwm' }, { allow: false, type: 'b', access: 'rwm' }]).exceptions, [{ type: 'b', major: -1, minor: -1, access: 7 }], 'with an allow default, denies are the exceptions');
  t.equal(deviceProgram(DEFAULT_DEVICE_RULES).length % 8, 0);
});

const v2 = hostHierarchies().find((h) => h.fstype === 'cgroup2');
const noKernel = !isRoot ? 'needs root' : !v2 ? 'the host has no cgroup2 mount' : false;

/**
 * Runs the probe's commands, one process each, in a fresh cgroup2 directory
 * holding the program. The nodes are the test's own, on a tmpfs of its own
 * (a host's /tmp or /run may be nodev); a refusal by the program is EPERM,
 * anything else is the driver's answer to an allowed open.
 */
function judged(rules: DeviceRule[], commands: string[][]): string[] {
  const dir = path.join(v2!.mountPoint, `tsrun-test-devprog-${process.pid}`);
  const nodes = path.join(TEST_BASE, `devprog-${process.pid}`);
  fs.mkdirSync(nodes, { recursive: true });
  native().mount('tmpfs', nodes, 'tmpfs', 0, 'mode=755');
  fs.mkdirSync(dir);
  try {
    native().mknod(path.join(nodes, 'null'), 0o020666, 1, 3);
    native().mknod(path.join(nodes, 'tun'), 0o020666, 10, 200);
    native().mknod(path.join(nodes, 'blk'), 0o060600, 7, 0);
    native().attachDeviceProgram(dir, deviceProgram(rules));
    return commands.map((c) => {
      const r = spawnSync('sh', ['-c', `echo $$ > ${dir}/cgroup.procs && cd ${nodes} && exec "$@"`, 'sh', probe(), ...c], { encoding: 'utf8' });
      const out = r.stdout.trim();
      return out === 'EPERM' || out === 'ok' ? out : `allowed (${out})`;
    });
  } finally {
    fs.rmdirSync(dir);
    native().umount2(nodes, 0);
    fs.rmdirSync(nodes);
  }
}

t.test('the program in a real cgroup2 directory', { skip: noKernel }, async (t) => {
  const nullRead = ['open-read', 'null'];
  const tunRead = ['open-read', 'tun'];
  const tunWrite = ['open-write', 'tun'];
  const blkRead = ['open-read', 'blk'];
  const mknodBlk = ['mknod', 'new', 'b', '7', '1'];
  const allowed = (r: string) => r === 'ok' || r.startsWith('allowed');
  const verdicts = (rules: DeviceRule[], cmds: string[][]) => judged(rules, cmds).map((r) => (allowed(r) ? 'allowed' : r));
  t.same(verdicts(DEFAULT_DEVICE_RULES, [nullRead, tunRead, blkRead, mknodBlk]), ['allowed', 'EPERM', 'EPERM', 'allowed'], 'defaults: /dev/null yes, 10:200 no, a block node may be made (m) but not opened');
  t.same(verdicts([...DEFAULT_DEVICE_RULES, { allow: true, type: 'c', major: 10, minor: 200, access: 'r' }], [tunRead, tunWrite]), ['allowed', 'EPERM'], 'an exception gives only its access');
  t.same(verdicts([{ allow: true, access: 'rwm' }, { allow: false, type: 'c', major: 1, minor: 3, access: 'w' }], [nullRead, ['open-write', 'null'], tunWrite]), ['allowed', 'EPERM', 'allowed'], 'allow by default, one access denied');
  t.same(verdicts([{ allow: false, access: 'rwm' }], [nullRead, mknodBlk]), ['EPERM', 'EPERM'], 'deny everything: not even mknod');
});
