// Hostile layers: each is refused with one clear line and a non-zero exit,
// nothing is written outside the store, and no partial layer is left.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { spawn } from 'node:child_process';
import { native } from '../src/native';
import { CLI, needsRoot, stateRoot, TEST_BASE, tsrun, stateEntries } from './helpers';
import { gzip, makeLayout, makeTar, sha, type Entry } from './images';

const root = stateRoot('hostile');
const storage = path.join(TEST_BASE, 'storage', `hostile-${process.pid}`);
const sentinel = path.join(TEST_BASE, `sentinel-${process.pid}`);
const ts = (args: string[]) => tsrun(['--storage', storage, ...args], { root });
t.teardown(() => {
  // Without recursion: a failed run may have left a layer deeper than the stack.
  native().removeTree(storage);
  fs.rmSync(sentinel, { recursive: true, force: true });
  fs.rmSync(path.join(TEST_BASE, 'layouts'), { recursive: true, force: true });
});

/** A tar whose first header declares a pax extended header of `size` bytes. */
function oversizedPaxTar(size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write('PaxHeaders/evil', 0);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write('x', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return Buffer.concat([h, Buffer.alloc(Math.ceil(size / 512) * 512), Buffer.alloc(1024)]);
}

function assertNothingLeft(t: Tap.Test, what: string) {
  t.same(fs.readdirSync(sentinel), [], `${what}: nothing written outside the layer`);
  t.notOk(fs.existsSync('/etc/pwned-by-tsrun-test'), `${what}: nothing written to the host's /etc`);
  const layers = path.join(storage, 'layers');
  t.same(fs.existsSync(layers) ? fs.readdirSync(layers).filter((d) => !d.endsWith('.lock')) : [], [], `${what}: no partial layer`);
  const tmp = path.join(storage, 'tmp');
  t.same(fs.existsSync(tmp) ? fs.readdirSync(tmp) : [], [], `${what}: no half-done work`);
  const containers = path.join(storage, 'containers');
  t.same(fs.existsSync(containers) ? fs.readdirSync(containers) : [], [], `${what}: no container left`);
  t.same(stateEntries(root), [], `${what}: no container state`);
}

t.test('hostile tar entries are refused at unpack', { skip: needsRoot }, async (t) => {
  fs.mkdirSync(sentinel, { recursive: true });
  const cases: [string, Entry[], RegExp][] = [
    ['a ../ name', [{ name: '../../../../tmp/evil', data: 'x' }], /refused: "\.\.\/\.\.\/\.\.\/\.\.\/tmp\/evil" climbs out of the layer with "\.\."/],
    ['an absolute name', [{ name: '/etc/pwned-by-tsrun-test', data: 'x' }], /refused: absolute name "\/etc\/pwned-by-tsrun-test"/],
    ['a symlink to /etc, then a file through it', [{ name: 'etc', type: 'symlink', linkname: '/etc' }, { name: 'etc/pwned-by-tsrun-test', data: 'x' }], /refused: "etc\/pwned-by-tsrun-test" would be written through the symlink "etc" \(-> "\/etc"\)/],
    ['a symlinked parent pointing out', [{ name: 'a', type: 'symlink', linkname: sentinel }, { name: 'a/b/c', data: 'x' }], /would be written through the symlink "a"/],
    ['a relative symlink climbing out', [{ name: 'up', type: 'symlink', linkname: '../../../../../../..' + sentinel }, { name: 'up/x', data: 'x' }], /would be written through the symlink "up"/],
    ['a hardlink to a host file (absolute)', [{ name: 'stolen', type: 'link', linkname: '/etc/shadow' }], /refused: absolute name "\/etc\/shadow"/],
    ['a hardlink to a host file (..)', [{ name: 'stolen', type: 'link', linkname: '../../../../etc/shadow' }], /climbs out of the layer with "\.\."/],
    ['a hardlink to something not in the layer', [{ name: 'stolen', type: 'link', linkname: 'etc/shadow' }], /hardlink "stolen" points at "etc\/shadow", which is not an earlier entry of this layer/],
  ];
  for (const [what, entries, err] of cases) {
    const file = path.join(sentinel, '..', `hostile-${process.pid}.tar`);
    fs.writeFileSync(file, await makeTar(entries));
    const imp = ts(['import', file, 'hostile:1']);
    fs.rmSync(file);
    t.equal(imp.status, 0, `${what}: import only stores the blob`);
    const r = ts(['run', '--rm', 'hostile:1', '/bin/true']);
    t.equal(r.status, 125, `${what}: exit code`);
    t.match(r.stderr, /^tsrun: unpack layer sha256:[a-f0-9]{64}: /, `${what}: names the layer`);
    t.match(r.stderr, err, what);
    t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`);
    assertNothingLeft(t, what);
    t.equal(ts(['rmi', 'hostile:1']).status, 0);
  }
});

t.test('oversized headers, truncated and corrupt streams', { skip: needsRoot }, async (t) => {
  fs.mkdirSync(sentinel, { recursive: true });
  const good = await makeTar([{ name: 'f', data: 'x'.repeat(100_000) }]);
  const gz = gzip(good);
  const cases: [string, Buffer, 'import' | 'run', RegExp][] = [
    ['an oversized pax header', oversizedPaxTar(5 << 20), 'import', /not a readable tar: Header exceeds max size/],
    ['a truncated gzip stream', gz.subarray(0, gz.length >> 1), 'import', /not a readable gzip tar: unexpected end of file/],
    ['a corrupt gzip stream', Buffer.concat([gz.subarray(0, 20), Buffer.alloc(200, 0xaa)]), 'import', /not a readable gzip tar/],
    ['a corrupt zstd stream', Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.alloc(64, 0x7f)]), 'import', /not a readable zstd tar/],
  ];
  for (const [what, data, failsAt, err] of cases) {
    const file = path.join(sentinel, '..', `hostile-${process.pid}.bin`);
    fs.writeFileSync(file, data);
    const imp = ts(['import', file, 'broken:1']);
    fs.rmSync(file);
    const r = failsAt === 'import' ? imp : ts(['run', '--rm', 'broken:1', '/bin/true']);
    if (failsAt === 'run') t.equal(imp.status, 0, `${what}: import stores it`);
    t.equal(r.status, 125, `${what}: exit code`);
    t.match(r.stderr, err, what);
    t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`);
    assertNothingLeft(t, what);
    if (failsAt === 'run') t.equal(ts(['rmi', 'broken:1']).status, 0);
    else t.same(JSON.parse(ts(['images', '--format', 'json']).stdout), [], `${what}: no image recorded`);
  }
});

