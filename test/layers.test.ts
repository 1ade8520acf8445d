// Multi-layer images the test builds itself: deletions, opaque directories,
// a file replaced by a directory and back, hardlinks, setuid files, device
// nodes, xattrs. The merged view inside the container must equal the
// expected tree, and equal what `umoci unpack` makes of the same image.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { native } from '../src/native';
import { busyboxRootfs, needsRoot, removeRootfs, stateRoot, TEST_BASE, tsrun } from './helpers';
import { makeLayout, makeTar } from './images';

const root = stateRoot('layers');
const storage = path.join(TEST_BASE, 'storage', `layers-${process.pid}`);
const ts = (args: string[]) => tsrun(['--storage', storage, ...args], { root });
t.teardown(() => {
  fs.rmSync(storage, { recursive: true, force: true });
  fs.rmSync(path.join(TEST_BASE, 'layouts'), { recursive: true, force: true });
  removeRootfs();
});

// One line per path under /t: name, type and mode (%f is raw hex), owner, size,
// device numbers, link target and content checksum.
const LISTING = `cd /t && find . | sort | while read -r f; do
  s=$(stat -c '%n %f %u:%g %s %t,%T' "$f")
  if [ -L "$f" ]; then echo "$s -> $(readlink "$f")"
  elif [ -f "$f" ]; then echo "$s $(md5sum < "$f" | cut -c1-8)"
  else echo "$s"; fi
done; stat -c '%i' /t/hl/link /t/hl/link2 | uniq | wc -l`;

async function layers() {
  const base = execFileSync('tar', ['-C', busyboxRootfs(), '--numeric-owner', '-c', '.'], { maxBuffer: 64 << 20 });
  const l2 = await makeTar([
    { name: 't/', type: 'directory' },
    { name: 't/keep/', type: 'directory' },
    { name: 't/keep/a.txt', data: 'A' },
    { name: 't/del/', type: 'directory' },
    { name: 't/del/gone.txt', data: 'gone' },
    { name: 't/opq/', type: 'directory' },
    { name: 't/opq/old1', data: 'old1' },
    { name: 't/opq/old2', data: 'old2' },
    { name: 't/swap', data: 'file' },
    { name: 't/hl/', type: 'directory' },
    { name: 't/hl/orig', data: 'hard' },
    { name: 't/hl/link', type: 'link', linkname: 't/hl/orig' },
    { name: 't/hl/link2', type: 'link', linkname: 't/hl/orig' },
    { name: 't/suid', data: '#!/bin/sh\n', mode: 0o4755 },
    { name: 't/sgid-dir/', type: 'directory', mode: 0o2775, uid: 1000, gid: 1000 },
    { name: 't/owned', data: 'mine', uid: 1000, gid: 1001, mode: 0o600 },
    { name: 't/dev/', type: 'directory' },
    { name: 't/dev/null0', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 't/dev/fifo', type: 'fifo', mode: 0o644 },
    { name: 't/xattr.txt', data: 'x', pax: { 'SCHILY.xattr.user.tsrun': 'hello' } },
    { name: 't/sym', type: 'symlink', linkname: 'keep/a.txt' },
  ]);
  const l3 = await makeTar([
    { name: 't/del/.wh.gone.txt' },
    { name: 't/opq/', type: 'directory' },
    { name: 't/opq/.wh..wh..opq' },
    { name: 't/opq/new', data: 'new' },
    { name: 't/.wh.swap' },
    { name: 't/swap/', type: 'directory' },
    { name: 't/swap/inner', data: 'inner' },
    { name: 't/hl/.wh.orig' },
  ]);
  const l4 = await makeTar([
    { name: 't/.wh.swap' },
    { name: 't/swap', data: 'file again' },
    { name: 't/keep/a.txt', data: 'A2' },
  ]);
  return [base, l2, l3, l4];
}

const EXPECTED = [
  '. 41ed 0:0 ',
  './del 41ed 0:0 ',
  './dev 41ed 0:0 ',
  './dev/fifo 11a4 0:0 0 0,0',
  './dev/null0 21b6 0:0 0 1,3',
  './hl 41ed 0:0 ',
  './hl/link 81a4 0:0 4 0,0 ',
  './hl/link2 81a4 0:0 4 0,0 ',
  './keep 41ed 0:0 ',
  './keep/a.txt 81a4 0:0 2 0,0 ',
  './opq 41ed 0:0 ',
  './opq/new 81a4 0:0 3 0,0 ',
  './owned 8180 1000:1001 4 0,0 ',
  './sgid-dir 45fd 1000:1000 ',
  './suid 89ed 0:0 10 0,0 ',
  './swap 81a4 0:0 10 0,0 ',
  './sym a1ff 0:0 10 0,0 -> keep/a.txt',
  './xattr.txt 81a4 0:0 1 0,0 ',
];

