// Each namespace and process setting, checked from inside a busybox container.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { capabilityNames } from '../src/process/capabilities';
import { busyboxRootfs, makeBundle, needsRoot, removeBundle, removeRootfs, runIn, spawnTsrun, stateRoot, TEST_BASE, testSpec, tsrun, uniqueId } from './helpers';

const root = stateRoot('namespaces');
t.teardown(removeRootfs);

const sh = (script: string) => ['sh', '-c', script];
const lines = (s: string) => s.trim().split('\n');

t.test('uts: hostname and domainname are the container\'s own', { skip: needsRoot }, async (t) => {
  const r = runIn(sh('uname -n; cat /proc/sys/kernel/domainname'), { root, edit: (s) => Object.assign(s, { hostname: 'box1', domainname: 'example.org' }) });
  t.equal(r.status, 0, r.stderr);
  t.same(lines(r.stdout), ['box1', 'example.org']);
  t.not(execFileSync('uname', ['-n'], { encoding: 'utf8' }).trim(), 'box1', 'the host keeps its hostname');
});

t.test('pid: the command is pid 1 and ps sees only the container', { skip: needsRoot }, async (t) => {
  const r = runIn(sh('echo $$; ps -o pid,comm; true'), { root });
  t.equal(r.status, 0, r.stderr);
  const [self, header, ...procs] = lines(r.stdout);
  t.equal(self, '1');
  t.match(header, /PID/);
  t.same(procs.map((l) => l.trim().split(/\s+/)[1]).sort(), ['ps', 'sh']);
});

t.test('network: only the loopback device', { skip: needsRoot }, async (t) => {
  const r = runIn(sh('ip -o link'), { root });
  t.equal(r.status, 0, r.stderr);
  t.equal(lines(r.stdout).length, 1);
  t.match(r.stdout, /^1: lo: /);
});

