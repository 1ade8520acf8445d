// Volumes as Docker's users keep data in them: named volumes that outlive
// their containers, copy-up of the image's content into a new volume,
// anonymous volumes from VOLUME and -v /path, --mount of each type,
// --volumes-from, the volume verbs, and bad input refused with nothing made.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { native } from '../src/native';
import { busyboxImage, busyboxRootfs, mountsUnder, needsRoot, removeRootfs, stateRoot, TEST_BASE, tsrun } from './helpers';
import { makeLayout, makeTar } from './images';

const root = stateRoot('volume');
const storage = path.join(TEST_BASE, 'storage', `volume-${process.pid}`);
const volumesDir = path.join(storage, 'volumes');
const ts = (args: string[]) => tsrun(['--storage', storage, ...args], { root });
const run = (args: string[]) => ts(['run', '--rm', ...args]);
const volumeNames = () => ts(['volume', 'ls', '-q']).stdout.split('\n').filter(Boolean);
const inspect = (id: string) => JSON.parse(ts(['inspect', id]).stdout)[0];
const hostDir = path.join(TEST_BASE, `volume-host-${process.pid}`);

// One line per path: name, type and mode (%f is raw hex), owner, size, device numbers, link target, content.
const LISTING = (dir: string) => `cd ${dir} && find . | sort | while read -r f; do
  s=$(stat -c '%n %f %u:%g %s %t,%T' "$f")
  if [ -L "$f" ]; then echo "$s -> $(readlink "$f")"
  elif [ -f "$f" ]; then echo "$s $(md5sum < "$f" | cut -c1-8)"
  else echo "$s"; fi
done; stat -c '%i' ${dir}/hl ${dir}/hl2 | uniq | wc -l`;

let layout = '';

t.before(async () => {
  if (needsRoot) return;
  busyboxImage(storage);
  fs.mkdirSync(hostDir, { recursive: true });
  // A two-layer image whose /seed the second layer changes: a deletion, an opaque directory, new files.
  const base = execFileSync('tar', ['-C', busyboxRootfs(), '--numeric-owner', '-c', '.'], { maxBuffer: 64 << 20 });
  const l2 = await makeTar([
    { name: 'seed/', type: 'directory', mode: 0o750, uid: 1000, gid: 1001 },
    { name: 'seed/owned', data: 'mine', uid: 1000, gid: 1001, mode: 0o640 },
    { name: 'seed/suid', data: '#!/bin/sh\n', mode: 0o4755 },
    { name: 'seed/private/', type: 'directory', mode: 0o700, uid: 7, gid: 7 },
    { name: 'seed/private/key', data: 'k', mode: 0o600, uid: 7, gid: 7 },
    { name: 'seed/gone', data: 'gone' },
    { name: 'seed/opq/', type: 'directory' },
    { name: 'seed/opq/old', data: 'old' },
    { name: 'seed/link', type: 'symlink', linkname: '/etc/passwd' },
    { name: 'seed/hl', data: 'hard' },
    { name: 'seed/hl2', type: 'link', linkname: 'seed/hl' },
    { name: 'seed/null0', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 'seed/fifo', type: 'fifo', mode: 0o644 },
    { name: 'seed/x.txt', data: 'x', pax: { 'SCHILY.xattr.user.tsrun': 'hello' } },
    // The volume target reached through a symlink: resolved inside the image, never on the host.
    { name: 'escape', type: 'symlink', linkname: hostDir },
  ]);
  const l3 = await makeTar([
    { name: 'seed/', type: 'directory', mode: 0o750, uid: 1000, gid: 1001 },
    { name: 'seed/.wh.gone' },
    { name: 'seed/opq/', type: 'directory' },
    { name: 'seed/opq/.wh..wh..opq' },
    { name: 'seed/opq/new', data: 'new' },
  ]);
  layout = makeLayout('seeded', 'v1', [base, l2, l3], { Cmd: ['sh'], Volumes: { '/anon': {} } });
  const r = ts(['load', '-i', layout]);
  if (r.status !== 0) throw new Error(r.stderr);
  ts(['tag', r.stdout.match(/sha256:[0-9a-f]{64}/)![0], 'seeded']);
});

