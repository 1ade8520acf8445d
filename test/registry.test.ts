// Registries, against a real one (Debian's docker-registry) on 127.0.0.1
// that each test starts with its own config: pull, push, login, the auth
// modes, TLS, manifests and indexes, and skopeo as the second client.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { busyboxImage, busyboxRootfs, CLI, needsRoot, removeRootfs, stateRoot, TEST_BASE, tsrun } from './helpers';
import { gzip, makeTar, sha } from './images';
import { haveRegistry, startHostileRegistry, startRegistry, type Registry } from './registry-server';

const root = stateRoot('registry');
const base = path.join(TEST_BASE, `registry-${process.pid}`);
const home = path.join(base, 'src-store');
const skip = needsRoot || (!haveRegistry && 'needs docker-registry, apache2-utils (htpasswd) and openssl');
const haveSkopeo = spawnSync('sh', ['-c', 'command -v skopeo']).status === 0;
let fresh = 0;
/** A store of its own for one pull: nothing cached. */
const newStore = () => path.join(base, `store-${++fresh}`);
const ts = (storage: string, args: string[], timeout?: number) => tsrun(['--storage', storage, ...args], { root, timeout });
const registries: Registry[] = [];
const started = async (opts?: Parameters<typeof startRegistry>[0]) => {
  const r = await startRegistry(opts);
  registries.push(r);
  return r;
};

t.before(() => {
  if (skip) return;
  fs.mkdirSync(base, { recursive: true });
  busyboxImage(home);
});
t.teardown(async () => {
  for (const r of registries) await r.stop();
  fs.rmSync(base, { recursive: true, force: true });
  fs.rmSync(path.join(TEST_BASE, 'registries'), { recursive: true, force: true });
  removeRootfs();
});

const oneLine = (t: Tap.Test, r: { status: number | null; stderr: string }, err: RegExp, what: string) => {
  t.equal(r.status, 125, `${what}: exit 125`);
  t.match(r.stderr, err, what);
  t.equal(r.stderr.trim().split('\n').pop()!.startsWith('tsrun: '), true, `${what}: ends with tsrun's one line`);
  t.notMatch(r.stderr, /internal error|\n\s+at /, `${what}: no stack trace`);
};

