// Docker's security flags on `run IMAGE`, each seen from inside the
// container: capabilities, --privileged, no-new-privileges, --device,
// --group-add, --ulimit, --sysctl, --shm-size, and inspect's account of them.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { busyboxImage, needsRoot, stateRoot, TEST_BASE, tsrun } from './helpers';
import { probe, removeProbe } from './probe';
import { capabilityNames, runtimeCapabilities } from '../src/process/capabilities';

const root = stateRoot('run-flags');
const storage = path.join(TEST_BASE, 'storage', `run-flags-${process.pid}`);
const ts = (args: string[]) => tsrun(['--storage', storage, ...args], { root });
const run = (args: string[]) => ts(['run', '--rm', ...args]);

t.before(() => {
  if (needsRoot) return;
  busyboxImage(storage);
});
t.teardown(() => {
  fs.rmSync(storage, { recursive: true, force: true });
  removeProbe();
});

const capsOf = (out: string, set = 'CapEff') => capabilityNames(new RegExp(`^${set}:\\s+([0-9a-f]+)$`, 'm').exec(out)![1]);

t.test('--cap-add and --cap-drop, with or without CAP_, and ALL', { skip: needsRoot }, async (t) => {
  const status = (flags: string[]) => run([...flags, 'busybox', 'cat', '/proc/self/status']).stdout;
  const base = capsOf(status([]));
  t.same(base.length, 14, 'Docker\'s 14 by default');
  let caps = capsOf(status(['--cap-add', 'net_admin', '--cap-drop', 'CAP_CHOWN']));
  t.ok(caps.includes('CAP_NET_ADMIN') && !caps.includes('CAP_CHOWN'), 'one added, one dropped');
  t.equal(caps.length, 14);
  t.same(capsOf(status(['--cap-drop', 'ALL'])), [], 'ALL dropped: none');
  t.same(capsOf(status(['--cap-drop', 'ALL', '--cap-add', 'NET_RAW'])), ['CAP_NET_RAW'], 'ALL dropped, one added');
  caps = capsOf(status(['--cap-add', 'ALL', '--cap-drop', 'MKNOD']));
  t.same(caps, runtimeCapabilities().filter((c) => c !== 'CAP_MKNOD'), 'ALL added (all tsrun holds), one dropped');
  t.same(capsOf(status(['--cap-drop', 'ALL', '--cap-add', 'NET_RAW']), 'CapBnd'), ['CAP_NET_RAW'], 'the bounding set follows');
  let r = run(['--cap-add', 'CAP_NOPE', 'busybox', 'true']);
  t.equal(r.status, 125);
  t.match(r.stderr, /^tsrun: --cap-add CAP_NOPE: unknown capability/);
  // The flag reaches what the container can do: chown needs CAP_CHOWN.
  r = run(['--cap-drop', 'CHOWN', 'busybox', 'sh', '-c', 'touch /f; chown 1:1 /f 2>&1 || echo refused']);
  t.match(r.stdout, /refused/);
});

t.test('--privileged: every capability tsrun holds, host devices, no filter, nothing masked, /sys writable', { skip: needsRoot }, async (t) => {
  const disk = fs.readdirSync('/dev').find((d) => /^(vd|sd|nvme|xvd)[a-z0-9]+$/.test(d));
  const r = run(['--privileged', '-v', `${probe()}:/probe:ro`, 'busybox', 'sh', '-c', `grep -E '^(CapEff|Seccomp):' /proc/self/status; grep ' /sys ' /proc/mounts; grep -c ' /proc/kcore ' /proc/mounts; ls /dev/${disk ?? 'null'} ; /probe mount /tmp`]);
  t.equal(r.status, 0, r.stderr);
  t.same(capsOf(r.stdout), runtimeCapabilities());
  t.match(r.stdout, /^Seccomp:\t0$/m, 'no seccomp filter');
  t.match(r.stdout, /^sysfs \/sys sysfs rw,/m, '/sys is writable');
  t.match(r.stdout, /^0$/m, '/proc/kcore is not masked');
  if (disk) t.match(r.stdout, new RegExp(`^/dev/${disk}$`, 'm'), `the host's /dev/${disk} is there`);
  t.match(r.stdout, /^ok$/m, 'mount works');
  const i = JSON.parse(ts(['inspect', ts(['run', '-d', '--privileged', 'busybox', 'sleep', '30']).stdout.trim()]).stdout)[0];
  t.equal(i.HostConfig.Privileged, true, 'inspect says so');
  t.equal(ts(['rm', '-f', i.Id]).status, 0);
});

