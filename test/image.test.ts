// Images: import, load, save and run, checked from inside containers.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { CLI, busyboxRootfs, needsRoot, removeRootfs, stateRoot, TEST_BASE, tsrun } from './helpers';
import { makeLayout } from './images';

const ALPINE = path.resolve(__dirname, '..', '..', 'shared', 'images', 'alpine-minirootfs-3.20.3-x86_64.tar.gz');
const root = stateRoot('image');
const storage = path.join(TEST_BASE, 'storage', `image-${process.pid}`);
const ts = (args: string[]) => tsrun(['--storage', storage, ...args], { root });
const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const noAlpine = needsRoot || (!fs.existsSync(ALPINE) && `the Alpine rootfs is absent (${ALPINE})`);
const lines = (s: string) => s.trim().split('\n');

t.teardown(() => {
  fs.rmSync(storage, { recursive: true, force: true });
  fs.rmSync(path.join(TEST_BASE, 'layouts'), { recursive: true, force: true });
  removeRootfs();
});

t.test('the Alpine rootfs, imported and run with Docker\'s flags', { skip: noAlpine }, async (t) => {
  const imp = ts(['import', ALPINE, 'alpine:3.20.3', '--change', 'CMD ["/bin/sh"]', '--change', 'ENV GREETING=hi']);
  t.equal(imp.status, 0, imp.stderr);
  t.match(imp.stdout, /^sha256:[a-f0-9]{64}\n$/);
  const list = JSON.parse(ts(['images', '--format', 'json']).stdout);
  t.match(list, [{ repository: 'alpine', tag: '3.20.3', name: 'docker.io/library/alpine:3.20.3' }]);

  const run = (args: string[]) => ts(['run', '--rm', ...args]);
  let r = run(['alpine:3.20.3', 'cat', '/etc/alpine-release']);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, '3.20.3\n');
  r = run(['alpine', 'true']);
  t.not(r.status, 0, '"alpine" means alpine:latest, which is not there');
  t.match(r.stderr, /image "alpine" not found/);
  t.match(run(['alpine:3.20.3', 'apk', '--version']).stdout, /^apk-tools 2\.\d+/);
  t.equal(run(['-u', 'nobody', 'alpine:3.20.3', 'id', '-u']).stdout, '65534\n');
  t.equal(run(['-u', '1234:daemon', 'alpine:3.20.3', 'id']).stdout, 'uid=1234 gid=2(daemon) groups=2(daemon)\n');
  t.equal(run(['-w', '/tmp', 'alpine:3.20.3', 'pwd']).stdout, '/tmp\n');
  t.equal(run(['-e', 'A=1', '-e', 'GREETING=hello', 'alpine:3.20.3', 'sh', '-c', 'echo $A $GREETING $HOME']).stdout, '1 hello /root\n');
  t.equal(run(['alpine:3.20.3', 'sh', '-c', 'echo $GREETING']).stdout, 'hi\n', 'ENV from --change');
  const envFile = path.join(storage, 'env');
  fs.writeFileSync(envFile, '# comment\nFROM_FILE=yes\n');
  t.equal(run(['--env-file', envFile, 'alpine:3.20.3', 'sh', '-c', 'echo $FROM_FILE']).stdout, 'yes\n');
  t.equal(run(['--entrypoint', '/bin/echo', 'alpine:3.20.3', 'via', 'entrypoint']).stdout, 'via entrypoint\n');
  r = run(['--read-only', 'alpine:3.20.3', 'touch', '/written']);
  t.equal(r.status, 1);
  t.match(r.stderr, /Read-only file system/);
  t.equal(run(['alpine:3.20.3', 'sh', '-c', 'touch /written && echo ok']).stdout, 'ok\n', 'without --read-only the overlay takes writes');
  t.equal(run(['--hostname', 'web1', 'alpine:3.20.3', 'sh', '-c', 'hostname; cat /etc/hostname']).stdout, 'web1\nweb1\n');
  t.equal(run(['alpine:3.20.3', 'sh', '-c', 'exit 42']).status, 42);
  t.equal(run(['alpine:3.20.3', 'nonexistent-cmd']).status, 127);

  const host = path.join(storage, 'vol');
  r = run(['-v', `${host}:/data`, '-v', `${host}:/ro:ro`, '--tmpfs', '/scratch:size=1m', 'alpine:3.20.3', 'sh', '-c', 'echo in > /data/f; cat /ro/f; touch /ro/g || echo ro-refused; grep " /scratch " /proc/mounts']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^in\nro-refused\ntmpfs \/scratch tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k/);
  t.ok(fs.existsSync(path.join(host, 'f')), '-v created the missing host directory, and the write reached it');

  r = spawnSync(process.execPath, [CLI, '--root', root, '--storage', storage, 'run', '--rm', '-i', 'alpine:3.20.3', 'cat'], { input: 'through stdin\n', encoding: 'utf8' });
  t.equal(r.stdout, 'through stdin\n', '-i attaches stdin');
  r = spawnSync(process.execPath, [CLI, '--root', root, '--storage', storage, 'run', '--rm', 'alpine:3.20.3', 'cat'], { input: 'not read\n', encoding: 'utf8' });
  t.equal(r.stdout, '', 'without -i stdin is /dev/null');

  t.same(fs.readdirSync(path.join(storage, 'containers')), [], '--rm removed every container');
});

