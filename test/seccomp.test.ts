// seccomp from inside the container: the default filter of `run IMAGE`, a
// bundle's own filter applied exactly (actions, errnos, argument conditions,
// architectures), the same filter for exec, and what tsrun refuses.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { busyboxImage, makeBundle, needsRoot, removeBundle, removeRootfs, stateRoot, TEST_BASE, testSpec, tsrun, uniqueId } from './helpers';
import { probe, removeProbe } from './probe';
import { DOCKER_CAPABILITIES } from '../src/image/runtime-config';
import { builtinProfile } from '../src/security/default-seccomp';
import { defaultSeccomp, hostArch, KEYRING_SYSCALLS, profileToSeccomp, SYSTEM_PROFILE } from '../src/security/seccomp-profile';
import type { LinuxSeccomp } from '../src/security/seccomp';
import type { Spec } from '../src/spec/types';

const root = stateRoot('seccomp');
const storage = path.join(TEST_BASE, 'storage', `seccomp-${process.pid}`);
const ts = (args: string[]) => tsrun(['--storage', storage, ...args], { root });
const P = () => ['-v', `${probe()}:/probe:ro`];

t.before(() => {
  if (needsRoot) return;
  busyboxImage(storage);
});
t.teardown(() => {
  fs.rmSync(storage, { recursive: true, force: true });
  removeProbe();
  removeRootfs();
});

// x86_64 syscall numbers the tests make.
const NR = { personality: 135, swapon: 167, socket: 41, mkdir: 83, getpid: 39, io_uring_setup: 425, uname: 63, sched_yield: 24, getpriority: 140 };

/** Whether this kernel has the 32-bit x86 entry (IA32 emulation): without it no foreign-ABI call can be made. */
const ia32 = () => !needsRoot && process.arch === 'x64' && spawnSync(probe(), ['int80-getpid']).status === 0;

t.test('run IMAGE gets the default filter; seccomp=unconfined has none', { skip: needsRoot }, async (t) => {
  let r = ts(['run', '--rm', ...P(), 'busybox', 'sh', '-c', `grep ^Seccomp: /proc/self/status; /probe syscall ${NR.swapon} 0 0; /probe add-key; /probe keyctl; /probe request-key; /probe syscall ${NR.io_uring_setup} 0 0; /probe bpf; true`]);
  t.equal(r.status, 0, r.stderr);
  t.same(r.stdout.trim().split('\n'), ['Seccomp:\t2', 'EPERM', 'EPERM', 'EPERM', 'EPERM', 'ENOSYS', 'EPERM'], 'swapon and the keyring calls EPERM, a call the profile does not know ENOSYS, bpf EPERM without CAP_SYS_ADMIN');
  r = ts(['run', '--rm', '--security-opt', 'seccomp=unconfined', ...P(), 'busybox', 'sh', '-c', `grep ^Seccomp: /proc/self/status; /probe add-key; /probe syscall ${NR.io_uring_setup} 0 0; true`]);
  t.equal(r.status, 0, r.stderr);
  t.same(r.stdout.trim().split('\n'), ['Seccomp:\t0', 'ok', 'EFAULT'], 'no filter: the kernel answers');
  r = ts(['run', '--rm', '--security-opt', 'no-new-privileges', ...P(), 'busybox', 'sh', '-c', `grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; /probe add-key`]);
  t.same(r.stdout.trim().split('\n'), ['NoNewPrivs:\t1', 'Seccomp:\t2', 'EPERM'], 'with no_new_privs tsrun-exec loads the same filter');
});