t.teardown(() => {
  for (const id of ts(['ps', '-aq']).stdout.split('\n').filter(Boolean)) ts(['rm', '-f', id]);
  for (const v of volumeNames()) ts(['volume', 'rm', '-f', v]);
  fs.rmSync(storage, { recursive: true, force: true });
  fs.rmSync(hostDir, { recursive: true, force: true });
  fs.rmSync(path.join(TEST_BASE, 'layouts'), { recursive: true, force: true });
  removeRootfs();
});

t.test('data written in a named volume outlives its container', { skip: needsRoot }, async (t) => {
  const id = ts(['run', '-d', '--name', 'db', '-v', 'dbdata:/var/lib/db', 'busybox', 'sh', '-c', 'echo row1 > /var/lib/db/table; sleep 100']).stdout.trim();
  t.match(id, /^[0-9a-f]{64}$/);
  for (let i = 0; i < 100 && !fs.existsSync(path.join(volumesDir, 'dbdata', '_data', 'table')); i++) await new Promise((r) => setTimeout(r, 50));
  t.same(volumeNames(), ['dbdata'], 'made on first use, listed by volume ls');
  let r = ts(['volume', 'rm', 'dbdata']);
  t.equal(r.status, 125, 'a volume in use is not removed');
  t.match(r.stderr, /^tsrun: volume dbdata is in use by container db/);
  const m = inspect(id).Mounts;
  t.match(m, [{ Type: 'volume', Name: 'dbdata', Source: path.join(volumesDir, 'dbdata', '_data'), Destination: '/var/lib/db', Driver: 'local', Mode: 'z', RW: true }], 'inspect shows it as Docker does');
  t.equal(ts(['rm', '-f', '-v', id]).status, 0, 'rm -v keeps named volumes');
  t.same(volumeNames(), ['dbdata']);
  r = run(['-v', 'dbdata:/data', 'busybox', 'cat', '/data/table']);
  t.equal(r.stdout, 'row1\n', 'a second container reads what the first wrote');
  const v = JSON.parse(ts(['volume', 'inspect', 'dbdata']).stdout)[0];
  t.match(v, { Name: 'dbdata', Driver: 'local', Mountpoint: path.join(volumesDir, 'dbdata', '_data'), Scope: 'local', Options: null, UsedBy: [] });
  t.equal(ts(['volume', 'rm', 'dbdata']).stdout, 'dbdata\n');
  t.same(volumeNames(), []);
});

t.test('a new volume is filled from the image: owners, modes, links, devices, xattrs, whiteouts', { skip: needsRoot }, async (t) => {
  const inImage = run(['--entrypoint', 'sh', 'seeded', '-c', LISTING('/seed')]);
  t.equal(inImage.status, 0, inImage.stderr);
  const copied = run(['-v', 'seedvol:/seed', 'seeded', 'sh', '-c', LISTING('/seed')]);
  t.equal(copied.status, 0, copied.stderr);
  // Read back through another image that has no /seed: the volume itself holds the tree.
  const kept = run(['-v', 'seedvol:/seed', 'busybox', 'sh', '-c', LISTING('/seed')]);
  t.equal(kept.stdout, inImage.stdout, 'the volume holds the image\'s /seed exactly');
  t.equal(copied.stdout, inImage.stdout);
  t.match(kept.stdout, /^\. 41e8 1000:1001 /m, 'the volume\'s root takes the directory\'s owner and mode');
  t.match(kept.stdout, /^\.\/owned 81a0 1000:1001 4 /m);
  t.match(kept.stdout, /^\.\/suid 89ed 0:0 /m, 'setuid kept');
  t.match(kept.stdout, /^\.\/private 41c0 7:7 /m);
  t.match(kept.stdout, /^\.\/link a1ff 0:0 .* -> \/etc\/passwd$/m, 'a symlink is copied as a symlink');
  t.match(kept.stdout, /^\.\/null0 21b6 0:0 0 1,3$/m, 'a device node');
  t.match(kept.stdout, /^\.\/fifo 11a4 /m);
  t.notMatch(kept.stdout, /\.\/gone/, 'a file the top layer deleted is not copied');
  t.match(kept.stdout, /^\.\/opq\/new /m);
  t.notMatch(kept.stdout, /\.\/opq\/old/, 'an opaque directory hides the lower layer');
  t.equal(kept.stdout.trim().split('\n').pop(), '1', 'hardlinks stay one inode');
  t.equal(native().lgetxattr(path.join(volumesDir, 'seedvol', '_data', 'x.txt'), 'user.tsrun')?.toString(), 'hello', 'xattrs copied');
  t.equal(native().lgetxattr(path.join(volumesDir, 'seedvol', '_data', 'opq'), 'trusted.overlay.opaque'), null, 'overlay\'s own attributes are not');

  // A volume that holds data already is not filled again; nor is one mounted nocopy.
  t.equal(run(['-v', 'seedvol:/seed', 'seeded', 'sh', '-c', 'rm /seed/owned; echo mine > /seed/added']).status, 0);
  t.match(run(['-v', 'seedvol:/seed', 'seeded', 'ls', '/seed']).stdout, /^added$/m);
  t.notMatch(run(['-v', 'seedvol:/seed', 'seeded', 'ls', '/seed']).stdout, /^owned$/m, 'not filled again');
  t.equal(run(['-v', 'emptyvol:/seed:nocopy', 'seeded', 'ls', '-A', '/seed']).stdout, '', 'nocopy: the new volume stays empty');
  t.equal(run(['--mount', 'type=volume,source=emptyvol2,target=/seed,volume-nocopy', 'seeded', 'ls', '-A', '/seed']).stdout, '');

  // The target through an absolute symlink is the image's path, not the host's.
  fs.writeFileSync(path.join(hostDir, 'host-secret'), 'secret');
  const esc = run(['-v', 'escvol:/escape', 'seeded', 'ls', '-A', '/escape']);
  t.equal(esc.status, 0, esc.stderr);
  t.equal(esc.stdout, '', 'nothing of the host directory is copied');
  t.same(fs.readdirSync(path.join(volumesDir, 'escvol', '_data')), []);
  t.same(fs.readdirSync(hostDir), ['host-secret'], 'the host directory is untouched');
  for (const v of ['seedvol', 'emptyvol', 'emptyvol2', 'escvol']) t.equal(ts(['volume', 'rm', v]).status, 0);
});