t.test('kept containers, rmi refusing an image in use, rm and prune', { skip: noAlpine }, async (t) => {
  let r = ts(['run', '--name', 'kept1', 'alpine:3.20.3', 'sh', '-c', 'echo data > /state']);
  t.equal(r.status, 0, r.stderr);
  const keptId = JSON.parse(ts(['inspect', 'kept1']).stdout)[0].Id;
  t.match(keptId, /^[0-9a-f]{64}$/, 'a container gets a 64-hex id beside its name');
  t.ok(fs.existsSync(path.join(storage, 'containers', keptId, 'upper', 'state')), 'the writable layer is kept');
  r = ts(['run', '--name', 'kept1', 'alpine:3.20.3', 'true']);
  t.equal(r.status, 125);
  t.match(r.stderr, /name "kept1" is already in use/);
  t.equal(fs.readdirSync(path.join(storage, 'containers')).length, 1, 'the refused run left nothing');
  r = ts(['rmi', 'alpine:3.20.3']);
  t.equal(r.status, 125);
  t.match(r.stderr, /is used by a container/);
  t.equal(ts(['rm', 'kept1']).status, 0);
  t.notOk(fs.existsSync(path.join(storage, 'containers', keptId)));
  t.notOk(fs.existsSync(path.join(storage, 'names', 'kept1')), 'the name is free again');
  const inspect = JSON.parse(ts(['image', 'inspect', 'alpine:3.20.3']).stdout);
  t.match(inspect, [{ Id: /^sha256:/, RepoTags: ['docker.io/library/alpine:3.20.3'], Config: { config: { Cmd: ['/bin/sh'] } } }]);
  const pinned = ts(['run', '--rm', `alpine@${inspect[0].ManifestDigest}`, 'cat', '/etc/alpine-release']);
  t.equal(pinned.stdout, '3.20.3\n', 'name@sha256:<manifest digest> runs the pinned image');
  t.match(ts(['run', '--rm', `busybox@${inspect[0].ManifestDigest}`, 'true']).stderr, /not found/, 'the digest of another repository does not match');
});

t.test('save then load round-trips to the same digests; skopeo archives load and run', { skip: noAlpine }, async (t) => {
  const out = path.join(storage, 'saved.tar');
  t.equal(ts(['save', '-o', out, 'alpine:3.20.3']).status, 0);
  const before = JSON.parse(ts(['image', 'inspect', 'alpine:3.20.3']).stdout)[0];
  const other = path.join(storage, 'other-store');
  const load = tsrun(['--storage', other, 'load', '-i', out], { root });
  t.equal(load.status, 0, load.stderr);
  t.equal(load.stdout, 'Loaded image: alpine:3.20.3\n');
  const after = JSON.parse(tsrun(['--storage', other, 'image', 'inspect', 'alpine:3.20.3'], { root }).stdout)[0];
  t.equal(after.Id, before.Id, 'same config digest');
  t.equal(after.ManifestDigest, before.ManifestDigest, 'same manifest digest');
  t.same(after.Manifest.layers, before.Manifest.layers, 'same layer digests');

  if (!have('skopeo')) return t.skip('skopeo is not installed (Debian package skopeo)');
  for (const [kind, file, ref] of [
    ['docker-archive', path.join(storage, 'docker.tar'), 'fromdocker:v1'],
    ['oci-archive', path.join(storage, 'oci.tar'), 'fromoci:v1'],
  ]) {
    execFileSync('skopeo', ['copy', '-q', `oci-archive:${out}`, `${kind}:${file}:${ref}`]);
    const l = tsrun(['--storage', other, 'load', '-i', file], { root });
    t.equal(l.status, 0, l.stderr);
    t.equal(l.stdout, `Loaded image: ${ref}\n`, kind);
    const r = tsrun(['--storage', other, 'run', '--rm', ref, 'cat', '/etc/alpine-release'], { root });
    t.equal(r.stdout, '3.20.3\n', `${kind} runs`);
    const img = JSON.parse(tsrun(['--storage', other, 'image', 'inspect', ref], { root }).stdout)[0];
    t.equal(img.Id, before.Id, `${kind}: the same image config`);
  }
  fs.rmSync(other, { recursive: true, force: true });
});

