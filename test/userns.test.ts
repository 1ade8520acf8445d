// User namespaces for image containers: the container's root is an
// unprivileged host id, the image's files appear as its own through
// idmapped layers, and --userns=auto keeps containers' ranges apart.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { busyboxImage, busyboxRootfs, mountsUnder, needsRoot, removeRootfs, stateRoot, TEST_BASE, tsrun } from './helpers';
import { probe, removeProbe } from './probe';
import { makeLayout, makeTar } from './images';
import { execFileSync } from 'node:child_process';
import { native } from '../src/native';

const root = stateRoot('userns');
const storage = path.join(TEST_BASE, 'storage', `userns-${process.pid}`);
const work = path.join(TEST_BASE, `userns-${process.pid}`);
const ts = (args: string[]) => tsrun(['--storage', storage, ...args], { root });

// --userns=auto reads /etc/subuid and /etc/subgid: the test adds a range for
// "containers" and puts the files back exactly as they were.
const SUBID = ['/etc/subuid', '/etc/subgid'];
const saved = new Map<string, string | null>();
function addSubordinateRange(line: string) {
  for (const f of SUBID) {
    if (!saved.has(f)) saved.set(f, fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : null);
    fs.appendFileSync(f, `${line}\n`);
  }
}
function restoreSubordinateFiles() {
  for (const [f, text] of saved) {
    if (text === null) fs.rmSync(f, { force: true });
    else fs.writeFileSync(f, text);
  }
  saved.clear();
}

