// Hostile layers: each is refused with one clear line and a non-zero exit,
// nothing is written outside the store, and no partial layer is left.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { needsRoot, stateRoot, TEST_BASE, tsrun } from './helpers';
import { gzip, makeLayout, makeTar, sha, type Entry } from './images';

const root = stateRoot('hostile');
const storage = path.join(TEST_BASE, 'storage', `hostile-${process.pid}`);
const sentinel = path.join(TEST_BASE, `sentinel-${process.pid}`);
const ts = (args: string[]) => tsrun(['--storage', storage, ...args], { root });
t.teardown(() => {
  fs.rmSync(storage, { recursive: true, force: true });
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
  t.same(fs.readdirSync(root), [], `${what}: no container state`);
}

t.test('hostile tar entries are refused at unpack', { skip: needsRoot }, async (t) => {
  fs.mkdirSync(sentinel, { recursive: true });
  const cases: [string, Entry[], RegExp][] = [
    ['a ../ name', [{ name: '../../../../tmp/evil', data: 'x' }], /refused: "\.\.\/\.\.\/\.\.\/\.\.\/tmp\/evil" climbs out of the layer with "\.\."/],
    ['an absolute name', [{ name: '/etc/pwned-by-tsrun-test', data: 'x' }], /refused: absolute name "\/etc\/pwned-by-tsrun-test"/],
    ['a symlink to /etc, then a file through it', [{ name: 'etc', type: 'symlink', linkname: '/etc' }, { name: 'etc/pwned-by-tsrun-test', data: 'x' }], /refused: "etc\/pwned-by-tsrun-test" would be written through the symlink "etc" \(-> \/etc\)/],
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
    ['an oversized pax header', oversizedPaxTar(5 << 20), 'run', /Header exceeds max size/],
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