t.test('anonymous: push, pull into an empty store, run by the registry\'s name; skopeo agrees on every digest', { skip }, async (t) => {
  const reg = await started();
  const name = `${reg.host}/test/busybox:1`;
  t.equal(ts(home, ['tag', 'busybox', name]).status, 0);
  let r = ts(home, ['push', name]);
  t.equal(r.status, 0, r.stderr);
  const pushed = /^Digest: (sha256:[a-f0-9]{64})$/m.exec(r.stdout)?.[1];
  t.ok(pushed, 'push prints the manifest digest');
  const store = newStore();
  r = ts(store, ['pull', name]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, new RegExp(`^${name.replace(/[.]/g, '\\.')}\\nDigest: ${pushed}\\nsha256:[a-f0-9]{64}\\n$`));
  t.equal(ts(store, ['run', '--rm', name, 'echo', 'from the registry']).stdout, 'from the registry\n');
  const inspect = JSON.parse(ts(store, ['image', 'inspect', name]).stdout)[0];
  t.same(inspect.RepoDigests, [`${reg.host}/test/busybox@${pushed}`], 'RepoDigests');
  if (!haveSkopeo) return t.skip('skopeo is not installed');
  const sk = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${name}`], { encoding: 'utf8' }));
  t.equal(sk.Digest, pushed, 'skopeo sees the digest tsrun pushed');
  // skopeo pushes, tsrun pulls.
  const archive = path.join(base, 'bb.tar');
  t.equal(ts(home, ['save', '-o', archive, 'busybox']).status, 0);
  execFileSync('skopeo', ['copy', '--dest-tls-verify=false', `oci-archive:${archive}`, `docker://${reg.host}/by/skopeo:2`], { stdio: 'ignore' });
  const skDigest = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/by/skopeo:2`], { encoding: 'utf8' })).Digest;
  r = ts(store, ['pull', `${reg.host}/by/skopeo:2`]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, new RegExp(`Digest: ${skDigest}`), 'tsrun pulled the digest skopeo pushed');
});

t.test('pull -a: every tag of a repository, each recorded by its name; a tag or digest with -a refused', { skip }, async (t) => {
  const reg = await started();
  for (const tag of ['1', '2', 'latest']) {
    t.equal(ts(home, ['tag', 'busybox', `${reg.host}/all/busybox:${tag}`]).status, 0);
    t.equal(ts(home, ['push', `${reg.host}/all/busybox:${tag}`]).status, 0);
  }
  const store = newStore();
  const r = ts(store, ['pull', '-a', '-q', `${reg.host}/all/busybox`]);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout.trim().split('\n').length, 3, 'an id per tag');
  const names = JSON.parse(ts(store, ['images', '--format', 'json']).stdout).map((i: { repository: string; tag: string }) => `${i.repository}:${i.tag}`);
  t.same([...names].sort(), ['1', '2', 'latest'].map((tag) => `${reg.host}/all/busybox:${tag}`), 'the three tags are in the store');
  oneLine(t, ts(newStore(), ['pull', '-a', `${reg.host}/all/busybox:1`]), /pull -a .*: name a repository without a tag or digest/, '-a with a tag');
});

t.test('push: blobs already there are skipped, blobs of another repository are mounted', { skip }, async (t) => {
  const reg = await started();
  t.equal(ts(home, ['tag', 'busybox', `${reg.host}/a/bb:1`]).status, 0);
  let r = ts(home, ['push', `${reg.host}/a/bb:1`]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /: uploaded$/m);
  r = ts(home, ['push', `${reg.host}/a/bb:1`]);
  t.notMatch(r.stderr, /uploaded|mounted/, 'a second push uploads nothing');
  t.match(r.stderr, /: present$/m);
  t.equal(ts(home, ['tag', `${reg.host}/a/bb:1`, `${reg.host}/b/bb:1`]).status, 0);
  r = ts(home, ['push', `${reg.host}/b/bb:1`]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /: mounted$/m, 'mounted from a/bb');
  t.match(reg.log(), /POST \/v2\/b\/bb\/blobs\/uploads\/\?mount=sha256%3A[a-f0-9]{64}&from=a%2Fbb/, 'the mount request, in the registry\'s log');
  t.match(reg.log(), /"POST \/v2\/b\/bb\/blobs\/uploads\/\?mount=[^"]*" 201/, 'answered 201 Created');
  // Docker's manifest format, pulled back.
  r = ts(home, ['push', '--format', 'v2s2', `${reg.host}/a/bb:1`, `${reg.host}/c/bb:1`]);
  t.equal(r.status, 0, r.stderr);
  const store = newStore();
  t.equal(ts(store, ['pull', `${reg.host}/c/bb:1`]).status, 0);
  const m = JSON.parse(ts(store, ['image', 'inspect', `${reg.host}/c/bb:1`]).stdout)[0].Manifest;
  t.equal(m.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
});

t.test('htpasswd basic auth: refused anonymously, login checks the password, logout forgets it', { skip }, async (t) => {
  const reg = await started({ auth: 'htpasswd' });
  const authfile = path.join(base, 'auth-basic.json');
  const name = `${reg.host}/test/busybox:1`;
  t.equal(ts(home, ['tag', 'busybox', name]).status, 0);
  oneLine(t, ts(home, ['push', name]), /push .*: 401 unauthorized: authentication required/, 'push without credentials');
  const login = (password: string) => spawnSync(process.execPath, [CLI, 'login', '-u', 'alice', '--password-stdin', '--authfile', authfile, reg.host], { input: `${password}\n`, encoding: 'utf8' });
  let r = login('wrong');
  oneLine(t, { status: r.status, stderr: r.stderr }, /^tsrun: login 127\.0\.0\.1:\d+: the user name or password was refused\n$/, 'wrong password');
  t.notOk(fs.existsSync(authfile), 'nothing kept');
  t.notMatch(r.stderr, /wrong/, 'the password is not repeated');
  r = login('s3cret');
  t.equal(r.status, 0, r.stderr);
  t.same(JSON.parse(fs.readFileSync(authfile, 'utf8')), { auths: { [reg.host]: { auth: Buffer.from('alice:s3cret').toString('base64') } } });
  t.equal(fs.statSync(authfile).mode & 0o777, 0o600, 'mode 0600');
  r = ts(home, ['push', '--authfile', authfile, name]);
  t.equal(r.status, 0, r.stderr);
  const store = newStore();
  oneLine(t, ts(store, ['pull', name]), /401 unauthorized/, 'pull without the credentials');
  t.equal(ts(store, ['pull', '--authfile', authfile, name]).status, 0);
  r = tsrun(['logout', '--authfile', authfile, reg.host]);
  t.equal(r.status, 0, r.stderr);
  t.same(JSON.parse(fs.readFileSync(authfile, 'utf8')), { auths: {} }, 'logout removed the entry');
  // REGISTRY_AUTH_FILE, as podman and skopeo read it.
  fs.writeFileSync(authfile, JSON.stringify({ auths: { [`https://${reg.host}/v2/`]: { auth: Buffer.from('alice:s3cret').toString('base64') } } }));
  r = spawnSync(process.execPath, [CLI, '--root', root, '--storage', newStore(), 'pull', name], { env: { ...process.env, REGISTRY_AUTH_FILE: authfile }, encoding: 'utf8' });
  t.equal(r.status, 0, `REGISTRY_AUTH_FILE, a URL as the key: ${r.stderr}`);
});