t.test('--security-opt no-new-privileges: setuid programs gain nothing', { skip: needsRoot }, async (t) => {
  // A setuid-root copy of the probe, run by nobody: without the flag it runs as euid 0.
  const script = 'cp /probe /tmp/suid && chmod 4755 /tmp/suid && su -s /bin/sh nobody -c "/tmp/suid euid"; grep NoNewPrivs /proc/self/status';
  const p = ['-v', `${probe()}:/probe:ro`];
  let r = run([...p, 'busybox', 'sh', '-c', script]);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, '0\nNoNewPrivs:\t0\n', 'without it, setuid works');
  r = run([...p, '--security-opt', 'no-new-privileges', 'busybox', 'sh', '-c', script]);
  t.equal(r.stdout, '65534\nNoNewPrivs:\t1\n', 'with it, setuid is ignored');
  r = run([...p, '--security-opt', 'no-new-privileges:false', 'busybox', 'sh', '-c', script]);
  t.equal(r.stdout, '0\nNoNewPrivs:\t0\n', 'no-new-privileges:false turns it off');
});

t.test('--device HOST[:CONTAINER[:PERMISSIONS]]: the node, and only the access asked for', { skip: needsRoot }, async (t) => {
  // /dev/net/tun (10:200) is not a default device: without --device it cannot be opened.
  const p = ['-v', `${probe()}:/probe:ro`];
  let r = run([...p, 'busybox', 'sh', '-c', 'mknod /tmp/k c 10 200; /probe open-read /tmp/k']);
  t.equal(r.stdout, 'EPERM\n', 'no access without --device');
  r = run([...p, '--device', '/dev/net/tun:/dev/logs:r', 'busybox', 'sh', '-c', 'ls -l /dev/logs | cut -c1; /probe open-read /dev/logs; /probe open-write /dev/logs']);
  t.same(r.stdout.trim().split('\n'), ['c', 'ok', 'EPERM'], 'read allowed, write refused by the devices cgroup');
  r = run([...p, '--device', '/dev/net/tun', 'busybox', 'sh', '-c', '/probe open-write /dev/net/tun']);
  t.equal(r.stdout, 'ok\n', 'rwm by default');
  r = run(['--device', '/etc/passwd', 'busybox', 'true']);
  t.equal(r.status, 125);
  t.match(r.stderr, /^tsrun: --device \/etc\/passwd: \/etc\/passwd is not a device node/);
});

t.test('--group-add, --ulimit, --sysctl, --shm-size', { skip: needsRoot }, async (t) => {
  let r = run(['--group-add', 'tty', '--group-add', '4321', 'busybox', 'id', '-G']);
  t.equal(r.stdout, '0 5 4321\n', 'a group by name from the image and one by number');
  t.match(run(['--group-add', 'nosuchgroup', 'busybox', 'true']).stderr, /--group-add nosuchgroup: no such group in the image's \/etc\/group/);
  r = run(['--ulimit', 'nofile=123:456', '--ulimit', 'nproc=77', 'busybox', 'sh', '-c', 'ulimit -n; ulimit -Hn; ulimit -u; ulimit -Hu']);
  t.equal(r.stdout, '123\n456\n77\n77\n');
  t.match(run(['--ulimit', 'bogus=1', 'busybox', 'true']).stderr, /--ulimit bogus=1: unknown limit "bogus"/);
  r = run(['--sysctl', 'net.ipv4.ip_forward=1', '--sysctl', 'kernel.shmmni=1234', 'busybox', 'sh', '-c', 'cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni']);
  t.equal(r.stdout, '1\n1234\n', 'namespaced settings, in the container\'s own namespaces');
  t.equal(fs.readFileSync('/proc/sys/kernel/shmmni', 'utf8').trim() === '1234', false, 'the host\'s value is untouched');
  r = run(['--sysctl', 'kernel.panic=1', 'busybox', 'true']);
  t.equal(r.status, 125);
  t.match(r.stderr, /linux\.sysctl\.kernel\.panic: is not namespaced: writing it would change the host/);
  r = run(['--shm-size', '1m', 'busybox', 'grep', ' /dev/shm ', '/proc/mounts']);
  t.match(r.stdout, /size=1024k/);
});

t.test('inspect shows the flags as Docker does', { skip: needsRoot }, async (t) => {
  const id = ts(['run', '-d', '--cap-add', 'NET_ADMIN', '--cap-drop', 'MKNOD', '--security-opt', 'no-new-privileges', '--device', '/dev/net/tun:/dev/k:r', '--group-add', '5', 'busybox', 'sleep', '30']).stdout.trim();
  const hc = JSON.parse(ts(['inspect', id]).stdout)[0].HostConfig;
  t.match(hc, { Privileged: false, CapAdd: ['NET_ADMIN'], CapDrop: ['MKNOD'], SecurityOpt: ['no-new-privileges'], Devices: [{ PathOnHost: '/dev/net/tun', PathInContainer: '/dev/k', CgroupPermissions: 'r' }], GroupAdd: ['5'] });
  t.equal(ts(['rm', '-f', id]).status, 0);
});