t.test('digest and diffID mismatches', { skip: needsRoot }, async (t) => {
  fs.mkdirSync(sentinel, { recursive: true });
  const layer = await makeTar([{ name: 'hello', data: 'hello' }]);
  const tampered = makeLayout('tampered', 'v1', [layer]);
  const blob = fs.readdirSync(path.join(tampered, 'blobs', 'sha256')).find((f) => sha(fs.readFileSync(path.join(tampered, 'blobs', 'sha256', f))) === sha(gzip(layer)));
  fs.writeFileSync(path.join(tampered, 'blobs', 'sha256', blob!), gzip(Buffer.concat([layer.subarray(0, 512), Buffer.alloc(1024)])));
  const r = ts(['load', '-i', tampered]);
  t.equal(r.status, 125);
  t.match(r.stderr, new RegExp(`blob sha256:${blob} does not match its content \\(sha256 is sha256:[a-f0-9]{64}\\)`));
  t.same(JSON.parse(ts(['images', '--format', 'json']).stdout), [], 'no image recorded');

  // A config whose diff_ids disagree with the layer: caught while unpacking.
  const wrongDiff = makeLayout('wrongdiff', 'v1', [layer]);
  const idx = JSON.parse(fs.readFileSync(path.join(wrongDiff, 'index.json'), 'utf8'));
  const manifestFile = path.join(wrongDiff, 'blobs', 'sha256', idx.manifests[0].digest.slice(7));
  const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
  const cfg = JSON.parse(fs.readFileSync(path.join(wrongDiff, 'blobs', 'sha256', manifest.config.digest.slice(7)), 'utf8'));
  cfg.rootfs.diff_ids = [sha('something else')];
  const cfgBytes = JSON.stringify(cfg);
  fs.writeFileSync(path.join(wrongDiff, 'blobs', 'sha256', sha(cfgBytes).slice(7)), cfgBytes);
  manifest.config = { ...manifest.config, digest: sha(cfgBytes), size: cfgBytes.length };
  const mBytes = JSON.stringify(manifest);
  fs.writeFileSync(path.join(wrongDiff, 'blobs', 'sha256', sha(mBytes).slice(7)), mBytes);
  idx.manifests[0] = { ...idx.manifests[0], digest: sha(mBytes), size: mBytes.length };
  fs.writeFileSync(path.join(wrongDiff, 'index.json'), JSON.stringify(idx));
  const run = ts(['run', '--rm', `oci:${wrongDiff}:v1`, '/bin/true']);
  t.equal(run.status, 125);
  t.match(run.stderr, /diffID mismatch: expected sha256:[a-f0-9]{64}, got sha256:[a-f0-9]{64}/);
  assertNothingLeft(t, 'diffID mismatch');
});