t.test('token auth: a bearer token from the realm, cached per scope; insufficient scope said so', { skip }, async (t) => {
  const reg = await started({ auth: 'token', users: { alice: { password: 's3cret', actions: ['pull', 'push'] }, reader: { password: 'r3ad', actions: ['pull'] } } });
  const authfile = path.join(base, 'auth-token.json');
  const creds = (u: string, p: string) => fs.writeFileSync(authfile, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${u}:${p}`).toString('base64') } } }));
  const name = `${reg.host}/tok/busybox:1`;
  t.equal(ts(home, ['tag', 'busybox', name]).status, 0);
  creds('alice', 's3cret');
  let r = ts(home, ['push', '--authfile', authfile, name]);
  t.equal(r.status, 0, r.stderr);
  creds('reader', 'r3ad');
  const store = newStore();
  r = ts(store, ['pull', '--authfile', authfile, name]);
  t.equal(r.status, 0, r.stderr);
  t.equal(ts(store, ['tag', name, `${reg.host}/tok/busybox:2`]).status, 0);
  oneLine(t, ts(store, ['push', '--authfile', authfile, `${reg.host}/tok/busybox:2`]), /insufficient_scope|401 unauthorized/, 'a pull-only user pushing');
  creds('reader', 'nope');
  oneLine(t, ts(newStore(), ['pull', '--authfile', authfile, name]), /the user name or password was refused/, 'a wrong password at the token server');
  oneLine(t, ts(newStore(), ['pull', name]), /401 (unauthorized|insufficient_scope)/, 'anonymous');
});

t.test('TLS: trusted with the test CA (--cert-dir), refused without it, accepted with --tls-verify=false', { skip }, async (t) => {
  const reg = await started({ tls: true });
  const name = `${reg.host}/tls/busybox:1`;
  t.equal(ts(home, ['tag', 'busybox', name]).status, 0);
  oneLine(t, ts(home, ['push', name]), /its TLS certificate is not trusted/, 'without the CA');
  let r = ts(home, ['push', '--cert-dir', reg.certDir!, name]);
  t.equal(r.status, 0, r.stderr);
  r = ts(newStore(), ['pull', '--cert-dir', reg.certDir!, name]);
  t.equal(r.status, 0, r.stderr);
  r = ts(newStore(), ['pull', '--tls-verify=false', name]);
  t.equal(r.status, 0, r.stderr);
});

t.test('an index: this host\'s platform by default, another by --platform, a clear line for one it lacks', { skip: skip || (!haveSkopeo && 'needs skopeo') }, async (t) => {
  const reg = await started();
  // Two images of one index: this host's (busybox) and an "arm64" one.
  const layout = path.join(base, 'multi');
  fs.mkdirSync(path.join(layout, 'blobs', 'sha256'), { recursive: true });
  const put = (b: Buffer | string) => {
    const d = sha(b);
    fs.writeFileSync(path.join(layout, 'blobs', 'sha256', d.slice(7)), b);
    return { digest: d, size: Buffer.byteLength(b) };
  };
  const image = (arch: string, layer: Buffer) => {
    const cfg = JSON.stringify({ architecture: arch, os: 'linux', config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: [sha(layer)] } });
    const m = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...put(cfg) }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...put(gzip(layer)) }] });
    return { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...put(m), platform: { os: 'linux', architecture: arch } };
  };
  const bb = execFileSync('tar', ['-C', busyboxRootfs(), '--numeric-owner', '-c', '.'], { maxBuffer: 64 << 20 });
  const idx = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [image('arm64', await makeTar([{ name: 'arm', data: 'arm64\n' }])), image('amd64', bb)] });
  fs.writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', ...put(idx), annotations: { 'org.opencontainers.image.ref.name': 'v1' } }] }));
  execFileSync('skopeo', ['copy', '--all', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${reg.host}/multi/img:1`], { stdio: 'ignore' });
  let store = newStore();
  let r = ts(store, ['pull', `${reg.host}/multi/img:1`]);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout.split('\n')[1], `Digest: ${sha(idx)}`, 'the index\'s digest is the one pulled');
  t.equal(JSON.parse(ts(store, ['image', 'inspect', `${reg.host}/multi/img:1`]).stdout)[0].Config.architecture, process.arch === 'x64' ? 'amd64' : process.arch);
  if (process.arch === 'x64') t.equal(ts(store, ['run', '--rm', `${reg.host}/multi/img:1`, 'echo', 'amd64 ran']).stdout, 'amd64 ran\n');
  store = newStore();
  r = ts(store, ['pull', '--platform', 'linux/arm64', `${reg.host}/multi/img:1`]);
  t.equal(r.status, 0, r.stderr);
  t.equal(JSON.parse(ts(store, ['image', 'inspect', `${reg.host}/multi/img:1`]).stdout)[0].Config.architecture, 'arm64');
  oneLine(t, ts(newStore(), ['pull', '--platform', 'linux/s390x', `${reg.host}/multi/img:1`]), /no image for linux\/s390x in its index \(it has linux\/arm64, linux\/amd64\)/, 'a platform it lacks');
});