/** Drops directory sizes (they differ between filesystems) and checksums, to compare with EXPECTED. */
function shape(listing: string): string[] {
  return listing
    .trim()
    .split('\n')
    .slice(0, -1)
    .map((l) => {
      const f = l.split(' ');
      if (f[1].startsWith('4')) return `${f[0]} ${f[1]} ${f[2]} `;
      if (l.includes(' -> ')) return l;
      return f.length > 5 ? `${f.slice(0, 5).join(' ')} ` : f.join(' ');
    });
}

t.test('merged view of a multi-layer image, inside the container and by umoci', { skip: needsRoot }, async (t) => {
  const dir = makeLayout('multi', 'v1', await layers(), { Cmd: ['sh', '-c', LISTING] });
  const load = ts(['load', '-i', dir]);
  t.equal(load.status, 0, load.stderr);
  t.match(load.stdout, /Loaded image ID: sha256:/);
  const r = ts(['run', '--rm', `oci:${dir}:v1`]);
  t.equal(r.status, 0, r.stderr);
  t.same(shape(r.stdout), EXPECTED, 'the merged tree as expected');
  t.equal(r.stdout.trim().split('\n').pop(), '1', 'the two hardlink names share one inode');
  const contents = Object.fromEntries(
    r.stdout
      .trim()
      .split('\n')
      .slice(0, -1)
      .map((l) => l.split(' '))
      .filter((f) => f[1].startsWith('81'))
      .map((f) => [f[0], f[5]]),
  );
  const md5 = (s: string) => execFileSync('md5sum', { input: s, encoding: 'utf8' }).slice(0, 8);
  t.equal(contents['./keep/a.txt'], md5('A2'), 'the top layer\'s content wins');
  t.equal(contents['./swap'], md5('file again'), 'file -> directory -> file');
  t.equal(contents['./hl/link'], md5('hard'));

  // The xattr is on the unpacked layer (busybox has no getfattr to look from inside).
  const layerDirs = fs.readdirSync(path.join(storage, 'layers')).filter((d) => /^[a-f0-9]{64}$/.test(d));
  const withXattr = layerDirs.map((d) => path.join(storage, 'layers', d, 'diff', 't', 'xattr.txt')).find((f) => fs.existsSync(f));
  t.equal(native().lgetxattr(withXattr!, 'user.tsrun')?.toString(), 'hello');
  const opq = layerDirs.map((d) => path.join(storage, 'layers', d, 'diff', 't', 'opq')).filter((f) => fs.existsSync(f));
  t.ok(opq.some((f) => native().lgetxattr(f, 'trusted.overlay.opaque')?.toString() === 'y'), 'the opaque directory is marked for overlayfs');

  if (spawnSync('sh', ['-c', 'command -v umoci']).status !== 0) return t.skip('umoci is not installed (Debian package umoci)');
  const bundle = path.join(TEST_BASE, `umoci-${process.pid}`);
  t.teardown(() => fs.rmSync(bundle, { recursive: true, force: true }));
  execFileSync('umoci', ['unpack', '--image', `${dir}:v1`, bundle], { stdio: 'ignore' });
  const byUmoci = execFileSync('chroot', [path.join(bundle, 'rootfs'), '/bin/sh', '-c', LISTING], { encoding: 'utf8' });
  const normalize = (s: string) => s.trim().split('\n').map((l) => (/^\S+ 4/.test(l) ? l.split(' ').slice(0, 3).join(' ') : l));
  t.same(normalize(r.stdout), normalize(byUmoci), 'tsrun\'s merged view equals umoci unpack\'s');
});

t.test('60 layers: a lowerdir list longer than a page of mount options still mounts', { skip: needsRoot }, async (t) => {
  const base = execFileSync('tar', ['-C', busyboxRootfs(), '--numeric-owner', '-c', '.'], { maxBuffer: 64 << 20 });
  const many = [base];
  for (let i = 1; i < 60; i++) many.push(await makeTar([{ name: `layer${i}`, data: `${i}\n` }, { name: 'top', data: `${i}\n` }]));
  const dir = makeLayout('many', 'v1', many, { Cmd: ['sh', '-c', 'cat /top /layer1 /layer59; ls / | grep -c ^layer'] });
  const r = ts(['--trace', 'run', '--rm', `oci:${dir}:v1`]);
  t.equal(r.status, 0, 'it runs');
  t.equal(r.stdout, '59\n1\n59\n59\n', 'every layer is there, the top one wins');
  t.match(r.stderr, /chdir \S+\n\s+the layer paths below are relative to here/, 'short relative layer names were used');
  t.match(r.stderr, /mount overlay on \S+ \(60 layers\)/);
});