/** Mode, owner and times of a host path, to show nothing reached it. */
const statOf = (p: string) => {
  const st = fs.lstatSync(p);
  return { mode: st.mode.toString(8), uid: st.uid, gid: st.gid, mtime: st.mtimeMs };
};

t.test('a later entry never carries an earlier one\'s metadata through a symlink to the host', { skip: needsRoot }, async (t) => {
  fs.mkdirSync(sentinel, { recursive: true });
  const victimFile = path.join(sentinel, 'victim');
  const victimDir = path.join(sentinel, 'victim-dir');
  const cases: [string, () => Entry[], string[]][] = [
    ['a directory (04777) replaced by a symlink to a host file', () => [{ name: 'd/', type: 'directory', mode: 0o4777, uid: 1234 }, { name: 'd', type: 'symlink', linkname: victimFile }], [victimFile]],
    ['a directory whose subdirectory (04777) waits for metadata, replaced by a symlink to a host directory', () => [{ name: 'd/', type: 'directory' }, { name: 'd/e/', type: 'directory', mode: 0o4777, uid: 1234 }, { name: 'd', type: 'symlink', linkname: victimDir }], [victimDir, path.join(victimDir, 'e')]],
    ['a directory replaced by a regular file, then by a symlink', () => [{ name: 'd/', type: 'directory', mode: 0o4777 }, { name: 'd', data: 'x' }, { name: 'd', type: 'symlink', linkname: victimFile }], [victimFile]],
    ['a device node whose name is first a symlink to a host file', () => [{ name: 'n', type: 'symlink', linkname: victimFile }, { name: 'n', type: 'fifo', mode: 0o4777 }], [victimFile]],
  ];
  for (const [what, entries, victims] of cases) {
    fs.writeFileSync(victimFile, 'host file', { mode: 0o644 });
    fs.mkdirSync(path.join(victimDir, 'e'), { recursive: true, mode: 0o755 });
    fs.chmodSync(victimDir, 0o755);
    fs.chmodSync(path.join(victimDir, 'e'), 0o755);
    const before = victims.map(statOf);
    const file = path.join(sentinel, '..', `meta-${process.pid}.tar`);
    fs.writeFileSync(file, await makeTar(entries()));
    t.equal(ts(['import', file, 'meta:1']).status, 0, `${what}: import`);
    fs.rmSync(file);
    const r = ts(['run', '--rm', 'meta:1', '/bin/true']);
    // The layer is valid; what fails is only the missing /bin/true.
    t.notMatch(r.stderr, /unpack layer/, `${what}: the layer unpacks`);
    t.match(r.stderr, /cannot run "\/bin\/true"/, what);
    t.same(victims.map(statOf), before, `${what}: the host's files keep their mode, owner and times`);
    t.equal(ts(['rmi', 'meta:1']).status, 0);
    t.equal(ts(['image', 'prune']).status, 0);
  }
  fs.rmSync(victimFile);
  fs.rmSync(victimDir, { recursive: true });
});