t.test('layers: many, shared ones fetched once, two pulls at once download each once', { skip }, async (t) => {
  const reg = await started();
  // A 10-layer image over busybox, and a second sharing all but its top layer.
  const bb = execFileSync('tar', ['-C', busyboxRootfs(), '--numeric-owner', '-c', '.'], { maxBuffer: 64 << 20 });
  const layers = [bb];
  for (let i = 1; i < 10; i++) layers.push(await makeTar([{ name: `l${i}`, data: `${i}\n`.repeat(1000) }]));
  const { makeLayout } = await import('./images');
  const ten = makeLayout('ten', 'v1', layers, { Cmd: ['sh', '-c', 'cat /l1 /l9 | sort -u'] });
  const nine = makeLayout('nine', 'v1', [...layers.slice(0, 9), await makeTar([{ name: 'other', data: 'x' }])], { Cmd: ['true'] });
  const loadedId = (layout: string) => /Loaded image ID: (sha256:[a-f0-9]{64})/.exec(ts(home, ['load', '-i', layout]).stdout)![1];
  const tenId = loadedId(ten);
  t.equal(ts(home, ['tag', tenId.slice(7, 19), `${reg.host}/many/ten:1`]).status, 0);
  t.equal(ts(home, ['push', `${reg.host}/many/ten:1`]).status, 0);
  const nineId = loadedId(nine);
  t.equal(ts(home, ['tag', nineId.slice(7, 19), `${reg.host}/many/nine:1`]).status, 0);
  t.equal(ts(home, ['push', `${reg.host}/many/nine:1`]).status, 0);

  const store = newStore();
  let r = ts(store, ['pull', `${reg.host}/many/ten:1`]);
  t.equal(r.status, 0, r.stderr);
  const ran = ts(store, ['run', '--rm', `${reg.host}/many/ten:1`]);
  t.equal(ran.stdout, '1\n9\n', `all ten layers are there ${ran.stderr}`);
  r = ts(store, ['pull', `${reg.host}/many/nine:1`]);
  t.equal(r.status, 0, r.stderr);
  t.equal((r.stderr.match(/: Already exists$/gm) ?? []).length, 9, 'the nine shared layers are not fetched again');

  // Two processes at once into one empty store: each blob is downloaded once.
  const two = newStore();
  const pulls = [0, 1].map(() => new Promise<number | null>((resolve) => spawn(process.execPath, [CLI, '--root', root, '--storage', two, 'pull', `${reg.host}/many/ten:1`], { stdio: 'ignore' }).on('exit', resolve)));
  t.same(await Promise.all(pulls), [0, 0], 'both pulls succeed');
  const before = reg.log();
  const top = JSON.parse(ts(two, ['image', 'inspect', `${reg.host}/many/ten:1`]).stdout)[0].Manifest.layers[0].digest;
  const gets = (before.match(new RegExp(`GET /v2/many/ten/blobs/${top}`, 'g')) ?? []).length;
  t.equal(gets, 2, 'the busybox layer was fetched once by the first store and once by the two concurrent pulls together');
});

