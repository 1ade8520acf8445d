// tsrun build: images built from Dockerfiles, checked by running them (what
// a container of the image sees), by their config, by the cache's reuse,
// and against the filesystem Debian's buildah makes of the same Dockerfile.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import * as tar from 'tar-stream';
import { CLI, defaultBridgeUndo, needsRoot, PROJECT, stateRoot, TEST_BASE, tsrun } from './helpers';
import { makeTar } from './images';

const ALPINE = path.resolve(__dirname, '..', '..', 'shared', 'images', 'alpine-minirootfs-3.20.3-x86_64.tar.gz');
const root = stateRoot('build');
const storage = path.join(TEST_BASE, 'storage', `build-${process.pid}`);
const work = path.join(TEST_BASE, 'build', String(process.pid));
const ts = (args: string[], opts: { input?: string | Buffer } = {}) => {
  if (opts.input === undefined) return tsrun(['--storage', storage, ...args], { root });
  const r = spawnSync(process.execPath, [CLI, '--root', root, '--storage', storage, ...args], { input: opts.input, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};
const haveAlpine = fs.existsSync(ALPINE);
const skip = needsRoot || (!haveAlpine && 'needs the Alpine image in ../shared/images');

/** A context directory holding these files (a Dockerfile among them). */
function context(name: string, files: Record<string, string>): string {
  const dir = path.join(work, name);
  fs.rmSync(dir, { recursive: true, force: true });
  for (const [f, data] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), data);
  }
  return dir;
}
const build = (dir: string, ...flags: string[]) => ts(['build', '--network', 'none', ...flags, dir]);
/** What a container of the image prints. */
const inside = (image: string, script: string) => ts(['run', '--rm', '--network', 'none', '--entrypoint', 'sh', image, '-c', script]);
const config = (image: string) => JSON.parse(ts(['image', 'inspect', image]).stdout)[0].Config;
const containers = () => (fs.existsSync(path.join(storage, 'containers')) ? fs.readdirSync(path.join(storage, 'containers')) : []);