t.test('network: a namespace joined by path (two-stage spawn)', { skip: needsRoot }, async (t) => {
  const ns = `tsrun-test-${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  t.teardown(() => execFileSync('ip', ['netns', 'del', ns]));
  execFileSync('ip', ['-n', ns, 'link', 'add', 'probe0', 'type', 'veth', 'peer', 'name', 'probe1']);
  const r = runIn(sh('ip -o link | cut -d: -f2'), {
    root,
    edit: (s) => (s.linux!.namespaces = s.linux!.namespaces!.map((n) => (n.type === 'network' ? { type: 'network', path: `/run/netns/${ns}` } : n))),
  });
  t.equal(r.status, 0, r.stderr);
  t.same(lines(r.stdout).map((l) => l.trim().replace(/@.*/, '')).sort(), ['lo', 'probe0', 'probe1']);
});

t.test('uts: a namespace joined by path gets the config\'s hostname (as a CRI container joins its pod\'s); the host\'s is refused', { skip: needsRoot }, async (t) => {
  const holder = spawn('unshare', ['--uts', 'sleep', '60'], { stdio: 'ignore' });
  t.teardown(() => holder.kill('SIGKILL'));
  const uts = `/proc/${holder.pid}/ns/uts`;
  for (let i = 0; i < 100 && fs.readlinkSync(uts) === fs.readlinkSync('/proc/self/ns/uts'); i++) await new Promise((r) => setTimeout(r, 20));
  const hostBefore = os.hostname();
  const r = runIn(sh('hostname'), {
    root,
    edit: (s) => {
      s.hostname = 'in-the-pod';
      s.linux!.namespaces = s.linux!.namespaces!.map((n) => (n.type === 'uts' ? { type: 'uts', path: uts } : n));
    },
  });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout.trim(), 'in-the-pod', 'the container sees the hostname');
  t.equal(execFileSync('nsenter', ['-u', '-t', String(holder.pid), 'hostname'], { encoding: 'utf8' }).trim(), 'in-the-pod', 'set in the namespace it joined');
  t.equal(os.hostname(), hostBefore, 'the host keeps its own');
  const host = runIn(['true'], { root, edit: (s) => (s.linux!.namespaces = s.linux!.namespaces!.map((n) => (n.type === 'uts' ? { type: 'uts', path: `/proc/${process.pid}/ns/uts` } : n))) });
  t.equal(host.status, 125);
  t.match(host.stderr, /hostname: setting it needs a uts namespace of the container's own/);
});

t.test('ipc: System V IPC objects are not the host\'s', { skip: needsRoot }, async (t) => {
  const id = execFileSync('ipcmk', ['-M', '4096'], { encoding: 'utf8' }).match(/(\d+)/)![1];
  t.teardown(() => spawnSync('ipcrm', ['-m', id]));
  t.match(execFileSync('cat', ['/proc/sysvipc/shm'], { encoding: 'utf8' }), new RegExp(`\\s${id}\\s`), 'the host has the segment');
  const r = runIn(sh('tail -n +2 /proc/sysvipc/shm | wc -l'), { root });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout.trim(), '0', 'the container sees no segments');
});

t.test('mount: the mount table is the container\'s', { skip: needsRoot }, async (t) => {
  const r = runIn(sh('cut -d" " -f5 /proc/self/mountinfo'), { root });
  t.equal(r.status, 0, r.stderr);
  const points = lines(r.stdout);
  for (const p of ['/', '/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/sys/fs/cgroup']) t.ok(points.includes(p), `${p} is mounted`);
  const expected = /^\/(proc|dev|sys)?(\/|$)/;
  t.same(points.filter((p) => !expected.test(p)), [], 'no host mount is visible');
  t.notOk(points.some((p) => p.startsWith('/run/tsrun-test')), 'the rootfs path is not visible');
});

t.test('user: uid/gid maps in a new user namespace', { skip: needsRoot }, async (t) => {
  const r = runIn(sh('cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; ls -ln /bin/busybox | tr -s " " | cut -d" " -f3'), {
    root,
    edit: (s) => {
      s.linux!.namespaces!.push({ type: 'user' });
      s.linux!.uidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
      s.linux!.gidMappings = [{ containerID: 0, hostID: 300000, size: 65536 }];
    },
  });
  t.equal(r.status, 0, r.stderr);
  const out = lines(r.stdout).map((l) => l.trim().split(/\s+/).join(' '));
  t.same(out.slice(0, 4), ['0 200000 65536', '0 300000 65536', '0', '0']);
  t.equal(out[4], '65534', 'host root, unmapped, shows as the overflow uid');
});

t.test('masked paths are unreadable, readonly paths unwritable, root read-only', { skip: needsRoot }, async (t) => {
  const r = runIn(sh('wc -c < /proc/keys; ls /sys/firmware | wc -l; echo x > /proc/sys/kernel/hostname || echo ro-sys; touch /newfile || echo ro-root'), { root });
  t.same(lines(r.stdout), ['0', '0', 'ro-sys', 'ro-root']);
  t.match(r.stderr, /Read-only file system/);
});

t.test('capabilities in /proc/self/status match the config', { skip: needsRoot }, async (t) => {
  const caps = ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
  const status = (edit: Parameters<typeof runIn>[1]['edit']) => {
    const r = runIn(sh('grep ^Cap /proc/self/status'), { root, edit });
    t.equal(r.status, 0, r.stderr);
    return Object.fromEntries(lines(r.stdout).map((l) => l.split(/:\s+/)).map(([k, v]) => [k, capabilityNames(v)]));
  };
  const asRoot = status((s) => (s.process!.capabilities = { bounding: caps, effective: caps, permitted: caps, ambient: [] }));
  t.same(asRoot.CapBnd, caps);
  t.same(asRoot.CapEff, caps);
  t.same(asRoot.CapPrm, caps);
  const asUser = status((s) => {
    s.process!.user = { uid: 1000, gid: 1000 };
    s.process!.capabilities = { bounding: caps, effective: ['CAP_KILL'], permitted: ['CAP_KILL'], inheritable: ['CAP_KILL'], ambient: ['CAP_KILL'] };
  });
  t.same(asUser.CapBnd, caps);
  t.same(asUser.CapAmb, ['CAP_KILL'], 'ambient survives exec for a non-root user');
  t.same(asUser.CapEff, ['CAP_KILL']);
  t.same(asUser.CapInh, ['CAP_KILL']);
});

t.test('rlimits, cwd, env, umask, user and groups', { skip: needsRoot }, async (t) => {
  const r = runIn(sh('grep -E "open files|core file" /proc/self/limits; pwd; echo "$GREETING"; umask; id'), {
    root,
    edit: (s) => {
      s.process!.rlimits = [
        { type: 'RLIMIT_NOFILE', soft: 512, hard: 1024 },
        { type: 'RLIMIT_CORE', soft: 0, hard: 0 },
      ];
      s.process!.cwd = '/tmp';
      s.process!.env!.push('GREETING=hello there');
      s.process!.user = { uid: 1234, gid: 5678, umask: 0o027, additionalGids: [10, 20] };
    },
  });
  t.equal(r.status, 0, r.stderr);
  const [core, files, cwd, greeting, umask, id] = lines(r.stdout);
  t.match(core, /^Max core file size\s+0\s+0\s/);
  t.match(files, /^Max open files\s+512\s+1024\s/);
  t.equal(cwd, '/tmp');
  t.equal(greeting, 'hello there');
  t.equal(umask, '0027');
  t.equal(id, 'uid=1234 gid=5678 groups=10,20');
});

t.test('oomScoreAdj and sysctl are applied', { skip: needsRoot }, async (t) => {
  const r = runIn(sh('cat /proc/self/oom_score_adj /proc/sys/kernel/msgmax'), {
    root,
    edit: (s) => {
      s.process!.oomScoreAdj = 321;
      s.linux!.sysctl = { 'kernel.msgmax': '4321' };
    },
  });
  t.equal(r.status, 0, r.stderr);
  t.same(lines(r.stdout), ['321', '4321']);
});

t.test('exit codes: 0, 42, 127 for a missing command, 126, 137 for SIGKILL', { skip: needsRoot }, async (t) => {
  t.equal(runIn(sh('exit 0'), { root }).status, 0);
  t.equal(runIn(sh('exit 42'), { root }).status, 42);
  const missing = runIn(['no-such-command'], { root });
  t.equal(missing.status, 127);
  t.match(missing.stderr, /^tsrun: step \d+ \(find "no-such-command" in PATH\): cannot run "no-such-command" in PATH=\S+: ENOENT/);
  t.equal(lines(missing.stderr).length, 1, 'one line');
  t.equal(runIn(['/etc/passwd'], { root }).status, 126);
  // pid 1 of a PID namespace cannot be killed from inside; without one, the shell can kill itself.
  const killed = runIn(sh('kill -9 $$'), { root, edit: (s) => (s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== 'pid')) });
  t.equal(killed.status, 137);
});

t.test('SIGTERM sent to tsrun run reaches the container', { skip: needsRoot }, async (t) => {
  const bundle = makeBundle(testSpec(sh('trap "echo got-term; exit 7" TERM; echo ready; while :; do sleep 0.1; done')));
  t.teardown(() => removeBundle(bundle));
  const child = spawnTsrun(['run', '--bundle', bundle, uniqueId('sig')], root);
  let out = '';
  await new Promise<void>((resolve) =>
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      if (out.includes('ready')) resolve();
    }),
  );
  child.kill('SIGTERM');
  const code = await new Promise((resolve) => child.on('exit', resolve));
  t.equal(code, 7);
  t.match(out, /got-term/);
});

t.test('cgroup: placed in its own cgroup before it runs, which is the root it sees', { skip: needsRoot }, async (t) => {
  const inside = runIn(sh('cat /proc/self/cgroup'), { root });
  t.equal(inside.status, 0, inside.stderr);
  t.ok(lines(inside.stdout).every((l) => l.endsWith(':/')), `every hierarchy is rooted at the container: ${inside.stdout}`);

  const nested = `/tsrun-test-${process.pid}/nested/deeper`;
  const bundle = makeBundle(testSpec(['sleep', '1000'], (s) => (s.linux!.cgroupsPath = nested)));
  t.teardown(() => removeBundle(bundle));
  const id = uniqueId('cg');
  t.equal(tsrun(['create', '--bundle', bundle, id], { root }).status, 0);
  const pid = JSON.parse(tsrun(['state', id], { root }).stdout).pid;
  const hostView = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  t.match(hostView, new RegExp(`:memory:${nested}\\n`), 'memory hierarchy, from the host');
  t.match(hostView, new RegExp(`:pids:${nested}\\n`), 'pids hierarchy, from the host');
  t.ok(fs.existsSync(`/sys/fs/cgroup/pids${nested}`));
  t.equal(tsrun(['delete', '--force', id], { root }).status, 0);
  t.notOk(fs.existsSync(`/sys/fs/cgroup/pids/tsrun-test-${process.pid}`), 'missing parents made for it are removed again');
  t.notOk(fs.existsSync(`/sys/fs/cgroup/memory/tsrun-test-${process.pid}`));
});

t.test('bind mounts: ro, rw, and noexec take effect; the host sees rw writes', { skip: needsRoot }, async (t) => {
  const host = fs.mkdtempSync(path.join(TEST_BASE, 'mnt-'));
  t.teardown(() => fs.rmSync(host, { recursive: true, force: true }));
  fs.writeFileSync(path.join(host, 'hello.txt'), 'from the host\n');
  fs.writeFileSync(path.join(host, 'run.sh'), '#!/bin/sh\necho ran\n', { mode: 0o755 });
  const r = runIn(sh('cat /ro/hello.txt; touch /ro/x || echo ro-refused; echo written > /rw/out.txt; /rw/run.sh; /noexec/run.sh || echo noexec-refused; cat /file.txt'), {
    root,
    edit: (s) =>
      s.mounts!.push(
        { destination: '/ro', type: 'bind', source: host, options: ['rbind', 'ro'] },
        { destination: '/rw', type: 'bind', source: host, options: ['rbind', 'rw'] },
        { destination: '/noexec', type: 'bind', source: host, options: ['bind', 'noexec'] },
        { destination: '/file.txt', type: 'bind', source: path.join(host, 'hello.txt'), options: ['bind', 'ro'] },
      ),
  });
  t.same(lines(r.stdout), ['from the host', 'ro-refused', 'ran', 'noexec-refused', 'from the host']);
  t.equal(fs.readFileSync(path.join(host, 'out.txt'), 'utf8'), 'written\n');
  t.notOk(fs.existsSync(path.join(host, 'x')));
});

const rootMountLine = `awk '$5 == "/"' /proc/self/mountinfo`;

t.test('tmpcopyup: a tmpfs starts with a copy of the directory it covers (owners, modes, links), and writes stay in it', { skip: needsRoot }, async (t) => {
  const r = runIn(['sh', '-c', 'grep " /etc " /proc/self/mountinfo | cut -d" " -f9; stat -c "%n %a %u:%g %F" /etc/passwd /etc/group; cat /etc/passwd | head -1; ls -ld /bin/sh | cut -c1; echo new > /etc/made && cat /etc/made; /bin/sh -c "echo the copied /bin runs"'], {
    root,
    edit: (s) => s.mounts!.push({ destination: '/etc', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'tmpcopyup'] }, { destination: '/bin', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'tmpcopyup'] }),
  });
  t.equal(r.status, 0, r.stderr);
  const [fstype, passwd, group, first, link, made, ran] = r.stdout.trim().split('\n');
  const host = (f: string) => fs.lstatSync(path.join(busyboxRootfs(), f));
  t.equal(fstype, 'tmpfs', '/etc is a tmpfs');
  t.equal(passwd, `/etc/passwd ${(host('etc/passwd').mode & 0o7777).toString(8)} ${host('etc/passwd').uid}:${host('etc/passwd').gid} regular file`, 'the file, its mode and owner copied');
  t.match(group, /^\/etc\/group /);
  t.equal(first, fs.readFileSync(path.join(busyboxRootfs(), 'etc/passwd'), 'utf8').split('\n')[0], 'its content');
  t.equal(link, host('bin/sh').isSymbolicLink() ? 'l' : '-', 'a link stays a link');
  t.equal(made, 'new');
  t.equal(ran, 'the copied /bin runs');
  t.notOk(fs.existsSync(path.join(busyboxRootfs(), 'etc/made')), 'the write stayed in the tmpfs');
  const bad = runIn(['true'], { root, edit: (s) => s.mounts!.push({ destination: '/proc2', type: 'proc', source: 'proc', options: ['tmpcopyup'] }) });
  t.equal(bad.status, 125);
  t.match(bad.stderr, /tmpcopyup applies to tmpfs mounts only, not proc/);
});

t.test('linux.devices adds device nodes; rootfsPropagation sets the root\'s propagation', { skip: needsRoot }, async (t) => {
  const r = runIn(sh(`ls -l /dev/fuse /dev/null | tr -s " " | cut -d" " -f1,3-6; ${rootMountLine}`), {
    root,
    edit: (s) => {
      s.linux!.devices = [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o640, uid: 0, gid: 0 }];
      s.linux!.rootfsPropagation = 'private';
    },
  });
  t.equal(r.status, 0, r.stderr);
  const [fuse, devnull, rootLine] = lines(r.stdout);
  t.equal(fuse, 'crw-r----- root root 10, 229');
  t.equal(devnull, 'crw-rw-rw- root root 1, 3');
  t.notMatch(rootLine, /(shared|master):/, 'private: neither shared nor a slave');
  const shared = runIn(sh(rootMountLine), { root, edit: (s) => (s.linux!.rootfsPropagation = 'rshared') });
  t.match(shared.stdout, / shared:\d+ /, 'rshared: a peer group of its own');
});

t.test('an rbind mounted ro is read-only all the way down, submounts too', { skip: needsRoot }, async (t) => {
  const { native } = await import('../src/native');
  const host = fs.mkdtempSync(path.join(TEST_BASE, 'rro-'));
  fs.mkdirSync(path.join(host, 'sub'));
  native().mount('tmpfs', path.join(host, 'sub'), 'tmpfs', 0, 'size=1m');
  t.teardown(() => {
    native().umount2(path.join(host, 'sub'), 2);
    fs.rmSync(host, { recursive: true, force: true });
  });
  const r = runIn(sh('touch /data/top || echo top-ro; touch /data/sub/x || echo sub-ro'), {
    root,
    edit: (s) => s.mounts!.push({ destination: '/data', type: 'bind', source: host, options: ['rbind', 'ro'] }),
  });
  t.same(lines(r.stdout), ['top-ro', 'sub-ro']);
  t.notOk(fs.existsSync(path.join(host, 'sub', 'x')));
});