t.test('bad answers: a corrupt blob, an unknown tag, a registry that is down; each one line, nothing half-made', { skip }, async (t) => {
  const reg = await started();
  const name = `${reg.host}/bad/busybox:1`;
  t.equal(ts(home, ['tag', 'busybox', name]).status, 0);
  t.equal(ts(home, ['push', name]).status, 0);
  oneLine(t, ts(newStore(), ['pull', `${reg.host}/bad/busybox:nope`]), /manifest nope: 404 manifest unknown/, 'an unknown tag');
  oneLine(t, ts(newStore(), ['pull', `${reg.host}/nothing/here:1`]), /404 (manifest unknown|name unknown)/, 'an unknown repository');
  // Corrupt the layer blob in the registry's own storage.
  const layer = JSON.parse(ts(home, ['image', 'inspect', name]).stdout)[0].Manifest.layers[0].digest.slice(7);
  const data = path.join(reg.dir, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', layer.slice(0, 2), layer, 'data');
  const original = fs.readFileSync(data);
  const bad = Buffer.from(original);
  bad[bad.length >> 1] ^= 0xff;
  fs.writeFileSync(data, bad);
  const store = newStore();
  // The layer is unpacked as it streams: the digest check at its end or the gzip decoder may see it first.
  oneLine(t, ts(store, ['pull', name]), new RegExp(`blob sha256:${layer} does not match its content \\(sha256 is sha256:[a-f0-9]{64}\\); nothing of it is kept|unpack layer sha256:${layer}: corrupt or truncated gzip stream`), 'a corrupt blob');
  t.same(fs.readdirSync(path.join(store, 'tmp')), [], 'no half-made download');
  t.same(fs.readdirSync(path.join(store, 'ingest')), [], 'no part kept to resume');
  t.notOk(fs.existsSync(path.join(store, 'blobs', 'sha256', layer)), 'the blob is not kept');
  t.same(JSON.parse(ts(store, ['images', '--format', 'json']).stdout), [], 'no image recorded');
  fs.writeFileSync(data, original);
  await reg.stop();
  registries.splice(registries.indexOf(reg), 1);
  oneLine(t, ts(newStore(), ['pull', name]), /registry 127\.0\.0\.1:\d+: connection refused \(is the registry running\?\)/, 'a registry that is down');
});

t.test('run pulls what the store lacks (--pull missing), always, or never', { skip }, async (t) => {
  const reg = await started();
  const name = `${reg.host}/run/busybox:1`;
  t.equal(ts(home, ['tag', 'busybox', name]).status, 0);
  t.equal(ts(home, ['push', name]).status, 0);
  const store = newStore();
  oneLine(t, ts(store, ['run', '--rm', '--pull', 'never', name, 'true']), /image ".*run\/busybox:1" not found/, '--pull never');
  let r = ts(store, ['run', '--rm', name, 'echo', 'pulled on first use']);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, 'pulled on first use\n');
  r = ts(store, ['run', '--rm', name, 'true']);
  t.notMatch(r.stderr, /MB in/, 'the second run pulls nothing');
  r = ts(store, ['run', '--rm', '--pull', 'always', name, 'true']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /: Already exists$/m, '--pull always asks the registry again');
  oneLine(t, ts(newStore(), ['run', '--rm', 'alpine', 'true']), /image "alpine" not found .*pulling it failed: registry docker\.io: blocked by registries\.conf/, 'a short name goes to Docker Hub, blocked here');
});