t.test('anonymous volumes: the image\'s VOLUME and -v /path; rm -v and --rm remove them, never a named one', { skip: needsRoot }, async (t) => {
  const id = ts(['run', '-d', '-v', '/extra', '-v', 'named1:/named', 'seeded', 'sh', '-c', 'echo a > /anon/f; echo e > /extra/f; sleep 100']).stdout.trim();
  const mounts = inspect(id).Mounts as { Name?: string; Destination: string; Type: string }[];
  t.same(mounts.map((m) => m.Destination).sort(), ['/anon', '/extra', '/named']);
  const anon = mounts.filter((m) => m.Destination !== '/named').map((m) => m.Name!);
  for (const n of anon) t.match(n, /^[0-9a-f]{64}$/, 'an anonymous volume has a 64-hex name');
  t.same(volumeNames().sort(), [...anon, 'named1'].sort());
  t.match(JSON.parse(ts(['volume', 'inspect', anon[0]]).stdout)[0].Labels, { 'com.docker.volume.anonymous': '' });
  t.equal(ts(['rm', '-f', '-v', id]).status, 0);
  t.same(volumeNames(), ['named1'], 'rm -v removed the anonymous ones only');

  const r = run(['-v', '/extra', '-v', 'named1:/named', 'seeded', 'sh', '-c', 'ls /anon /extra >/dev/null && echo ok']);
  t.equal(r.stdout, 'ok\n', r.stderr);
  t.same(volumeNames(), ['named1'], '--rm removed its anonymous volumes');

  // Without -v they stay, unused: volume prune takes them, prune -a the named ones too.
  const id2 = ts(['run', '-d', 'seeded', 'true']).stdout.trim();
  const anon2 = (inspect(id2).Mounts as { Name: string }[])[0].Name;
  t.equal(ts(['wait', id2]).status, 0);
  t.match(ts(['volume', 'ls', '--filter', 'dangling=true', '-q']).stdout, /^named1$/m, 'dangling: named1 is used by no container');
  t.notMatch(ts(['volume', 'ls', '--filter', 'dangling=true', '-q']).stdout, new RegExp(anon2), 'the stopped container still uses its volume');
  t.equal(ts(['rm', id2]).status, 0);
  const pruned = ts(['volume', 'prune', '-f']);
  t.match(pruned.stdout, new RegExp(`^Deleted Volumes:\\n${anon2}\\n`), pruned.stderr);
  t.same(volumeNames(), ['named1'], 'prune leaves named volumes');
  t.match(ts(['volume', 'prune', '-a', '-f']).stdout, /^Deleted Volumes:\nnamed1\n/);
  t.same(volumeNames(), []);
});