t.test('the default filter follows the capabilities', { skip: needsRoot }, async (t) => {
  // chroot is allowed with CAP_SYS_CHROOT (a default capability) and EPERM without it.
  let r = ts(['run', '--rm', ...P(), 'busybox', '/probe', 'chroot-climb', '/nonexistent']);
  t.equal(r.stdout, 'ENOENT\n', 'chroot works with CAP_SYS_CHROOT');
  r = ts(['run', '--rm', '--cap-drop', 'SYS_CHROOT', ...P(), 'busybox', '/probe', 'chroot-climb', '/nonexistent']);
  t.equal(r.stdout, 'chroot:EPERM\n', 'without it the filter refuses chroot');
  r = ts(['run', '--rm', '--cap-add', 'SYS_ADMIN', ...P(), 'busybox', '/probe', 'bpf']);
  t.notMatch(r.stdout, /EPERM|ENOSYS/, 'with CAP_SYS_ADMIN the filter lets bpf through');
});

t.test('the built-in profile has the same rules as the system\'s, and the keyring calls are refused in both', async (t) => {
  const caps = [...DOCKER_CAPABILITIES];
  const builtin = profileToSeccomp(builtinProfile(), caps);
  if (fs.existsSync(SYSTEM_PROFILE)) {
    t.same(profileToSeccomp(JSON.parse(fs.readFileSync(SYSTEM_PROFILE, 'utf8')), caps), builtin, `the same as ${SYSTEM_PROFILE} for Docker's capabilities`);
    const all = ['CAP_SYS_ADMIN', 'CAP_SYS_PTRACE', 'CAP_SYS_TIME', 'CAP_SYS_MODULE', 'CAP_AUDIT_WRITE', 'CAP_DAC_READ_SEARCH'];
    t.same(profileToSeccomp(JSON.parse(fs.readFileSync(SYSTEM_PROFILE, 'utf8')), all), profileToSeccomp(builtinProfile(), all), 'and for others');
  } else {
    t.comment(`${SYSTEM_PROFILE} is absent (Debian's golang-github-containers-common): only the built-in profile is checked`);
  }
  for (const file of [SYSTEM_PROFILE, '/nonexistent/seccomp.json']) {
    const s = defaultSeccomp(caps, file);
    const keyring = s.syscalls!.filter((r) => r.names.some((n) => KEYRING_SYSCALLS.includes(n)));
    t.same(keyring, [{ names: KEYRING_SYSCALLS, action: 'SCMP_ACT_ERRNO', errnoRet: 1 }], `${file}: only the EPERM rule names them`);
    t.same(s.architectures, hostArch().seccomp === 'SCMP_ARCH_X86_64' ? ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'] : s.architectures);
  }
});

/** A bundle running the probe under a seccomp config of its own. */
function runSeccomp(seccomp: LinuxSeccomp, script: string, edit?: (s: Spec) => void) {
  const bundle = makeBundle(testSpec(['sh', '-c', script], (s) => {
    s.linux!.seccomp = seccomp;
    s.mounts!.push({ destination: '/probe', type: 'bind', source: probe(), options: ['bind', 'ro'] });
    edit?.(s);
  }));
  try {
    return tsrun(['run', '--bundle', bundle, uniqueId('sc')], { root });
  } finally {
    removeBundle(bundle);
  }
}

t.test('a bundle\'s own filter, applied exactly: errnos, argument conditions, actions', { skip: needsRoot }, async (t) => {
  const seccomp: LinuxSeccomp = {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: ['SCMP_ARCH_X86_64'],
    syscalls: [
      // socket(AF_INET, SOCK_DGRAM, *) refused with EADDRNOTAVAIL; AF_INET stream allowed.
      { names: ['socket'], action: 'SCMP_ACT_ERRNO', errnoRet: 99, args: [{ index: 0, value: 2, op: 'SCMP_CMP_EQ' }, { index: 1, value: 2, op: 'SCMP_CMP_EQ' }] },
      // Any socket type with SOCK_CLOEXEC (0x80000) set: MASKED_EQ.
      { names: ['socket'], action: 'SCMP_ACT_ERRNO', errnoRet: 95, args: [{ index: 1, value: 0x80000, valueTwo: 0x80000, op: 'SCMP_CMP_MASKED_EQ' }] },
      // Two conditions on one argument: either persona is refused.
      { names: ['personality'], action: 'SCMP_ACT_ERRNO', errnoRet: 13, args: [{ index: 0, value: 8, op: 'SCMP_CMP_EQ' }, { index: 0, value: 0x20000, op: 'SCMP_CMP_EQ' }] },
      // Greater-than on mkdir's mode.
      { names: ['mkdir'], action: 'SCMP_ACT_ERRNO', args: [{ index: 1, value: 0o700, op: 'SCMP_CMP_GT' }] },
      { names: ['swapon'], action: 'SCMP_ACT_KILL_PROCESS' },
      { names: ['sched_yield'], action: 'SCMP_ACT_TRAP' },
      { names: ['uname'], action: 'SCMP_ACT_LOG' },
      { names: ['getpriority'], action: 'SCMP_ACT_TRACE', errnoRet: 77 },
      { names: ['no_such_syscall_anywhere'], action: 'SCMP_ACT_ERRNO' },
    ],
  };
  const lines = [
    `/probe syscall ${NR.socket} 2 2 0`,
    `/probe syscall ${NR.socket} 2 1 0`,
    `/probe syscall ${NR.socket} 1 ${0x80001} 0`,
    `/probe syscall ${NR.personality} 8`,
    `/probe syscall ${NR.personality} ${0x20000}`,
    `/probe syscall ${NR.personality} 4294967295`,
    `/probe syscall ${NR.mkdir} 0 ${0o755}`,
    `/probe syscall ${NR.uname} 0`,
    `/probe syscall ${NR.getpriority} 0 0`,
    `/probe syscall ${NR.sched_yield}; echo trap=$?`,
    `/probe syscall ${NR.swapon} 0 0; echo kill=$?`,
    'grep ^Seccomp: /proc/self/status',
  ];
  const r = runSeccomp(seccomp, lines.join('; '));
  t.equal(r.status, 0, r.stderr);
  t.same(r.stdout.trim().split('\n'), ['EADDRNOTAVAIL', 'ok', 'EOPNOTSUPP', 'EACCES', 'EACCES', 'ok', 'EPERM', 'EFAULT', 'ENOSYS', 'trap=159', 'kill=159', 'Seccomp:\t2']);
  t.equal(r.stderr.match(/Bad system call/g)?.length, 2, 'TRAP and KILL_PROCESS ended the probe with SIGSYS');

  // The same with no_new_privs: tsrun-exec loads it instead of the plan.
  const nnp = runSeccomp(seccomp, lines.slice(0, 3).join('; ') + '; true', (s) => (s.process!.noNewPrivileges = true));
  t.same(nnp.stdout.trim().split('\n'), ['EADDRNOTAVAIL', 'ok', 'EOPNOTSUPP']);
});

t.test('architectures: a call through another ABI meets the bad-architecture action unless listed', { skip: needsRoot || (!ia32() && 'this kernel has no 32-bit x86 entry (IA32 emulation), so no call of another ABI can be made') }, async (t) => {
  let r = runSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64'] }, '/probe int80-getpid; echo status=$?');
  t.equal(r.stdout.trim().split('\n').pop(), 'status=159', 'an x86 call under an x86_64-only filter kills the thread');
  r = runSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'] }, '/probe int80-getpid; echo status=$?');
  t.equal(r.stdout.trim().split('\n').pop(), 'status=0', 'listed, it is filtered by the rules (allowed)');
  r = runSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'], syscalls: [{ names: ['getpid'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] }, '/probe int80-getpid; /probe syscall 39');
  t.same(r.stdout.trim().split('\n'), ['EPERM', 'EPERM'], 'a rule applies on every listed architecture');
});

t.test('exec gets the container\'s filter', { skip: needsRoot }, async (t) => {
  let r = ts(['run', '-d', '--name', 'sc-exec', ...P(), 'busybox', 'sleep', '60']);
  t.equal(r.status, 0, r.stderr);
  r = ts(['exec', 'sc-exec', 'sh', '-c', `grep ^Seccomp: /proc/self/status; /probe add-key; /probe syscall ${NR.swapon} 0 0`]);
  t.same(r.stdout.trim().split('\n'), ['Seccomp:\t2', 'EPERM', 'EPERM']);
  t.equal(ts(['rm', '-f', 'sc-exec']).status, 0);
});

t.test('--security-opt seccomp=FILE in Docker\'s format, or the runtime-spec\'s', { skip: needsRoot }, async (t) => {
  const dir = path.join(TEST_BASE, `seccomp-files-${process.pid}`);
  fs.mkdirSync(dir, { recursive: true });
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const docker = path.join(dir, 'docker.json');
  fs.writeFileSync(docker, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', archMap: [{ architecture: hostArch().seccomp, subArchitectures: [] }], syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }, { names: ['chmod', 'fchmodat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, excludes: { caps: ['CAP_FOWNER'] } }] }));
  let r = ts(['run', '--rm', '--security-opt', `seccomp=${docker}`, 'busybox', 'sh', '-c', 'mkdir /x 2>&1; chmod 700 /tmp && echo chmod-ok']);
  t.match(r.stdout, /Operation not permitted\nchmod-ok\n$/, 'mkdir refused; the chmod rule dropped, since the container has CAP_FOWNER');
  const oci = path.join(dir, 'oci.json');
  fs.writeFileSync(oci, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }] }));
  r = ts(['run', '--rm', '--security-opt', `seccomp=${oci}`, 'busybox', 'sh', '-c', 'mkdir /x 2>&1 || true']);
  t.match(r.stdout, /Permission denied/);
  r = ts(['run', '--rm', '--security-opt', `seccomp=${path.join(dir, 'missing.json')}`, 'busybox', 'true']);
  t.equal(r.status, 125);
  t.match(r.stderr, /^tsrun: read seccomp profile .*missing\.json: ENOENT\n$/);
});