t.test('--network host shares the host\'s network; labels and stop signal are kept', { skip: noAlpine }, async (t) => {
  const r = ts(['run', '--rm', '--network', 'host', 'alpine:3.20.3', 'sh', '-c', 'ip -o link | wc -l; hostname']);
  t.equal(r.status, 0, r.stderr);
  const [links, hostname] = r.stdout.trim().split('\n');
  t.equal(Number(links), execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' }).trim().split('\n').length, 'every host device');
  t.equal(hostname, execFileSync('hostname', { encoding: 'utf8' }).trim());
  t.equal(ts(['import', ALPINE, 'labelled:1', '--change', 'LABEL team=core tier="back end"', '--change', 'STOPSIGNAL SIGQUIT', '--change', 'EXPOSE 80', '--change', 'VOLUME /data']).status, 0);
  t.equal(ts(['run', '--name', 'labelled1', 'labelled:1', 'true']).status, 0);
  const labelledId = JSON.parse(ts(['inspect', 'labelled1']).stdout)[0].Id;
  const cfg = JSON.parse(fs.readFileSync(path.join(storage, 'containers', labelledId, 'config.json'), 'utf8'));
  t.match(cfg.annotations, { 'org.opencontainers.image.stopSignal': 'SIGQUIT', 'tsrun.label.team': 'core', 'tsrun.label.tier': 'back end', 'tsrun.image.exposedPorts': '80/tcp', 'tsrun.image.volumes': '/data' });
  t.equal(ts(['rm', 'labelled1']).status, 0);
});

t.test('progress on a terminal, silence on a pipe', { skip: noAlpine || (!have('script') && 'script (util-linux) is not installed') }, async (t) => {
  const fresh = path.join(storage, 'progress-store');
  const archive = path.join(storage, 'progress.tar');
  t.equal(ts(['save', '-o', archive, 'alpine:3.20.3']).status, 0);
  const onTty = (cmd: string) => execFileSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8' });
  const base = `${process.execPath} ${CLI} --root ${root} --storage ${fresh}`;
  t.match(onTty(`${base} load -i ${archive}`), /loading progress\.tar: [\d.]+\/[\d.]+ MB, [\d.]+ MB\/s/, 'load shows bytes and rate');
  t.match(onTty(`${base} run --rm alpine:3.20.3 true`), /unpacking layer 1\/1 [a-f0-9]{12}: [\d.]+\/[\d.]+ MB, [\d.]+ MB\/s/, 'unpacking shows the layer, bytes and rate');
  const piped = tsrun(['--storage', fresh, 'load', '-i', archive], { root });
  t.equal(piped.stderr, '', 'piped: quiet');
  fs.rmSync(fresh, { recursive: true, force: true });
});

t.test('a zstd layer unpacks and runs', { skip: noAlpine || (!have('zstd') && 'zstd is not installed') }, async (t) => {
  const zst = path.join(storage, 'alpine.tar.zst');
  execFileSync('sh', ['-c', `gzip -dc ${ALPINE} | zstd -q -o ${zst}`]);
  t.equal(ts(['import', zst, 'alpine-zstd:1']).status, 0);
  const r = ts(['run', '--rm', 'alpine-zstd:1', 'cat', '/etc/alpine-release']);
  t.equal(r.stdout, '3.20.3\n', r.stderr);
});

t.test('8 parallel runs of a not-yet-unpacked image all succeed, with one unpack', { skip: noAlpine }, async (t) => {
  // A store of its own: in the shared one this layer is unpacked already.
  const fresh = path.join(storage, 'parallel-store');
  t.equal(tsrun(['--storage', fresh, 'import', ALPINE, 'alpine-par:1'], { root }).status, 0);
  t.same(fs.readdirSync(path.join(fresh, 'layers')), [], 'import only stores the blob');
  const runs = Array.from({ length: 8 }, () =>
    new Promise<{ code: number | null; err: string; out: string }>((resolve) => {
      const c = spawn(process.execPath, [CLI, '--root', root, '--storage', fresh, '--trace', 'run', '--rm', 'alpine-par:1', 'cat', '/etc/alpine-release']);
      let err = '';
      let out = '';
      c.stderr.on('data', (d) => (err += d));
      c.stdout.on('data', (d) => (out += d));
      c.on('exit', (code) => resolve({ code, err, out }));
    }),
  );
  const results = await Promise.all(runs);
  t.same(results.map((r) => r.code), Array(8).fill(0));
  t.same(results.map((r) => r.out), Array(8).fill('3.20.3\n'));
  const unpacks = results.map((r) => (r.err.match(/unpacked layer /g) ?? []).length).reduce((a, b) => a + b, 0);
  t.equal(unpacks, 1, 'one process unpacked the layer; the others waited for it');
  t.equal(fs.readdirSync(path.join(fresh, 'layers')).filter((d) => !d.endsWith('.lock')).length, 1);
  t.same(fs.readdirSync(path.join(fresh, 'tmp')), [], 'no half-done work left');
});

t.test('oci:PATH:TAG names an OCI layout directly', { skip: needsRoot }, async (t) => {
  const base = execFileSync('tar', ['-C', busyboxRootfs(), '-c', '.'], { maxBuffer: 64 << 20 });
  const dir = makeLayout('direct', 'v9', [base], { Cmd: ['sh', '-c', 'echo from layout'] });
  const r = ts(['run', '--rm', `oci:${dir}:v9`]);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, 'from layout\n');
  const missing = ts(['run', '--rm', `oci:${dir}:nope`]);
  t.equal(missing.status, 125);
  t.match(missing.stderr, /no image tagged "nope"/);
});