t.test('--mount bind, volume and tmpfs, readonly seen from inside; -v ro; propagation', { skip: needsRoot }, async (t) => {
  fs.writeFileSync(path.join(hostDir, 'f'), 'from host');
  const r = run([
    '--mount', `type=bind,source=${hostDir},target=/b,readonly`,
    '--mount', 'type=volume,source=mvol,target=/v,readonly',
    '--mount', 'type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770',
    '-v', `${hostDir}:/b2:ro`,
    'busybox', 'sh', '-c', 'cat /b/f; echo; for d in /b /v /t /b2; do touch $d/x 2>/dev/null && echo "$d rw" || echo "$d ro"; done; stat -c %a /t; grep -E " /(t|b|v|b2) " /proc/mounts',
  ]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^from host$/m, 'the bind shows the host directory');
  t.match(r.stdout, /^\/b ro$/m);
  t.match(r.stdout, /^\/v ro$/m);
  t.match(r.stdout, /^\/t rw$/m);
  t.match(r.stdout, /^\/b2 ro$/m);
  t.match(r.stdout, /^1770$/m, 'tmpfs-mode');
  t.match(r.stdout, /^tmpfs \/t tmpfs rw,nosuid,nodev,noexec,.*size=1024k/m, 'tmpfs-size, and Docker\'s nosuid,nodev,noexec');
  t.notOk(fs.existsSync(path.join(hostDir, 'x')), 'nothing written to the host through a read-only bind');
  const id = ts(['run', '-d', '--mount', `type=bind,source=${hostDir},target=/b,bind-propagation=rslave`, 'busybox', 'sleep', '100']).stdout.trim();
  t.match(inspect(id).Mounts, [{ Type: 'bind', Source: hostDir, Destination: '/b', RW: true, Propagation: 'rslave' }]);
  t.equal(ts(['rm', '-f', id]).status, 0);
  t.equal(ts(['volume', 'rm', 'mvol']).status, 0);
});

t.test('a tmpfs volume is shared by its containers and unmounted when removed', { skip: needsRoot }, async (t) => {
  t.equal(ts(['volume', 'create', '--opt', 'type=tmpfs', '--opt', 'device=tmpfs', '--opt', 'o=size=2m', '--label', 'app=web', 'tv']).stdout, 'tv\n');
  t.equal(ts(['volume', 'create', 'tv']).stdout, 'tv\n', 'creating it again is no error (Docker)');
  t.match(ts(['volume', 'create', '--opt', 'type=tmpfs', '--opt', 'o=size=4m', 'tv']).stderr, /exists already with other options/);
  const r = run(['-v', 'tv:/tv', 'busybox', 'sh', '-c', 'df -k /tv | tail -n 1; echo kept > /tv/f']);
  t.match(r.stdout, /^tmpfs\s+2048\s/m, 'the volume is a 2 MiB tmpfs');
  t.equal(run(['-v', 'tv:/tv', 'busybox', 'cat', '/tv/f']).stdout, 'kept\n', 'the next container sees the same tmpfs');
  t.same(mountsUnder(volumesDir), [path.join(volumesDir, 'tv', '_data')]);
  t.match(ts(['volume', 'ls', '--filter', 'label=app=web', '--format', 'json']).stdout, /"Labels":"app=web".*"Name":"tv"/);
  t.equal(ts(['volume', 'rm', 'tv']).status, 0);
  t.same(mountsUnder(volumesDir), [], 'unmounted');
  // type=none,o=bind: a host directory as a volume.
  t.equal(ts(['volume', 'create', '--opt', 'type=none', '--opt', 'o=bind', '--opt', `device=${hostDir}`, 'hv']).status, 0);
  t.equal(run(['-v', 'hv:/h', 'busybox', 'cat', '/h/f']).stdout, 'from host');
  t.equal(ts(['volume', 'rm', 'hv']).status, 0);
  t.ok(fs.existsSync(path.join(hostDir, 'f')), 'removing the volume leaves the host directory');
  t.match(ts(['volume', 'create', '--opt', 'type=nfs', 'nv']).stderr, /type=nfs is not supported/);
});