t.test('a hostile registry: descriptors that are not sha256 names, a manifest that is not its digest; refused, nothing written', { skip }, async (t) => {
  const cfg = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } });
  const oci = 'application/vnd.oci.image.manifest.v1+json';
  const configDesc = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(cfg), size: cfg.length };
  const manifest = (layers: unknown[], config: unknown = configDesc) => JSON.stringify({ schemaVersion: 2, mediaType: oci, config, layers });
  const answer = (type: string, body: string, headers: Record<string, string> = {}) => ({ status: 200, headers: { 'content-type': type, ...headers }, body });
  const nosize = manifest([{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha('x') }]);
  const reg = await startHostileRegistry({
    '/v2/': answer('application/json', '{}'),
    '/v2/evil/img/manifests/traversal': answer(oci, manifest([{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: 'sha256:../../../../etc/passwd', size: 10 }])),
    '/v2/evil/img/manifests/nosize': answer(oci, nosize),
    '/v2/evil/img/manifests/badconfig': answer(oci, manifest([], { ...configDesc, digest: `sha512:${'a'.repeat(128)}` })),
    '/v2/evil/img/manifests/index': answer('application/vnd.oci.image.index.v1+json', JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: oci, digest: 'sha256:/../../x', size: 2, platform: { os: 'linux', architecture: 'amd64' } }] })),
    // A body that is not the digest the pull pinned, whatever the header says.
    [`/v2/evil/img/manifests/${sha('pinned')}`]: answer(oci, nosize, { 'docker-content-digest': sha('pinned') }),
  });
  t.teardown(() => reg.close());
  const store = newStore();
  const img = `${reg.host}/evil/img`;
  oneLine(t, ts(store, ['pull', `${img}:traversal`]), /manifest sha256:[a-f0-9]{64} has a descriptor without a sha256 digest and a size/, 'a layer digest that walks out of the store');
  oneLine(t, ts(store, ['pull', `${img}:nosize`]), /has a descriptor without a sha256 digest and a size/, 'a layer without a size');
  oneLine(t, ts(store, ['pull', `${img}:badconfig`]), /has a descriptor without a sha256 digest and a size/, 'a config digest of another algorithm');
  oneLine(t, ts(store, ['pull', `${img}:index`]), /index sha256:[a-f0-9]{64} has an entry without a sha256 digest/, 'an index entry that walks out of the store');
  oneLine(t, ts(store, ['pull', `${img}@${sha('pinned')}`]), /does not match/, 'a manifest that is not the digest pinned');
  t.notOk(reg.asked().some((u) => u.includes('/blobs/')), 'no blob was asked for');
  const list = (d: string) => (fs.existsSync(d) ? fs.readdirSync(d) : []);
  t.same(list(path.join(store, 'blobs', 'sha256')), [], 'no blob written');
  t.same(list(path.join(store, 'tmp')), [], 'nothing half-made');
});