t.test('a filter loaded before the capabilities drop needs no more than runc needs: execve, not execveat', { skip: needsRoot }, async (t) => {
  // Without no_new_privs the filter is in place while tsrun finishes setting up; the
  // helper is started with execve, so a profile written for runc still starts.
  const r = runSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['execveat'], action: 'SCMP_ACT_ERRNO' }] }, 'echo started; grep ^Seccomp: /proc/self/status');
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, 'started\nSeccomp:\t2\n');
});

t.test('a malformed profile is one clear line', { skip: needsRoot }, async (t) => {
  const dir = path.join(TEST_BASE, `seccomp-bad-${process.pid}`);
  fs.mkdirSync(dir, { recursive: true });
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cases: [unknown, RegExp][] = [
    [null, /\(root\) must be an object/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', archMap: {} }, /archMap must be a list/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [null] }, /syscalls\[0\] must be an object/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO', includes: { caps: 'CAP_X' } }] }, /syscalls\[0\]\.includes\.caps must be a list/],
    [{ defaultAction: 'SCMP_ACT_BOGUS' }, /defaultAction: must be one of/],
  ];
  for (const [i, [profile, err]] of cases.entries()) {
    const file = path.join(dir, `p${i}.json`);
    fs.writeFileSync(file, JSON.stringify(profile));
    const r = ts(['run', '--rm', '--security-opt', `seccomp=${file}`, 'busybox', 'true']);
    t.equal(r.status, 125, String(err));
    t.match(r.stderr, err);
    t.notMatch(r.stderr, /internal error|\n\s+at /, 'no stack trace');
  }
  const r = ts(['run', '--rm', '--privileged', '--security-opt', `seccomp=${path.join(dir, 'p0.json')}`, 'busybox', 'true']);
  t.equal(r.status, 125);
  t.match(r.stderr, /a privileged container has no seccomp filter; drop one of the two/, 'a filter asked for is never dropped in silence');
});