t.test('--volumes-from: the same volumes and binds, ro if asked', { skip: needsRoot }, async (t) => {
  t.equal(ts(['run', '--name', 'vsrc', '-v', 'shared:/s', '-v', `${hostDir}:/b`, 'busybox', 'sh', '-c', 'echo from-src > /s/f']).status, 0);
  let r = run(['--volumes-from', 'vsrc', 'busybox', 'sh', '-c', 'cat /s/f /b/f; echo; echo more >> /s/f']);
  t.match(r.stdout, /^from-src\nfrom host/, r.stderr);
  r = run(['--volumes-from', 'vsrc:ro', 'busybox', 'sh', '-c', 'cat /s/f; touch /s/y 2>/dev/null || echo read-only']);
  t.equal(r.stdout, 'from-src\nmore\nread-only\n');
  t.equal(ts(['rm', '-v', 'vsrc']).status, 0);
  t.same(volumeNames(), ['shared'], 'a named volume outlives rm -v');
  // volume rm -f removes the containers that use it.
  const id = ts(['run', '-d', '-v', 'shared:/s', 'busybox', 'sleep', '100']).stdout.trim();
  t.equal(ts(['volume', 'rm', '-f', 'shared']).status, 0);
  t.equal(ts(['inspect', id]).status, 125, 'its container is gone');
  t.same(volumeNames(), []);
  t.equal(ts(['volume', 'rm', '-f', 'nosuch']).status, 0, 'a missing volume is no error with -f');
});

t.test('bad input: one clear line, exit 125, nothing made', { skip: needsRoot }, async (t) => {
  const before = fs.readdirSync(path.join(storage, 'containers')).length;
  const cases: [string[], RegExp][] = [
    [['-v', 'a/b:/x'], /"a\/b" is neither an absolute host path nor a volume name/],
    [['--mount', 'type=volume,source=..,target=/x'], /volume name "\.\."/],
    [['--mount', 'type=volume,source=a/b,target=/x'], /volume name "a\/b"/],
    [['-v', 'vol1:relative'], /the container path "relative" must be absolute/],
    [['--mount', 'type=tmpfs,target=relative'], /must be absolute/],
    [['-v', 'vol1:/'], /cannot be "\/"/],
    [['--mount', `type=bind,source=${hostDir}/missing,target=/x`], /bind source path does not exist/],
    [['--mount', 'type=bind,target=/x'], /needs source/],
    [['--mount', 'type=nfs,target=/x'], /type "nfs": use bind, volume or tmpfs/],
    [['--mount', 'type=tmpfs,source=x,target=/x'], /takes no source/],
    [['--mount', 'type=volume,target=/x,color=red'], /unknown field "color"/],
    [['--mount', 'type=bind,source=/tmp,target=/x,volume-nocopy'], /volume-nocopy is for type=volume/],
    [['-v', 'vol1:/x:sideways'], /unknown option "sideways"/],
    [['-v', 'vol1:/x', '-v', 'vol2:/x'], /duplicate mount point: \/x/],
    [['--volumes-from', 'nosuch'], /no such container: nosuch/],
    [['--mount', 'type=volume,source=vol1,target=/x,volume-driver=nfs'], /local driver only/],
  ];
  for (const [flags, why] of cases) {
    const r = run([...flags, 'busybox', 'true']);
    t.equal(r.status, 125, flags.join(' '));
    t.match(r.stderr, why);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.match(r.stderr, /^tsrun: /);
  }
  t.same(volumeNames(), [], 'no volume made');
  t.equal(fs.readdirSync(path.join(storage, 'containers')).length, before, 'no container made');
  let r = ts(['volume', 'create', 'a/b']);
  t.equal(r.status, 125);
  t.match(r.stderr, /^tsrun: invalid volume name "a\/b"/);
  r = ts(['volume', 'inspect', 'nosuch']);
  t.equal(r.status, 125);
  t.match(r.stderr, /^tsrun: no such volume: nosuch$/m);
  r = ts(['volume', 'rm', 'nosuch']);
  t.match(r.stderr, /no such volume: nosuch/);
  t.match(ts(['volume', 'ls', '--filter', 'color=red']).stderr, /unknown filter "color"/);
});