t.test('layers are unpacked while they download: a refused entry ends a pull whose blob never ends', { skip }, async (t) => {
  // A layer that starts with an entry climbing out of its directory, from a
  // registry that then stalls for ever: only an unpack that reads the
  // download as it comes can refuse it before the blob ends.
  const evil = await makeTar([{ name: '../escape', data: 'x' }]);
  const cfg = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha('whole layer')] } });
  const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha('whole layer'), size: 64 << 20 };
  const oci = 'application/vnd.oci.image.manifest.v1+json';
  const reg = await startHostileRegistry({
    '/v2/': { status: 200, headers: { 'content-type': 'application/json' }, body: '{}' },
    '/v2/stall/img/manifests/1': { status: 200, headers: { 'content-type': oci }, body: JSON.stringify({ schemaVersion: 2, mediaType: oci, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(cfg), size: cfg.length }, layers: [layer] }) },
    [`/v2/stall/img/blobs/${sha(cfg)}`]: { status: 200, headers: { 'content-type': 'application/octet-stream' }, body: cfg },
    [`/v2/stall/img/blobs/${layer.digest}`]: { status: 200, headers: { 'content-type': 'application/octet-stream', 'content-length': String(layer.size) }, base64: evil.subarray(0, 1024).toString('base64'), hang: true },
  });
  t.teardown(() => reg.close());
  const store = newStore();
  const started = Date.now();
  const r = ts(store, ['pull', `${reg.host}/stall/img:1`], 30_000);
  oneLine(t, { status: r.status, stderr: r.stderr }, /unpack layer sha256:[a-f0-9]{64}: refused: .*escape/, 'the refused entry, while the blob still streams');
  t.ok(Date.now() - started < 20_000, 'without waiting for the blob');
  t.same(fs.readdirSync(path.join(store, 'ingest')), [], 'the refused layer is not kept to resume');
  t.same(fs.readdirSync(path.join(store, 'tmp')), [], 'nothing half-made');
  t.same(fs.readdirSync(path.join(store, 'layers')).filter((d) => !d.endsWith('.lock')), [], 'no layer');
});

