// The store's rule: an image is its config. One image from two sources is
// one record with several names; rmi removes exactly the names it is given,
// and the data once the last name goes. Archives through pipes.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { busyboxImage, CLI, needsRoot, stateRoot, TEST_BASE, tsrun } from './helpers';

const root = stateRoot('image-store');
const base = path.join(TEST_BASE, `image-store-${process.pid}`);
const storage = path.join(base, 'store');
const ts = (args: string[]) => tsrun(['--storage', storage, ...args], { root });
const haveSkopeo = spawnSync('sh', ['-c', 'command -v skopeo']).status === 0;

t.before(() => {
  if (needsRoot) return;
  fs.mkdirSync(base, { recursive: true });
  busyboxImage(storage);
});
t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));

const images = () => JSON.parse(ts(['images', '--format', 'json']).stdout) as { id: string; name: string }[];

t.test('one image from an oci-archive and a docker-archive is one image with two names; rmi takes exactly what it is given', { skip: needsRoot || (!haveSkopeo && 'needs skopeo (for a docker-archive)') }, async (t) => {
  const oci = path.join(base, 'bb-oci.tar');
  const docker = path.join(base, 'bb-docker.tar');
  t.equal(ts(['save', '-o', oci, 'busybox']).status, 0);
  execFileSync('skopeo', ['copy', `oci-archive:${oci}`, `docker-archive:${docker}:other/busybox:2`], { stdio: 'ignore' });
  t.equal(ts(['rmi', 'busybox']).status, 0);
  t.equal(ts(['image', 'prune']).status, 0);
  t.equal(ts(['load', '-i', oci]).status, 0);
  let r = ts(['tag', 'busybox', 'first/busybox:1']);
  t.equal(ts(['rmi', 'busybox']).stdout, 'Untagged: docker.io/library/busybox:latest\n', 'rmi of one name of several only untags');
  r = ts(['load', '-i', docker]);
  t.equal(r.status, 0, r.stderr);
  const list = images();
  t.equal(new Set(list.map((i) => i.id)).size, 1, 'one image id');
  t.same(list.map((i) => i.name).sort(), ['docker.io/first/busybox:1', 'docker.io/other/busybox:2']);
  const id = list[0].id;
  t.equal(JSON.parse(ts(['image', 'inspect', id]).stdout)[0].Id, id, 'the full id is no ambiguous prefix');
  t.equal(JSON.parse(fs.readFileSync(path.join(storage, 'images.json'), 'utf8')).images.length, 1, 'one record');
  r = ts(['rmi', id]);
  t.equal(r.status, 125, 'an id of an image with several names is refused without -f');
  t.match(r.stderr, /has several names/);
  t.same(ts(['rmi', 'other/busybox:2']).stdout, 'Untagged: docker.io/other/busybox:2\n');
  t.equal(ts(['run', '--rm', 'first/busybox:1', 'echo', 'still here']).stdout, 'still here\n', 'the other name still runs');
  r = ts(['rmi', 'first/busybox:1']);
  t.equal(r.stdout, `Untagged: docker.io/first/busybox:1\nDeleted: ${id}\n`);
  t.same(fs.readdirSync(path.join(storage, 'blobs', 'sha256')), [], 'its blobs went with its last name, both manifests\' ones');
  t.same(fs.readdirSync(path.join(storage, 'layers')).filter((d) => /^[a-f0-9]{64}$/.test(d)), [], 'and its unpacked layer');
  busyboxImage(storage);
});

t.test('archives through pipes: save to stdout, load and import from stdin', { skip: needsRoot }, async (t) => {
  const out = path.join(base, 'piped.tar');
  const save = spawnSync('sh', ['-c', `"${process.execPath}" "${CLI}" --storage "${storage}" save busybox > "${out}"`]);
  t.equal(save.status, 0, String(save.stderr));
  t.ok(fs.statSync(out).size > 100_000, 'save wrote the archive to stdout');
  const other = path.join(base, 'other-store');
  let r = spawnSync(process.execPath, [CLI, '--storage', other, 'load'], { input: fs.readFileSync(out), encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /Loaded image: busybox/);
  // An endless stream ends at the tar's end.
  r = spawnSync('sh', ['-c', `cat "${out}" /dev/zero | "${process.execPath}" "${CLI}" --storage "${other}" load -i -`], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, `a tar followed by endless zeros: ${r.stderr}`);
  const rootfs = execFileSync('tar', ['-C', '/bin', '-c', 'busybox'], { maxBuffer: 64 << 20 });
  r = spawnSync(process.execPath, [CLI, '--storage', other, 'import', '-', 'piped:1'], { input: rootfs, encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^sha256:[a-f0-9]{64}\n$/);
  r = spawnSync(process.execPath, [CLI, '--storage', other, 'image', 'inspect', 'piped:1'], { encoding: 'utf8' });
  t.match(JSON.parse(r.stdout)[0].Config.history[0].created_by, /tsrun import stdin/);
  t.same(fs.readdirSync(path.join(other, 'tmp')), [], 'no temporary left');
});