t.test('input depth: a path deeper than PATH_MAX is refused; a deep one within it unpacks and is removed again', { skip: needsRoot }, async (t) => {
  fs.mkdirSync(sentinel, { recursive: true });
  const file = path.join(sentinel, '..', `deep-${process.pid}.tar`);
  fs.writeFileSync(file, await makeTar([{ name: `${Array(10_000).fill('a').join('/')}/f`, data: 'x' }]));
  t.equal(ts(['import', file, 'deep:1']).status, 0);
  let r = ts(['run', '--rm', 'deep:1', '/bin/true']);
  t.equal(r.status, 125);
  t.match(r.stderr, /^tsrun: unpack layer sha256:[a-f0-9]{64}: refused: "a\/a\/a.*\.\.\." is longer than PATH_MAX \(4096 bytes with the layer's directory\)\n$/);
  assertNothingLeft(t, '10,000 levels');
  t.equal(ts(['rmi', 'deep:1']).status, 0);

  // 1,800 levels fit in PATH_MAX: made, then removed by prune without recursion.
  fs.writeFileSync(file, await makeTar([{ name: `${Array(1800).fill('b').join('/')}/f`, data: 'x' }]));
  t.equal(ts(['import', file, 'deep:2']).status, 0);
  fs.rmSync(file);
  r = ts(['run', '--rm', 'deep:2', '/bin/true']);
  t.notMatch(r.stderr, /unpack layer/, r.stderr);
  t.equal(fs.readdirSync(path.join(storage, 'layers')).filter((d) => !d.endsWith('.lock')).length, 1, 'the deep layer is unpacked');
  t.equal(ts(['rmi', 'deep:2']).status, 0);
  r = ts(['image', 'prune']);
  t.equal(r.status, 0, r.stderr);
  assertNothingLeft(t, '1,800 levels, pruned');
});

t.test('docker-archive paths that leave the archive, and other malformed manifests, are one clear line', { skip: needsRoot }, async (t) => {
  fs.mkdirSync(sentinel, { recursive: true });
  const layer = await makeTar([{ name: 'f', data: 'x' }]);
  const config = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(layer)] } });
  const cases: [string, unknown, RegExp][] = [
    ['a config path with ".."', [{ Config: '../../etc/passwd', Layers: ['l.tar'] }], /manifest\.json names "\.\.\/\.\.\/etc\/passwd": refused: .* climbs out of the layer with "\.\."/],
    ['an absolute layer path', [{ Config: 'c.json', Layers: ['/etc/shadow'] }], /manifest\.json names "\/etc\/shadow": refused: absolute name/],
    ['a config that is not a name', [{ Config: 42, Layers: ['l.tar'] }], /manifest\.json names 42, not a file in the archive/],
    ['no Layers list', [{ Config: 'c.json' }], /manifest\.json entry 0 has no Layers list/],
    ['a missing layer', [{ Config: 'c.json', Layers: ['nope.tar'] }], /"nope\.tar" named by manifest\.json is missing from the archive/],
  ];
  for (const [what, manifest, err] of cases) {
    const file = path.join(sentinel, '..', `docker-${process.pid}.tar`);
    fs.writeFileSync(file, await makeTar([{ name: 'manifest.json', data: JSON.stringify(manifest) }, { name: 'c.json', data: config }, { name: 'l.tar', data: layer.toString('latin1') }]));
    const r = ts(['load', '-i', file]);
    fs.rmSync(file);
    t.equal(r.status, 125, what);
    t.match(r.stderr, err, what);
    t.notMatch(r.stderr, /internal error|\n\s+at /, `${what}: no stack trace`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`);
    assertNothingLeft(t, what);
  }
});

t.test('an endless input ends; a killed load leaves what image prune removes; import checks the tar', { skip: needsRoot }, async (t) => {
  fs.mkdirSync(sentinel, { recursive: true });
  let r = tsrun(['--storage', storage, 'load', '-i', '/dev/zero'], { root, timeout: 30_000 });
  t.equal(r.signal, null, 'load -i /dev/zero ends by itself');
  t.equal(r.status, 125);
  t.match(r.stderr, /^tsrun: load \/dev\/zero: neither an OCI archive \(index\.json\) nor a docker archive \(manifest\.json\)\n$/);
  assertNothingLeft(t, '/dev/zero');

  // A load killed part way: it waits to open a fifo that no one writes.
  const fifo = path.join(sentinel, '..', `load-${process.pid}.fifo`);
  fs.rmSync(fifo, { force: true });
  native().mkfifo(fifo, 0o600);
  const child = spawn(process.execPath, [CLI, '--root', root, '--storage', storage, 'load', '-i', fifo], { stdio: 'ignore' });
  const tmp = path.join(storage, 'tmp');
  for (let i = 0; i < 200 && !(fs.existsSync(tmp) && fs.readdirSync(tmp).some((n) => n.startsWith('load-'))); i++) await new Promise((res) => setTimeout(res, 25));
  t.ok(fs.readdirSync(tmp).some((n) => n.startsWith('load-')), 'the load has made its work directory');
  child.kill('SIGKILL');
  await new Promise((res) => child.on('exit', res));
  fs.rmSync(fifo);
  // Another process's work in progress stays (this test process is alive).
  const live = path.join(tmp, `load-${process.pid}-abcdef`);
  fs.mkdirSync(live);
  r = ts(['image', 'prune']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /and 1 stale temporary\n$/);
  t.same(fs.readdirSync(tmp), [path.basename(live)], 'the killed load\'s directory is gone, the live one kept');
  fs.rmdirSync(live);

  const random = path.join(sentinel, '..', `random-${process.pid}.bin`);
  fs.writeFileSync(random, (await import('node:crypto')).randomBytes(64 << 10));
  r = ts(['import', random, 'random:1']);
  fs.rmSync(random);
  t.equal(r.status, 125, 'random bytes are refused by import, not at the first run');
  t.match(r.stderr, /^tsrun: import .*: not a readable tar: /);
  t.equal(r.stderr.trim().split('\n').length, 1);
  r = ts(['import', '/dev/zero', 'zero:1']);
  t.equal(r.status, 125);
  t.match(r.stderr, /^tsrun: import \/dev\/zero: not a regular file\n$/);
  assertNothingLeft(t, 'import');
  t.same(JSON.parse(ts(['images', '--format', 'json']).stdout), [], 'no image recorded');
});

/** Sets the ustar size field of the entry that a pax header names to 0 (the pax record keeps the real size), fixing the checksum. */
function zeroUstarSize(tar: Buffer, name: string): Buffer {
  const out = Buffer.from(tar);
  for (let at = 0; at + 1024 <= out.length; at += 512) {
    if (out[at + 156] !== 0x78 || !out.toString('latin1', at + 512, at + 1024).includes(`path=${name}\n`)) continue;
    const size = parseInt(out.toString('latin1', at + 124, at + 136), 8);
    const h = at + 512 + Math.ceil(size / 512) * 512;
    out.write('00000000000\0', h + 124, 'latin1');
    out.write('        ', h + 148, 'latin1');
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += out[h + i];
    out.write(sum.toString(8).padStart(6, '0') + '\0 ', h + 148, 'latin1');
    return out;
  }
  throw new Error(`no pax header for ${name}`);
}

t.test('archive framing follows pax sizes; layer ids past 2^31-1 are refused; a dangling -v source is one line', { skip: needsRoot }, async (t) => {
  fs.mkdirSync(sentinel, { recursive: true });
  // A docker-archive whose first entry has its size only in a pax record, and data that looks like an end marker.
  const layer = await makeTar([{ name: 'hello', data: 'hi' }]);
  const config = JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/hello'] }, rootfs: { type: 'layers', diff_ids: [sha(layer)] } });
  const archive = zeroUstarSize(
    await makeTar([
      { name: 'big', data: '\0'.repeat(1024) + 'x'.repeat(1024), pax: { size: '2048' } },
      { name: 'manifest.json', data: JSON.stringify([{ Config: 'c.json', RepoTags: ['paxsize:1'], Layers: ['l.tar'] }]) },
      { name: 'c.json', data: config },
      { name: 'l.tar', data: layer.toString('latin1') },
    ]),
    'big',
  );
  const file = path.join(sentinel, '..', `pax-${process.pid}.tar`);
  fs.writeFileSync(file, archive);
  let r = ts(['load', '-i', file]);
  fs.rmSync(file);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /Loaded image: paxsize:1/, 'the entries after it are read');
  t.equal(ts(['rmi', 'paxsize:1']).status, 0);

  for (const id of [4294967295, 2147483648]) {
    const tar = path.join(sentinel, '..', `uid-${process.pid}.tar`);
    fs.writeFileSync(tar, await makeTar([{ name: 'suid', data: 'x', mode: 0o4755, pax: { uid: String(id) } }]));
    t.equal(ts(['import', tar, 'uid:1']).status, 0);
    fs.rmSync(tar);
    r = ts(['run', '--rm', 'uid:1', '/bin/true']);
    t.equal(r.status, 125);
    t.match(r.stderr, new RegExp(`refused: "suid" has uid ${id}, outside 0-2147483647`), `uid ${id}: chown would leave a setuid file root's`);
    assertNothingLeft(t, `uid ${id}`);
    t.equal(ts(['rmi', 'uid:1']).status, 0);
  }

  const tiny = path.join(sentinel, '..', `tiny-${process.pid}.tar`);
  fs.writeFileSync(tiny, await makeTar([{ name: 'f', data: 'x' }]));
  t.equal(ts(['import', tiny, 'tiny:1']).status, 0);
  fs.rmSync(tiny);
  const link = path.join(sentinel, 'dangling');
  fs.symlinkSync('/nonexistent/tsrun-test', link);
  r = ts(['run', '--rm', '-v', `${link}:/x`, 'tiny:1', 'true']);
  fs.rmSync(link);
  t.equal(r.status, 125);
  t.match(r.stderr, /^tsrun: -v .*dangling:\/x: .*dangling is a symlink to \/nonexistent\/tsrun-test, which does not exist\n$/);
  t.notOk(fs.existsSync('/nonexistent'), 'nothing made where it points');
  t.equal(ts(['rmi', 'tiny:1']).status, 0);
  t.equal(ts(['image', 'prune']).status, 0);
  assertNothingLeft(t, 'dangling -v');
});