t.test('symlinks in an image lead to the image\'s own files, never the host\'s', { skip: needsRoot }, async (t) => {
  const base = execFileSync('tar', ['-C', busyboxRootfs(), '--numeric-owner', '-c', '.'], { maxBuffer: 64 << 20 });
  // A host directory with an account the image must not see.
  const hostEtc = path.join(TEST_BASE, `host-etc-${process.pid}`);
  fs.mkdirSync(hostEtc, { recursive: true });
  fs.writeFileSync(path.join(hostEtc, 'passwd'), 'hostonly:x:4242:4242::/:/bin/sh\n');
  const hostData = path.join(TEST_BASE, `host-data-${process.pid}`);
  fs.mkdirSync(hostData, { recursive: true });
  fs.writeFileSync(path.join(hostData, 'f'), 'from the host\n');
  t.teardown(() => {
    fs.rmSync(hostEtc, { recursive: true, force: true });
    fs.rmSync(hostData, { recursive: true, force: true });
  });

  // /etc/passwd through a relative link inside the image: the image's own account.
  const linked = makeLayout('linked-passwd', 'v1', [base, await makeTar([
    { name: 'usr/share/accounts/', type: 'directory' },
    { name: 'usr/share/accounts/passwd', data: 'root:x:0:0::/root:/bin/sh\nimguser:x:3333:3333::/home/img:/bin/sh\n' },
    { name: 'etc/passwd', type: 'symlink', linkname: '../usr/share/accounts/passwd' },
  ])]);
  let r = ts(['run', '--rm', '-u', 'imguser', `oci:${linked}:v1`, 'sh', '-c', 'id -u; echo $HOME']);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, '3333\n/home/img\n', 'the user is found through the image\'s symlink');

  // /etc as an absolute link to a host path: resolved in the image, where it leads nowhere.
  const escaping = makeLayout('host-etc', 'v1', [base, await makeTar([{ name: 'etc', type: 'symlink', linkname: hostEtc }])]);
  r = ts(['run', '--rm', '-u', 'hostonly', `oci:${escaping}:v1`, 'id', '-u']);
  t.equal(r.status, 125, 'the host\'s account is not the image\'s');
  t.match(r.stderr, /^tsrun: unable to find user hostonly: no matching entries in the image's \/etc\/passwd\n$/);

  // Dangling links where the runtime mounts: the targets are made inside the rootfs, as runc does.
  const dangling = makeLayout('dangling', 'v1', [base, await makeTar([
    { name: 'etc/resolv.conf', type: 'symlink', linkname: '../run/systemd/resolve/stub-resolv.conf' },
    { name: 'data', type: 'symlink', linkname: '/srv/nonexistent/data' },
  ])]);
  r = ts(['run', '--rm', '-v', `${hostData}:/data:ro`, `oci:${dangling}:v1`, 'sh', '-c', 'test -f /run/systemd/resolve/stub-resolv.conf && echo made; cat /data/f; readlink /etc/resolv.conf; test -d /srv/nonexistent/data && echo dir']);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, 'made\nfrom the host\n../run/systemd/resolve/stub-resolv.conf\ndir\n');
  t.notOk(fs.existsSync('/srv/nonexistent'), 'nothing was made on the host');
});

t.test('a lookup of /etc/passwd through a deep symlink loop gives up instead of hanging', { skip: needsRoot }, async (t) => {
  const base = execFileSync('tar', ['-C', busyboxRootfs(), '--numeric-owner', '-c', '.'], { maxBuffer: 64 << 20 });
  const deep = Array(1900).fill('a').join('/');
  const loop = makeLayout('loop', 'v1', [base, await makeTar([
    { name: `${deep}/`, type: 'directory' },
    { name: `${deep}/l`, type: 'symlink', linkname: `/${deep}/l` },
    { name: 'etc', type: 'symlink', linkname: `${deep}/l` },
  ])]);
  const r = ts(['run', '--rm', '-u', 'nobody', `oci:${loop}:v1`, 'true']);
  t.equal(r.signal, null, 'it ends by itself (it ran for minutes before)');
  t.equal(r.status, 125);
  t.match(r.stderr, /^tsrun: unable to find user nobody: no matching entries in the image's \/etc\/passwd\n$/);
});

t.test('image prune removes what no image uses, and keeps the rest', { skip: needsRoot }, async (t) => {
  const before = fs.readdirSync(path.join(storage, 'layers')).filter((d) => /^[a-f0-9]{64}$/.test(d)).length;
  t.ok(before >= 60, `layers unpacked (${before})`);
  const images = JSON.parse(ts(['images', '--format', 'json']).stdout) as { id: string }[];
  for (const id of new Set(images.map((i) => i.id))) t.equal(ts(['rmi', id.slice(7, 19)]).status, 0);
  const r = ts(['image', 'prune']);
  t.equal(r.status, 0, r.stderr);
  // rmi released what each image alone used; prune takes the rest (layers of images loaded without a name).
  t.match(r.stdout, /^removed \d+ untagged images?, \d+ layer director(y|ies), \d+ blobs? and 0 stale temporaries\n$/);
  t.same(fs.readdirSync(path.join(storage, 'layers')).filter((d) => /^[a-f0-9]{64}$/.test(d)), []);
  t.same(fs.readdirSync(path.join(storage, 'l')), [], 'no short-name links left');
  t.same(fs.readdirSync(path.join(storage, 'blobs', 'sha256')), [], 'no blobs left');
});