t.before(() => {
  if (needsRoot) return;
  execFileSync(path.join(PROJECT, 'scripts', 'busybox-image.sh'), { env: { ...process.env, TSRUN_STORAGE: storage }, stdio: 'ignore' });
  if (haveAlpine) execFileSync(process.execPath, [CLI, '--storage', storage, 'import', ALPINE, 'alpine:3.20'], { stdio: 'ignore' });
});
t.teardown(() => {
  for (const id of containers()) ts(['rm', '-f', id]);
  fs.rmSync(storage, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

const MULTI = `# syntax=docker/dockerfile:1
ARG BASE=alpine:3.20
FROM \${BASE} AS builder
ARG GREETING=hello
ENV APP=/app \\
    MODE=build
WORKDIR $APP
COPY src/*.txt ./
COPY skip/ ./skip/
RUN echo "$GREETING from $MODE" > made.txt \\
 && rm /etc/motd \\
 && echo "$APP" > where.txt

FROM alpine:3.20
LABEL org.example.title="a demo" version=1
COPY --from=builder --chown=nobody:nobody /app/ /srv/
COPY --chown=1:2 src/a.txt /opt/
EXPOSE 8080 9000/udp
VOLUME /data
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s --retries=2 CMD wget -q -O- localhost:8080 || exit 1
ONBUILD RUN echo child
WORKDIR /srv
USER nobody
ENTRYPOINT ["cat"]
CMD ["made.txt"]
`;

t.test('a multi-stage build: what RUN made, COPY globs and --from, ARG and ENV, WORKDIR and USER, a deleted file', { skip }, async (t) => {
  const dir = context('multi', { Dockerfile: MULTI, 'src/a.txt': 'file a\n', 'src/b.txt': 'file b\n', 'src/c.md': 'not copied\n', 'skip/x': 'ignored\n', 'skip/keep': 'kept\n', '.dockerignore': '# comment\nskip/x\n' });
  const r = build(dir, '-t', 'demo:1', '--build-arg', 'GREETING=hi');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^sha256:[0-9a-f]{64}\n$/, 'the image id on stdout');
  t.match(r.stderr, /\[builder 5\/5\] RUN echo/, 'steps are shown by stage');
  t.match(r.stderr, /naming to demo:1/);
  t.equal(inside('demo:1', 'cat made.txt').stdout, 'hi from build\n', 'RUN saw the build arg and ENV');
  const run = ts(['run', '--rm', '--network', 'none', 'demo:1']);
  t.equal(run.stdout, 'hi from build\n', 'ENTRYPOINT ["cat"] with CMD ["made.txt"] in WORKDIR /srv');
  const seen = inside('demo:1', 'pwd; id -un; ls /srv /srv/skip; stat -c "%U:%G %n" /srv/made.txt /opt/a.txt; cat /srv/where.txt; test -e /etc/motd && echo motd; echo "APP=$APP"');
  t.equal(seen.status, 0, seen.stderr);
  t.equal(seen.stdout, ['/srv', 'nobody', '/srv:', 'a.txt', 'b.txt', 'made.txt', 'skip', 'where.txt', '', '/srv/skip:', 'keep', 'nobody:nobody /srv/made.txt', 'bin:daemon /opt/a.txt', '/app', 'motd', 'APP=', ''].join('\n'), 'globs took *.txt only; .dockerignore left skip/x out; --chown by name and number; the final stage has its own /etc/motd and no ENV of the builder');
  const builder = build(dir, '--target', 'builder', '-t', 'demo:builder');
  t.equal(builder.status, 0, builder.stderr);
  t.notMatch(builder.stderr, /stage-1/, '--target builds only the stages it needs');
  t.equal(inside('demo:builder', 'test -e /etc/motd || echo deleted; cat /app/made.txt; echo $MODE').stdout, 'deleted\nhello from build\nbuild\n', 'the deleted file is gone from the image; the default of ARG applies');
  const c = config('demo:1');
  t.same(c.config.Labels, { 'org.example.title': 'a demo', version: '1' });
  t.same(c.config.ExposedPorts, { '8080/tcp': {}, '9000/udp': {} });
  t.same(c.config.Volumes, { '/data': {} });
  t.equal(c.config.StopSignal, 'SIGQUIT');
  t.same(c.config.Healthcheck, { Test: ['CMD-SHELL', 'wget -q -O- localhost:8080 || exit 1'], Interval: 30e9, Retries: 2 });
  t.same(c.config.OnBuild, ['RUN echo child']);
  t.equal(c.config.User, 'nobody');
  t.equal(c.config.WorkingDir, '/srv');
  t.same(c.config.Entrypoint, ['cat']);
  t.same(c.config.Cmd, ['made.txt']);
  const history = (c.history as { created_by: string; empty_layer?: boolean }[]).map((h) => h.created_by);
  t.ok(history.includes('COPY src/a.txt /opt/a.txt') || history.some((h) => /^COPY src\/a.txt \/opt/.test(h)), 'a history entry per step');
  t.equal(c.rootfs.diff_ids.length, (c.history as { empty_layer?: boolean }[]).filter((h) => !h.empty_layer).length, 'one layer per history entry that has one');
  t.same(containers(), [], 'no build container is left');
});

t.test('the cache: an unchanged rebuild takes every step from it; a changed source misses from that step on', { skip }, async (t) => {
  const dir = context('cache', { Dockerfile: 'FROM alpine:3.20\nRUN echo one > /one\nCOPY data.txt /data.txt\nRUN cat /data.txt > /copy\n', 'data.txt': 'v1\n' });
  const first = build(dir, '-t', 'cached');
  t.equal(first.status, 0, first.stderr);
  const again = build(dir, '-t', 'cached');
  t.equal(again.status, 0, again.stderr);
  t.equal(again.stdout, first.stdout, 'the same image id');
  t.equal((again.stderr.match(/ CACHED$/gm) ?? []).length, 3, 'every step CACHED');
  fs.utimesSync(path.join(dir, 'data.txt'), new Date(1), new Date(1));
  t.equal(build(dir).stdout, first.stdout, 'a touched file with the same bytes is the same source');
  fs.writeFileSync(path.join(dir, 'data.txt'), 'v2\n');
  const changed = build(dir, '-t', 'cached');
  t.equal(changed.status, 0, changed.stderr);
  t.match(changed.stderr, /RUN echo one > \/one CACHED/, 'the step before the change is reused');
  t.notMatch(changed.stderr, /COPY data.txt \/data.txt CACHED/, 'the COPY of the changed file runs again');
  t.notMatch(changed.stderr, /RUN cat .* CACHED/, 'and the steps after it');
  t.equal(inside('cached', 'cat /copy').stdout, 'v2\n');
  const arg = context('cache-arg', { Dockerfile: 'FROM alpine:3.20\nARG V=a\nRUN echo $V > /v\n' });
  t.equal(build(arg, '-t', 'arg').status, 0);
  const other = build(arg, '-t', 'arg', '--build-arg', 'V=b');
  t.notMatch(other.stderr, /CACHED/, 'a different build arg is a different step');
  t.equal(inside('arg', 'cat /v').stdout, 'b\n');
  const noCache = build(dir, '--no-cache');
  t.notMatch(noCache.stderr, /CACHED/, '--no-cache runs every step');
});

t.test('busybox: exec and shell forms, SHELL, heredocs, ADD of a local tar, -q and --iidfile, a build from stdin', { skip: needsRoot }, async (t) => {
  const archive = await makeTar([{ name: 'pkg/' }, { name: 'pkg/readme', data: 'from the tar\n', mode: 0o600, uid: 7, gid: 8 }]);
  const dir = context('busybox', {
    Dockerfile: [
      'FROM busybox',
      'RUN ["/bin/sh", "-c", "echo exec > /exec"]',
      'SHELL ["/bin/sh", "-e", "-c"]',
      'RUN <<EOF',
      'echo heredoc > /heredoc',
      'echo second line >> /heredoc',
      'EOF',
      'COPY <<EOF /etc/greeting',
      'hello ${NAME:-world}',
      'EOF',
      'ADD pkg.tar /unpacked/',
      'ADD --chmod=0600 notes.txt /notes',
      '',
    ].join('\n'),
    'notes.txt': 'notes\n',
  });
  fs.writeFileSync(path.join(dir, 'pkg.tar'), archive);
  const iid = path.join(work, 'iid');
  const r = build(dir, '-q', '-t', 'bb', '--iidfile', iid);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stderr, '', '-q prints nothing on stderr');
  t.equal(fs.readFileSync(iid, 'utf8'), r.stdout.trim(), '--iidfile holds the id');
  const seen = inside('bb', 'cat /exec /heredoc /etc/greeting /unpacked/pkg/readme; stat -c "%a %u:%g" /unpacked/pkg/readme /notes');
  t.equal(seen.stdout, 'exec\nheredoc\nsecond line\nhello world\nfrom the tar\n600 7:8\n600 0:0\n', seen.stderr);
  const stdin = ts(['build', '--network', 'none', '-t', 'piped', '-'], { input: 'FROM busybox\nRUN echo piped > /p\n' });
  t.equal(stdin.status, 0, stdin.stderr);
  t.equal(inside('piped', 'cat /p').stdout, 'piped\n', 'a Dockerfile on stdin, with no context');
  const ctxTar = await makeTar([{ name: 'Dockerfile', data: 'FROM busybox\nCOPY f /f\n' }, { name: 'f', data: 'from a context tar\n' }]);
  const tarred = ts(['build', '--network', 'none', '-t', 'tarred', '-'], { input: ctxTar });
  t.equal(tarred.status, 0, tarred.stderr);
  t.equal(inside('tarred', 'cat /f').stdout, 'from a context tar\n');
});

t.test('FROM scratch: the image holds what was copied and nothing else', { skip: needsRoot }, async (t) => {
  const dir = context('scratch', { Dockerfile: 'FROM scratch\nCOPY hello.txt /hello.txt\nCMD ["/hello"]\n', 'hello.txt': 'hi\n' });
  const r = build(dir, '-t', 'scratchy');
  t.equal(r.status, 0, r.stderr);
  const save = path.join(work, 'scratch.tar');
  t.equal(ts(['save', '-o', save, 'scratchy']).status, 0);
  const c = config('scratchy');
  t.equal(c.rootfs.diff_ids.length, 1, 'one layer');
  const img = JSON.parse(ts(['image', 'inspect', 'scratchy']).stdout)[0];
  const names: string[] = [];
  const ex = tar.extract();
  fs.createReadStream(path.join(storage, 'blobs', 'sha256', img.Manifest.layers[0].digest.slice(7))).pipe((await import('node:zlib')).createGunzip()).pipe(ex);
  for await (const e of ex) {
    names.push(e.header.name);
    e.resume();
  }
  t.same(names, ['hello.txt'], 'no mount points or directories of the build container in the layer');
});

t.test('a failing RUN: its command and exit status, no image and no container left', { skip: needsRoot }, async (t) => {
  const before = ts(['images', '--format', 'json']).stdout;
  const dir = context('fail', { Dockerfile: 'FROM busybox\nRUN echo partial > /p\nRUN echo about to fail; exit 3\n' });
  const r = build(dir, '-t', 'never');
  t.equal(r.status, 1);
  t.match(r.stderr, /about to fail/, 'the output of the step is shown');
  t.match(r.stderr, /tsrun: Dockerfile:3: RUN \["\/bin\/sh","-c","echo about to fail; exit 3"\]: the command exited with status 3\n$/);
  t.equal(ts(['images', '--format', 'json']).stdout, before, 'no image');
  t.same(containers(), [], 'no container');
  t.same(fs.readdirSync(root).filter((n) => !n.startsWith('.')), [], 'no runtime state');
  const quiet = build(dir, '-q');
  t.match(quiet.stderr, /about to fail/, '-q still shows a failing step\'s output');
});

t.test('bad Dockerfiles and flags: one clear line each, nothing left', { skip: needsRoot }, async (t) => {
  const cases: [string, Record<string, string>, RegExp, string[]?][] = [
    ['unknown instruction', { Dockerfile: 'FROM busybox\nFROBNICATE x\n' }, /^tsrun: Dockerfile:2: unknown instruction FROBNICATE$/m],
    ['missing FROM', { Dockerfile: '# nothing\nRUN true\n' }, /^tsrun: Dockerfile:2: RUN before the first FROM/m],
    ['empty', { Dockerfile: '' }, /^tsrun: Dockerfile: no FROM instruction/m],
    ['COPY outside the context', { Dockerfile: 'FROM busybox\nCOPY ../secret /s\n' }, /^tsrun: Dockerfile:2: COPY \.\.\/secret: \.\.\/secret is outside the build context$/m],
    ['a missing source', { Dockerfile: 'FROM busybox\nCOPY nothere /s\n' }, /^tsrun: Dockerfile:2: COPY nothere: nothere: no such file or directory in the build context$/m],
    ['an ignored source', { Dockerfile: 'FROM busybox\nCOPY secret /s\n', secret: 'x', '.dockerignore': 'secret\n' }, /\.dockerignore excludes it/],
    ['a URL', { Dockerfile: 'FROM busybox\nADD http://127.0.0.1:1/x /x\n' }, /does not fetch URLs/],
    ['RUN flags', { Dockerfile: 'FROM busybox\nRUN --mount=type=cache,target=/c true\n' }, /RUN --mount is not supported/],
    ['an unknown flag', { Dockerfile: 'FROM busybox\nCOPY --frm=x a /a\n' }, /unknown flag --frm for COPY/],
    ['a missing base image', { Dockerfile: 'FROM 127.0.0.1:1/none:tag\n' }, /Dockerfile:1: image "127.0.0.1:1\/none:tag" is not in/],
    ['an unknown target', { Dockerfile: 'FROM busybox AS one\n' }, /--target two: no stage of that name/, ['--target', 'two']],
    ['a bad variable', { Dockerfile: 'FROM busybox\nENV A=${B\n' }, /Dockerfile:2: "\$\{B": bad substitution/],
    ['another frontend', { Dockerfile: '# syntax=example.com/other/frontend:1\nFROM busybox\n' }, /^tsrun: Dockerfile:1: # syntax=example.com\/other\/frontend:1: tsrun build reads the Dockerfile language/m],
    ['many sources to a file', { Dockerfile: 'FROM busybox\nCOPY a b /dest\n', a: '', b: '' }, /the destination must be a directory ending in "\/"/],
  ];
  for (const [what, files, error, flags] of cases) {
    const r = build(context('bad', files), ...(flags ?? []));
    t.not(r.status, 0, what);
    t.match(r.stderr, error, what);
    t.equal(r.stderr.trim().split('\n').filter((l) => l.startsWith('tsrun:')).length, 1, `${what}: one error line`);
    t.notMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
  }
  t.match(ts(['build', '--frobnicate', '.']).stderr, /unknown option '--frobnicate'/);
  t.same(containers(), [], 'no container left');
});

/** A tar's entries as "type mode uid:gid link content-hash", by path. */
async function entriesOf(tarFile: string): Promise<Map<string, string>> {
  const ex = tar.extract();
  fs.createReadStream(tarFile).pipe(ex);
  const out = new Map<string, string>();
  for await (const e of ex) {
    const h = e.header;
    const hash = crypto.createHash('sha256');
    for await (const c of e) hash.update(c as Buffer);
    const clean = (n: string) => n.replace(/^\.\//, '').replace(/\/$/, '');
    const name = clean(h.name);
    if (name && name !== '.') out.set(name, `${h.type} ${((h.mode ?? 0) & 0o7777).toString(8)} ${h.uid}:${h.gid} ${h.type === 'link' ? clean(h.linkname ?? '') : (h.linkname ?? '')} ${hash.digest('hex').slice(0, 16)}`);
  }
  return out;
}

const haveBuildah = fs.existsSync('/usr/bin/buildah') && fs.existsSync('/usr/sbin/runc');
t.test('the same Dockerfile built by buildah bud gives the same filesystem', { skip: skip || (!haveBuildah && 'needs Debian buildah and runc') }, async (t) => {
  const dir = context('compare', {
    Dockerfile: [
      'ARG BASE=alpine:3.20',
      'FROM $BASE',
      'ENV APP=/app',
      'WORKDIR $APP',
      'COPY src/ ./src/',
      'COPY --chown=1:2 --chmod=0640 src/a.txt /opt/owned/',
      'RUN mkdir -p /data && echo made > /data/f && chmod 0700 /data && ln -s /data/f /data/link && ln /data/f /data/hard && rm -f /etc/motd && rm -rf /etc/apk/keys',
      'USER nobody',
      '',
    ].join('\n'),
    'src/a.txt': 'a\n',
    'src/sub/b.txt': 'b\n',
  });
  fs.chmodSync(path.join(dir, 'src/sub'), 0o750);
  t.equal(build(dir, '-t', 'compare').status, 0);
  const mine = path.join(work, 'tsrun-fs.tar');
  t.equal(ts(['run', '--network', 'none', '--name', 'compare-fs', 'compare', 'true']).status, 0);
  fs.writeFileSync(mine, execFileSync(process.execPath, [CLI, '--root', root, '--storage', storage, 'export', 'compare-fs'], { maxBuffer: 1 << 30 }));
  t.equal(ts(['rm', 'compare-fs']).status, 0);

  const bh = path.join(work, 'buildah');
  const B = ['--root', path.join(bh, 'root'), '--runroot', path.join(bh, 'run'), '--storage-driver', 'vfs'];
  const base = path.join(work, 'alpine.tar');
  t.equal(ts(['save', '-o', base, 'alpine:3.20']).status, 0);
  let ctr = '';
  try {
    execFileSync('buildah', [...B, 'bud', '--runtime', 'runc', '--isolation', 'oci', '--network', 'none', '--build-arg', `BASE=oci-archive:${base}`, '-t', 'compare', dir], { stdio: 'pipe' });
    ctr = execFileSync('buildah', [...B, 'from', 'compare'], { encoding: 'utf8' }).trim();
    const mnt = execFileSync('buildah', [...B, 'mount', ctr], { encoding: 'utf8' }).trim();
    const theirs = path.join(work, 'buildah-fs.tar');
    execFileSync('tar', ['-C', mnt, '--numeric-owner', '-cf', theirs, '.']);
    const a = await entriesOf(mine);
    const b = await entriesOf(theirs);
    // The run that exported it bound a resolv.conf the image lacks (the only mount target Alpine has not);
    // buildah's working container holds podman's run/.containerenv.
    a.delete('etc/resolv.conf');
    b.delete('run/.containerenv');
    const diff = [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k)).map((k) => `${k}: tsrun ${a.get(k)} buildah ${b.get(k)}`);
    t.same(diff, [], 'file list, types, modes, owners, links and contents agree');
    t.ok(a.size > 400, `a whole root filesystem compared (${a.size} entries)`);
  } finally {
    if (ctr) spawnSync('buildah', [...B, 'rm', ctr], { stdio: 'ignore' });
    spawnSync('buildah', [...B, 'rmi', '-a', '-f'], { stdio: 'ignore' });
    spawnSync('umount', ['-R', path.join(bh, 'root')], { stdio: 'ignore' });
    fs.rmSync(bh, { recursive: true, force: true });
  }
});

t.test('image prune keeps cached steps; dangling images go', { skip: needsRoot }, async (t) => {
  const dir = context('prune', { Dockerfile: 'FROM busybox\nRUN echo 1 > /v\n' });
  t.equal(build(dir, '-t', 'pruned').status, 0);
  fs.writeFileSync(path.join(dir, 'Dockerfile'), 'FROM busybox\nRUN echo 2 > /v\n');
  t.equal(build(dir, '-t', 'pruned').status, 0);
  const images = JSON.parse(ts(['images', '--format', 'json']).stdout) as { repository?: string; names?: string[] }[];
  t.ok(JSON.stringify(images).includes('<none>'), 'the first image is dangling once its name moved');
  const r = ts(['image', 'prune']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^removed [1-9]\d* untagged image/);
  fs.writeFileSync(path.join(dir, 'Dockerfile'), 'FROM busybox\nRUN echo 1 > /v\n');
  const again = build(dir, '-t', 'pruned');
  t.match(again.stderr, /RUN echo 1 > \/v CACHED/, 'the cached step outlived the image');
  t.equal(inside('pruned', 'cat /v').stdout, '1\n');
});

t.test('an interrupted build kills its step and leaves no container', { skip: needsRoot }, async (t) => {
  const dir = context('interrupt', { Dockerfile: 'FROM busybox\nRUN echo started; sleep 60\n' });
  const child = spawn(process.execPath, [CLI, '--root', root, '--storage', storage, 'build', '--network', 'none', '--no-cache', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c));
  const started = Date.now();
  while (!err.includes('\nstarted\n') && Date.now() - started < 20_000) await new Promise((r) => setTimeout(r, 50));
  t.ok(err.includes('\nstarted\n'), 'the step runs');
  child.kill('SIGINT');
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  t.equal(code, 130, err);
  t.ok(Date.now() - started < 20_000, 'it ends without waiting for the step');
  t.match(err, /^tsrun: Dockerfile:2: build interrupted by SIGINT$/m);
  t.same(containers(), [], 'no container left');
  t.same(fs.readdirSync(root).filter((n) => !n.startsWith('.')), [], 'no runtime state');

  // Killed outright, a build leaves its step's container; the next build removes it.
  const killed = spawn(process.execPath, [CLI, '--root', root, '--storage', storage, 'build', '--network', 'none', '--no-cache', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  killed.stderr.on('data', (c: Buffer) => (out += c));
  for (const end = Date.now() + 20_000; !out.includes('\nstarted\n') && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
  killed.kill('SIGKILL');
  await new Promise((r) => killed.on('exit', r));
  t.equal(containers().length, 1, 'a SIGKILL leaves the step container');
  const next = build(context('after-kill', { Dockerfile: 'FROM busybox\nRUN true\n' }));
  t.equal(next.status, 0, next.stderr);
  t.same(containers(), [], 'the next build removed it');
  t.same(fs.readdirSync(root).filter((n) => !n.startsWith('.')), [], 'and its runtime state');
});

t.test('builder prune removes the cache and what only it kept', { skip: needsRoot }, async (t) => {
  const dir = context('builder-prune', { Dockerfile: 'FROM busybox\nRUN echo cached > /c\n' });
  t.equal(build(dir).status, 0);
  const r = ts(['builder', 'prune']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^removed [1-9]\d* cached steps?, \d+ layer director(y|ies) and \d+ blobs?\n$/);
  t.same(fs.readdirSync(path.join(storage, 'build-cache')), [], 'no cache entry left');
  t.notMatch(build(dir).stderr, /CACHED/, 'the next build runs its steps again');
});

// The default bridge and its chains, if this file makes them, go with it.
const undoDefaultBridge = defaultBridgeUndo();
t.test('RUN is on the default bridge network unless --network says otherwise', { skip: needsRoot }, async (t) => {
  t.teardown(undoDefaultBridge);
  const dir = context('bridge', { Dockerfile: 'FROM busybox\nRUN ip -o -4 addr show eth0 > /addr\n' });
  const r = ts(['build', '-t', 'bridged', dir]);
  t.equal(r.status, 0, r.stderr);
  t.match(inside('bridged', 'cat /addr').stdout, /eth0\s+inet \d+\.\d+\.\d+\.\d+\//, 'the step had an address on the bridge');
  const veths = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' }).split('\n').filter((l) => /master tsrun0/.test(l));
  t.same(veths, [], 'its veth went with its container');
});