t.test('review findings: -v under /proc, a tmpfs volume after a reboot, a store path with a space, user namespaces, --volumes-from\'s anonymous volumes', { skip: needsRoot }, async (t) => {
  let r = run(['-v', '/proc/nonexist/x:/x', 'busybox', 'true']);
  t.equal(r.status, 125, 'a host path that cannot be made is refused at once');
  t.match(r.stderr, /^tsrun: -v \/proc\/nonexist\/x:\/x: make the missing host directory \/proc\/nonexist: ENOENT/);
  r = run(['-v', '/sys/nonexist/x:/x', 'busybox', 'true']);
  t.equal(r.status, 125);
  t.notMatch(r.stderr, /internal error/);

  // A tmpfs volume whose tmpfs went away (a reboot) is mounted again at the next start.
  t.equal(ts(['volume', 'create', '--opt', 'type=tmpfs', '--opt', 'device=tmpfs', 'rebooted']).status, 0);
  t.equal(ts(['run', '--name', 'tvc', '-v', 'rebooted:/data', 'busybox', 'true']).status, 0);
  execFileSync('umount', [path.join(volumesDir, 'rebooted', '_data')]);
  t.equal(ts(['start', 'tvc']).status, 0);
  t.equal(ts(['wait', 'tvc']).status, 0);
  t.same(mountsUnder(volumesDir), [path.join(volumesDir, 'rebooted', '_data')], 'mounted again');
  t.match(ts(['volume', 'create', '--opt', 'type=tmpfs', '--opt', 'o=bind', 'bad']).stderr, /o=bind is not an option for a tmpfs/);
  t.equal(ts(['rm', 'tvc']).status, 0);
  t.equal(ts(['volume', 'rm', 'rebooted']).status, 0);

  // A store whose path has a space: mountinfo writes it as \040.
  const spaced = path.join(TEST_BASE, `volume store ${process.pid}`);
  const sp = (args: string[]) => tsrun(['--storage', spaced, ...args], { root });
  busyboxImage(spaced);
  t.equal(sp(['volume', 'create', '--opt', 'type=tmpfs', 'sv']).status, 0);
  for (let i = 0; i < 2; i++) t.equal(sp(['run', '--rm', '-v', 'sv:/s', 'busybox', 'true']).status, 0);
  t.equal(mountsUnder(spaced).length, 1, 'mounted once, not once per run');
  t.equal(sp(['volume', 'rm', 'sv']).status, 0);
  t.same(mountsUnder(spaced), []);
  fs.rmSync(spaced, { recursive: true, force: true });

  // A user namespace: a new volume belongs to the container's root; its copy-up to the ids the image's map to.
  // (Its root is an unprivileged host id, which must pass through the directories above the store.)
  fs.chmodSync(path.dirname(storage), 0o755);
  r = run(['--uidmap', '0:200000:65536', '-v', 'uvol:/etc', 'seeded', 'sh', '-c', 'touch /etc/made && stat -c "%u:%g" /etc /etc/made /etc/passwd']);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, '0:0\n0:0\n0:0\n', 'root inside owns the volume and what is copied into it');
  t.equal(fs.statSync(path.join(volumesDir, 'uvol', '_data', 'passwd')).uid, 200000, 'on the host: the mapped id');
  t.equal(ts(['volume', 'rm', 'uvol']).status, 0);
  const u = ts(['run', '--name', 'ucont', '--uidmap', '0:200000:65536', 'busybox', 'sh', '-c', 'echo x > /made-here']);
  t.equal(u.status, 0, u.stderr);
  const tar = path.join(hostDir, 'u.tar');
  t.equal(ts(['export', '-o', tar, 'ucont']).status, 0);
  t.match(execFileSync('tar', ['-tvf', tar, 'made-here'], { encoding: 'utf8' }), /^-rw-r--r-- 0\/0 /, 'export gives the container\'s ids, not the host\'s');
  t.equal(ts(['rm', 'ucont']).status, 0);

  // --volumes-from: the anonymous volume goes with the last of its containers removed with -v.
  const va = ts(['run', '-d', '-v', '/anon2', 'busybox', 'sleep', '100']).stdout.trim();
  const vb = ts(['run', '-d', '--volumes-from', va, 'busybox', 'sleep', '100']).stdout.trim();
  const anon = (inspect(va).Mounts as { Name: string }[])[0].Name;
  t.equal(ts(['rm', '-f', '-v', va]).status, 0);
  t.ok(volumeNames().includes(anon), 'kept while another container mounts it');
  t.equal(ts(['rm', '-f', '-v', vb]).status, 0);
  t.notOk(volumeNames().includes(anon), 'removed with the last');
});