t.test('a download cut part way resumes where it stopped: in the same pull, and in the next one with a Range request', { skip }, async (t) => {
  const reg = await started();
  const big = crypto.randomBytes(8 << 20);
  const bb = execFileSync('tar', ['-C', busyboxRootfs(), '--numeric-owner', '-c', '.'], { maxBuffer: 64 << 20 });
  const { makeLayout } = await import('./images');
  const layout = makeLayout('big', 'v1', [bb, await makeTar([{ name: 'big', data: big }])], { Cmd: ['sha256sum', '/big'] });
  const id = /Loaded image ID: (sha256:[a-f0-9]{64})/.exec(ts(home, ['load', '-i', layout]).stdout)![1];
  t.equal(ts(home, ['tag', id.slice(7, 19), `${reg.host}/big/img:1`]).status, 0);
  t.equal(ts(home, ['push', `${reg.host}/big/img:1`]).status, 0);
  const top = JSON.parse(ts(home, ['image', 'inspect', id.slice(7, 19)]).stdout)[0].Manifest.layers[1].digest as string;
  const regPort = reg.host.split(':')[1];
  const want = `${crypto.createHash('sha256').update(big).digest('hex')}  /big\n`;
  const ranges = () => (reg.log().match(new RegExp(`GET /v2/big/img/blobs/${top} HTTP/1.1" 206`, 'g')) ?? []).length;

  // The registry "dies" 3 MB into the big layer and stays down: the pull
  // fails and keeps what it received.
  const store = newStore();
  let proxy = await cuttingProxy(0, regPort, 3 << 20, 1, 'exit');
  const name = `127.0.0.1:${proxy.port}/big/img:1`;
  let r = ts(store, ['pull', name]);
  oneLine(t, { status: r.status, stderr: r.stderr }, /connection refused|connection broke/, 'a registry gone mid-blob');
  await proxy.close();
  const part = path.join(store, 'ingest', top.slice(7));
  const kept = fs.statSync(part).size;
  t.ok(kept > 0 && kept < big.length, `part of the layer kept (${kept} bytes)`);
  t.notOk(fs.existsSync(path.join(store, 'blobs', 'sha256', top.slice(7))), 'no blob made of a part');
  t.same(JSON.parse(ts(store, ['images', '--format', 'json']).stdout), [], 'no image recorded');

  // Back on the same address: the next pull asks only for the rest.
  proxy = await cuttingProxy(Number(name.split(':')[1].split('/')[0]), regPort, 0, 0);
  t.teardown(() => proxy.close());
  const before = ranges();
  r = ts(store, ['pull', name]);
  t.equal(r.status, 0, r.stderr);
  t.equal(ranges(), before + 1, 'the rest asked for with a Range request, answered 206');
  t.notOk(fs.existsSync(part), 'the part became the blob');
  t.equal(ts(store, ['run', '--rm', '--network', 'none', name]).stdout, want, 'the resumed layer is whole inside the container');

  // Cut once while the registry stays up: the same pull asks for the rest.
  const again = newStore();
  const flaky = await cuttingProxy(0, regPort, 2 << 20, 1);
  t.teardown(() => flaky.close());
  const flakyName = `127.0.0.1:${flaky.port}/big/img:1`;
  r = ts(again, ['pull', flakyName]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /the connection broke at \d+ of \d+ bytes; asking for the rest/);
  t.equal(ranges(), before + 2, 'one more Range request');
  t.equal(ts(again, ['run', '--rm', '--network', 'none', flakyName]).stdout, want);

  // What a failed pull kept goes with image prune.
  const gone = await cuttingProxy(0, regPort, 3 << 20, 1, 'exit');
  const pruned = newStore();
  t.equal(ts(pruned, ['pull', `127.0.0.1:${gone.port}/big/img:1`]).status, 125);
  await gone.close();
  const parts = fs.readdirSync(path.join(pruned, 'ingest')).length;
  t.ok(parts >= 1, `parts kept (${parts})`);
  t.match(ts(pruned, ['image', 'prune']).stdout, new RegExp(`and ${parts} stale temporar`));
  t.same(fs.readdirSync(path.join(pruned, 'ingest')), [], 'image prune removed it');

  // On a terminal: Docker's bars, a line per layer redrawn in place.
  const tty = await cuttingProxy(0, regPort, 2 << 20, 1);
  t.teardown(() => tty.close());
  const shown = spawnSync('script', ['-qec', `${process.execPath} ${CLI} --root ${root} --storage ${newStore()} pull 127.0.0.1:${tty.port}/big/img:1`, '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
  t.equal(shown.status, 0, shown.stdout);
  t.match(shown.stdout, new RegExp(`${top.slice(7, 19)}: Downloading \\[=*>? *\\] \\d+\\.\\dMB/8\\.4MB`), 'a bar with bytes of the total');
  t.match(shown.stdout, /\x1b\[2A/, 'both layers\' lines redrawn in place');
  t.match(shown.stdout, new RegExp(`${top.slice(7, 19)}: Pull complete`));
});

/** test/fixtures/cutting-proxy.mjs: a proxy to the registry that cuts the first CUTS answers past CUT bytes. */
async function cuttingProxy(listen: number, target: string, cut: number, cuts: number, mode = ''): Promise<{ port: number; close(): Promise<void> }> {
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', process.execPath, path.join(__dirname, 'fixtures', 'cutting-proxy.mjs'), String(listen), target, String(cut), String(cuts), mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`cutting proxy exited ${code}`)));
  });
  return {
    port,
    close: () =>
      new Promise<void>((res) => {
        if (child.exitCode !== null || child.signalCode !== null) return res();
        child.once('exit', () => res());
        child.kill('SIGKILL');
      }),
  };
}