t.before(() => {
  if (needsRoot) return;
  fs.mkdirSync(work, { recursive: true });
  // The container's root (an unprivileged host id) passes through the store's parents to its rootfs.
  fs.mkdirSync(path.dirname(storage), { recursive: true });
  fs.chmodSync(path.dirname(storage), 0o755);
  busyboxImage(storage);
});
t.teardown(() => {
  restoreSubordinateFiles();
  fs.rmSync(storage, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
  removeProbe();
  removeRootfs();
});

t.test('--uidmap: root inside is an unprivileged id outside', { skip: needsRoot }, async (t) => {
  const secret = path.join(work, 'secret');
  fs.writeFileSync(secret, 'host root only\n', { mode: 0o600 });
  const map = ['--uidmap', '0:100000:65536'];
  let r = ts(['run', '--name', 'ns1', ...map, '-v', `${secret}:/secret:ro`, '-v', `${probe()}:/probe:ro`, 'busybox', 'sh', '-c', 'cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c "%u:%g" /bin/busybox /etc/passwd; touch /made; cat /secret 2>&1; /probe settime']);
  t.equal(r.status, 1, r.stderr);
  const out = r.stdout.trim().split('\n');
  t.match(out[0], /^\s*0\s+100000\s+65536$/, 'uid map');
  t.match(out[1], /^\s*0\s+100000\s+65536$/, 'gid map (as --uidmap when --gidmap is not given)');
  t.equal(out[2], '0', 'root inside');
  t.same(out.slice(3, 5), ['0:0', '0:0'], 'the image\'s files are its root\'s, through idmapped layers');
  t.match(out[5], /Permission denied/, 'a host file only host root may read stays closed');
  t.equal(out[6], 'EPERM', 'capabilities reach only what the namespace owns (not the clock)');
  const id = JSON.parse(ts(['inspect', 'ns1']).stdout)[0].Id;
  const made = fs.statSync(path.join(storage, 'containers', id, 'upper', 'made'));
  t.same([made.uid, made.gid], [100000, 100000], 'what it writes is owned by the mapped id on the host');
  r = ts(['start', 'ns1']);
  t.equal(r.status, 0, 'it starts again with the same mapping');
  t.equal(ts(['wait', 'ns1']).stdout.trim(), '1');
  t.equal(ts(['rm', 'ns1']).status, 0);
});

t.test('with a user and a cgroup namespace of its own, /sys/fs/cgroup is a fresh mount rooted at the container\'s cgroup, not the host\'s tree', { skip: needsRoot }, async (t) => {
  const r = ts(['run', '--rm', '--uidmap', '0:100000:65536', 'busybox', 'sh', '-c', 'grep " /sys/fs/cgroup" /proc/self/mountinfo | cut -d" " -f4,5 | sort -u; ls /sys/fs/cgroup/pids 2>/dev/null || ls /sys/fs/cgroup']);
  t.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  const mounts = lines.filter((l) => l.startsWith('/'));
  t.ok(mounts.length > 0, `cgroup mounts inside: ${mounts.join(', ')}`);
  t.ok(mounts.every((l) => l.split(' ')[0] === '/'), 'each is the root of its hierarchy in the namespace: the container\'s own cgroup');
  t.notOk(lines.includes('tsrun'), 'the host\'s cgroups (tsrun\'s parent among them) are not there');
});

t.test('exec joins the container\'s user namespace', { skip: needsRoot }, async (t) => {
  let r = ts(['run', '-d', '--name', 'ns2', '--uidmap', '0:300000:70000', '--gidmap', '0:400000:70000', 'busybox', 'sleep', '60']);
  t.equal(r.status, 0, r.stderr);
  r = ts(['exec', 'ns2', 'sh', '-c', 'cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /etc/x; stat -c %u /etc/x']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^\s*0\s+300000\s+70000\n\s*0\s+400000\s+70000\n0\n0\n$/);
  t.equal(ts(['exec', '-u', 'nobody', 'ns2', 'id', '-u']).stdout, '65534\n');
  t.equal(ts(['rm', '-f', 'ns2']).status, 0);
});

t.test('--userns=auto: ranges of /etc/subuid for "containers", one per container', { skip: needsRoot }, async (t) => {
  let r = ts(['run', '--rm', '--userns=auto', 'busybox', 'true']);
  if (!(fs.existsSync('/etc/subuid') && /^containers:/m.test(fs.readFileSync('/etc/subuid', 'utf8')))) {
    t.equal(r.status, 125);
    t.match(r.stderr, /^tsrun: --userns=auto: \/etc\/subuid gives the user "containers" no ids \(add a line such as containers:2147483647:2147483648\)\n$/);
  }
  addSubordinateRange('containers:2000000:200000');
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    r = ts(['run', '-d', '--userns=auto', 'busybox', 'sleep', '60']);
    t.equal(r.status, 0, r.stderr);
    ids.push(r.stdout.trim());
  }
  const maps = ids.map((id) => ts(['exec', id, 'cat', '/proc/self/uid_map']).stdout.trim().split(/\s+/).map(Number));
  t.ok(maps.every(([c, , n]) => c === 0 && n === 65536), 'each maps 65536 ids from 0');
  const starts = maps.map(([, h]) => h).sort((a, b) => a - b);
  t.same(starts, [2000000, 2065536, 2131072], 'disjoint ranges, in order, from the subordinate range');
  r = ts(['run', '--rm', '--userns=auto', 'busybox', 'true']);
  t.equal(r.status, 125, 'a fourth range does not fit');
  t.match(r.stderr, /no 65536 ids of \/etc\/subuid's ranges for "containers" are free of other containers/);
  t.equal(ts(['run', '--rm', '--userns=auto:size=1000', 'busybox', 'sh', '-c', 'cat /proc/self/uid_map']).stdout.trim().split(/\s+/).join(' '), '0 2196608 1000', 'a smaller one still fits');
  t.equal(ts(['rm', '-f', ...ids]).status, 0);
  r = ts(['run', '--rm', '--userns=auto', 'busybox', 'sh', '-c', 'cat /proc/self/uid_map']);
  t.match(r.stdout, /^\s*0\s+2000000\s+65536$/m, 'a removed container\'s range is free again');
  restoreSubordinateFiles();
});

t.test('refusals: one clear line each', { skip: needsRoot }, async (t) => {
  const cases: [string[], RegExp][] = [
    [['--userns=keep-id'], /--userns keep-id: tsrun knows host and auto\[:size=N\]/],
    [['--userns=auto', '--uidmap', '0:1:1'], /--userns=auto and --uidmap\/--gidmap cannot be used together/],
    [['--uidmap', '1:100000:10'], /the container's root \(id 0\) must be mapped/],
    [['--uidmap', '0:100000:100', '-u', '500'], /the container's user 500 is not mapped into its user namespace/],
    [['--uidmap', '0:100000'], /--uidmap 0:100000: expected CONTAINER_ID:HOST_ID:SIZE/],
    [['--uidmap', '0:4294967290:100'], /the range does not fit/],
  ];
  for (const [flags, err] of cases) {
    const r = ts(['run', '--rm', ...flags, 'busybox', 'true']);
    t.equal(r.status, 125, flags.join(' '));
    t.match(r.stderr, err, flags.join(' '));
    t.equal(r.stderr.trim().split('\n').length, 1);
  }
  t.same(fs.readdirSync(path.join(storage, 'containers')), [], 'nothing left');
});

// A file capability as tar carries it: VFS_CAP_REVISION_2 with the effective
// flag, CAP_NET_BIND_SERVICE (bit 10) permitted.
const CAP_V2 = Buffer.alloc(20);
CAP_V2.writeUInt32LE(0x02000001, 0);
CAP_V2.writeUInt32LE(1 << 10, 4);

t.test('a store whose filesystem takes no idmapped mount (ramfs): the image copied once, owned by the mapped ids', { skip: needsRoot }, async (t) => {
  const flat = path.join(TEST_BASE, `userns-ramfs-${process.pid}`);
  fs.mkdirSync(flat, { recursive: true });
  native().mount('ramfs', flat, 'ramfs', 0, 'mode=755');
  const flatStorage = path.join(flat, 'storage');
  const flatRoot = path.join(flat, 'state');
  t.teardown(() => {
    for (const id of tsrun(['--storage', flatStorage, 'ps', '-aq'], { root: flatRoot }).stdout.split('\n').filter(Boolean)) tsrun(['--storage', flatStorage, 'rm', '-f', id], { root: flatRoot });
    native().umount2(flat, 2);
    fs.rmSync(flat, { recursive: true, force: true });
  });
  // Owners past root, setuid, a whiteout over a lower file, a hardlink, a device node.
  const base = execFileSync('tar', ['-C', busyboxRootfs(), '--numeric-owner', '-c', '.'], { maxBuffer: 64 << 20 });
  const l2 = await makeTar([
    { name: 'seed/', type: 'directory', mode: 0o750, uid: 1000, gid: 1001 },
    { name: 'seed/owned', data: 'mine', uid: 1000, gid: 1001, mode: 0o640 },
    { name: 'seed/suid', data: '#!/bin/sh\n', mode: 0o4755 },
    { name: 'seed/gone', data: 'gone' },
    { name: 'seed/hl', data: 'hard', uid: 7, gid: 7 },
    { name: 'seed/hl2', type: 'link', linkname: 'seed/hl' },
    { name: 'seed/null0', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 'seed/far', data: 'an id past the map', uid: 70000, gid: 70000 },
  ]);
  const l3 = await makeTar([
    { name: 'seed/', type: 'directory', mode: 0o750, uid: 1000, gid: 1001 },
    { name: 'seed/.wh.gone' },
  ]);
  // A file capability needs extended attributes, which ramfs has not: only the
  // store on the test's own filesystem gets it (idmapped on this kernel; the
  // chowned copy where that filesystem is tmpfs before Linux 6.3, as in the v2 guest).
  const caps = await makeTar([{ name: 'cap/', type: 'directory' }, { name: 'cap/busybox', data: fs.readFileSync(path.join(busyboxRootfs(), 'bin', 'busybox')), mode: 0o755, pax: { 'SCHILY.xattr.security.capability': CAP_V2.toString('latin1') } }]);
  const layouts = { idmapped: makeLayout('remapped', 'v1', [base, l2, l3, caps], { Cmd: ['sh'] }), ramfs: makeLayout('remapped-flat', 'v1', [base, l2, l3], { Cmd: ['sh'] }) };
  t.teardown(() => fs.rmSync(path.join(TEST_BASE, 'layouts'), { recursive: true, force: true }));
  const LIST = 'cd /seed && for f in $(ls -a | sort); do stat -c "%n %a %u:%g %t,%T" $f; done; stat -c %i hl hl2 | uniq | wc -l; [ ! -e /cap ] || su -s /bin/sh nobody -c "/cap/busybox grep CapEff /proc/self/status" 2>&1; touch /made';
  const seen: Record<string, string> = {};
  for (const [label, store, state] of [['idmapped', storage, root], ['ramfs', flatStorage, flatRoot]]) {
    const tsr = (args: string[]) => tsrun(['--storage', store, ...args], { root: state });
    let r = tsr(['load', '-i', layouts[label as keyof typeof layouts]]);
    t.equal(r.status, 0, r.stderr);
    tsr(['tag', r.stdout.match(/sha256:[0-9a-f]{64}/)![0], 'remapped']);
    r = tsr(['run', '--name', `remap-${label}`, '--uidmap', '0:100000:65536', 'remapped', 'sh', '-c', LIST]);
    t.equal(r.status, 0, `${label}: ${r.stderr}`);
    seen[label] = r.stdout;
    const dir = path.join(store, 'containers', JSON.parse(tsr(['inspect', `remap-${label}`]).stdout)[0].Id);
    const made = fs.statSync(path.join(dir, 'upper', 'made'));
    t.same([made.uid, made.gid], [100000, 100000], `${label}: what the container writes is owned by its mapped root`);
    if (label === 'ramfs') {
      const lower = path.join(dir, 'lower');
      t.same([fs.statSync(path.join(lower, 'seed', 'owned')).uid, fs.statSync(path.join(lower, 'bin', 'busybox')).uid], [101000, 100000], 'the copy is owned by the host ids the map gives');
      t.notOk(fs.existsSync(path.join(lower, 'seed', 'gone')), 'whited-out files are not copied');
      t.equal(fs.statSync(path.join(lower, 'seed', 'far')).uid, 65534, 'an id the map does not reach is the overflow id');
      t.equal(fs.statSync(path.join(lower, 'seed', 'suid')).mode & 0o7777, 0o4755, 'setuid survives the chown');
      // The second start uses the copy made by the first.
      const ino = fs.statSync(lower).ino;
      r = tsr(['start', `remap-${label}`]);
      t.equal(r.status, 0, r.stderr);
      t.equal(tsr(['wait', `remap-${label}`]).stdout.trim(), '0');
      t.equal(fs.statSync(lower).ino, ino, 'a later start reuses the copy');
      t.equal(tsr(['rm', `remap-${label}`]).status, 0);
      t.notOk(fs.existsSync(dir), 'rm takes the copy with the container');
      t.same(mountsUnder(flat).filter((m) => m !== flat), [], 'no mount left under the store');
    } else {
      t.equal(tsr(['rm', `remap-${label}`]).status, 0);
    }
    t.equal(tsr(['rmi', 'remapped']).status, 0);
  }
  t.match(seen.ramfs, /^\. 750 1000:1001 /m, 'the directory keeps its owner as the container sees it');
  t.match(seen.idmapped, /^CapEff:\s*0000000000000400$/m, 'the file capability holds inside the namespace');
  t.match(seen.ramfs, /^far 644 65534:65534 /m, 'an unmapped owner shows as nobody');
  t.match(seen.ramfs, /^hl 644 7:7 0,0\nhl2 644 7:7 0,0\n(.*\n)*1$/m, 'the hardlink stays one file');
  t.match(seen.ramfs, /^null0 666 0:0 1,3$/m);
  t.notMatch(seen.ramfs, /^gone /m);
  t.equal(seen.ramfs, seen.idmapped.replace(/^CapEff:.*\n/m, ''), 'the container sees exactly what it sees through idmapped layers');
});