t.test('exec takes the filter the container was created with, not the bundle\'s of now', { skip: needsRoot }, async (t) => {
  const bundle = makeBundle(testSpec(['sleep', '60'], (s) => {
    s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] };
  }));
  t.teardown(() => removeBundle(bundle));
  const id = uniqueId('snap');
  t.equal(tsrun(['create', '--bundle', bundle, id], { root }).status, 0);
  t.equal(tsrun(['start', id], { root }).status, 0);
  const spec = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8'));
  delete spec.linux.seccomp;
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec));
  const r = tsrun(['exec', id, 'sh', '-c', 'grep ^Seccomp: /proc/self/status; mkdir /tmp/x 2>&1'], { root });
  t.match(r.stdout, /^Seccomp:\t2\n.*Operation not permitted/s, 'the filter of create still applies');
  t.equal(tsrun(['delete', '--force', id], { root }).status, 0);
});

t.test('what tsrun cannot honour is refused, never ignored', { skip: needsRoot }, async (t) => {
  const cases: [string, (s: Spec) => void, RegExp][] = [
    ['a notify listener', (s) => (s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '/run/x.sock' }), /linux\.seccomp\.listenerPath: seccomp notification listeners are not supported/],
    ['SCMP_ACT_NOTIFY', (s) => (s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }] }), /syscalls\[0\]\.action: SCMP_ACT_NOTIFY needs a notification listener/],
    ['an unknown flag', (s) => (s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_NEW_LISTENER'] }), /flags\[0\]: "SECCOMP_FILTER_FLAG_NEW_LISTENER" is not a flag tsrun can apply/],
    ['an unknown architecture', (s) => (s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_Z80'] }), /architectures\[0\]: unknown architecture/],
    ['a value JSON cannot hold exactly', (s) => (s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 2 ** 60, op: 'SCMP_CMP_EQ' }] }] }), /args\[0\]\.value: must be an integer from 0 to 2\^53-1/],
    ['an AppArmor profile on a host without AppArmor', (s) => (s.process!.apparmorProfile = 'docker-default'), /process\.apparmorProfile: AppArmor is not enabled on this host/],
    ['an SELinux label', (s) => ((s.process as unknown as Record<string, unknown>).selinuxLabel = 'system_u:system_r:container_t:s0'), /process\.selinuxLabel: tsrun does not apply SELinux labels/],
    ['hooks', (s) => ((s as unknown as Record<string, unknown>).hooks = { prestart: [{ path: '/bin/true' }] }), /hooks: lifecycle hooks are not supported/],
    ['a personality', (s) => ((s.linux as unknown as Record<string, unknown>).personality = { domain: 'LINUX32' }), /linux\.personality: execution domains/],
    ['an idmapped mount', (s) => s.mounts!.push({ destination: '/m', type: 'bind', source: '/tmp', options: ['bind'], uidMappings: [{ containerID: 0, hostID: 1000, size: 1 }] } as never), /mounts\[\d+\]\.uidMappings: idmapped mounts are not supported/],
  ];
  for (const [what, edit, err] of cases) {
    const bundle = makeBundle(testSpec(['true'], edit));
    const r = tsrun(['run', '--bundle', bundle, uniqueId('refuse')], { root });
    removeBundle(bundle);
    t.equal(r.status, 125, what);
    t.match(r.stderr, err, what);
    t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`);
  }
  const r = ts(['run', '--rm', '--security-opt', 'apparmor=docker-default', 'busybox', 'true']);
  t.equal(r.status, 125);
  t.match(r.stderr, /^tsrun: --security-opt apparmor=docker-default: AppArmor is not enabled on this host/);
  t.equal(ts(['run', '--rm', '--security-opt', 'apparmor=unconfined', 'busybox', 'true']).status, 0, 'apparmor=unconfined asks for nothing');
  t.equal(ts(['run', '--rm', '--security-opt', 'label=disable', 'busybox', 'true']).status, 0);
  t.match(ts(['run', '--rm', '--security-opt', 'label=type:svirt_t', 'busybox', 'true']).stderr, /tsrun does not apply SELinux labels/);
  t.match(ts(['run', '--rm', '--security-opt', 'bogus=1', 'busybox', 'true']).stderr, /--security-opt bogus=1: unknown option/);
});
