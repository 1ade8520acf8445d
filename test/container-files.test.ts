// Files in and out of containers: cp both ways (running and stopped, a tar
// stream, Docker's rules for "/" and "/.", symlinks resolved inside the
// container, never on the host), diff, commit (a deletion stays deleted),
// export | import.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { busyboxImage, needsRoot, stateRoot, TEST_BASE, tsrun } from './helpers';

const root = stateRoot('container-files');
const storage = path.join(TEST_BASE, 'storage', `container-files-${process.pid}`);
const host = path.join(TEST_BASE, `container-files-${process.pid}`);
const ts = (args: string[]) => tsrun(['--storage', storage, ...args], { root });
const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { encoding: 'utf8' });

t.before(() => {
  if (needsRoot) return;
  busyboxImage(storage);
  fs.mkdirSync(path.join(host, 'src', 'sub'), { recursive: true });
  fs.writeFileSync(path.join(host, 'src', 'a'), 'A');
  fs.writeFileSync(path.join(host, 'src', 'sub', 'b'), 'B');
  fs.chmodSync(path.join(host, 'src', 'sub', 'b'), 0o640);
  fs.chownSync(path.join(host, 'src', 'sub', 'b'), 1234, 4321);
  fs.symlinkSync('/etc/passwd', path.join(host, 'src', 'link'));
});
t.teardown(() => {
  for (const id of ts(['ps', '-aq']).stdout.split('\n').filter(Boolean)) ts(['rm', '-f', '-v', id]);
  fs.rmSync(storage, { recursive: true, force: true });
  fs.rmSync(host, { recursive: true, force: true });
});

t.test('cp into and out of a running container, with Docker\'s rules for where things land', { skip: needsRoot }, async (t) => {
  const id = ts(['run', '-d', '--name', 'box', 'busybox', 'sh', '-c', 'mkdir /data && echo in > /data/f && ln -s /etc /evil && sleep 100']).stdout.trim();
  for (let i = 0; i < 100 && ts(['exec', id, 'ls', '/evil']).status !== 0; i++) await new Promise((r) => setTimeout(r, 50));
  const inside = (cmd: string) => ts(['exec', id, 'sh', '-c', cmd]).stdout;

  t.equal(ts(['cp', path.join(host, 'src'), 'box:/data']).status, 0, 'a directory into an existing directory lands under its name');
  t.equal(inside('cat /data/src/a /data/src/sub/b; readlink /data/src/link; stat -c "%u:%g %a" /data/src/sub/b'), 'AB/etc/passwd\n0:0 640\n', 'contents, modes and a symlink as a symlink; owned by root without -a');
  t.equal(ts(['cp', '-a', path.join(host, 'src', 'sub', 'b'), 'box:/data/b-kept']).status, 0);
  t.equal(inside('stat -c "%u:%g" /data/b-kept'), '1234:4321\n', '-a keeps owners');
  t.equal(ts(['cp', `${host}/src/.`, 'box:/data/flat']).status, 0, 'SRC/. into a new directory');
  t.equal(inside('ls /data/flat'), 'a\nlink\nsub\n', 'the contents, not the directory');
  t.equal(ts(['cp', `${host}/src/.`, 'box:/data']).status, 0, 'SRC/. into an existing directory merges');
  t.equal(inside('ls /data'), 'a\nb-kept\nf\nflat\nlink\nsrc\nsub\n');
  t.equal(ts(['cp', `${host}/src/a`, 'box:/data/f']).status, 0, 'a file over a file replaces it');
  t.equal(inside('cat /data/f'), 'A');
  let r = ts(['cp', `${host}/src/a`, 'box:/nodir/']);
  t.equal(r.status, 125);
  t.match(r.stderr, /destination directory .* does not exist/);
  r = ts(['cp', `${host}/src`, 'box:/data/f']);
  t.match(r.stderr, /cannot copy a directory to .*not a directory/);

  // A symlink in the container pointing at /etc: the copy lands in the container's /etc; the host's is untouched.
  const before = fs.readFileSync('/etc/passwd', 'utf8');
  t.equal(ts(['cp', `${host}/src/a`, 'box:../../../../tmp/climbed']).status, 0, '".." stops at the container\'s root');
  t.equal(inside('cat /tmp/climbed'), 'A');
  t.notOk(fs.existsSync('/tmp/climbed'), 'nothing on the host');
  t.equal(ts(['cp', `${host}/src/a`, 'box:/evil/planted']).status, 0);
  t.notOk(fs.existsSync('/etc/planted'), 'nothing written to the host\'s /etc');
  t.equal(inside('cat /etc/planted'), 'A', 'it is in the container\'s /etc');
  fs.mkdirSync(path.join(host, 'out'));
  t.equal(ts(['cp', 'box:/evil/passwd', path.join(host, 'out', 'passwd')]).status, 0);
  t.equal(fs.readFileSync(path.join(host, 'out', 'passwd'), 'utf8'), inside('cat /etc/passwd'), 'reading through it gives the container\'s file');
  t.not(fs.readFileSync(path.join(host, 'out', 'passwd'), 'utf8'), before);
  t.equal(ts(['cp', 'box:/evil', path.join(host, 'out', 'evil')]).status, 0);
  t.equal(fs.readlinkSync(path.join(host, 'out', 'evil')), '/etc', 'the symlink itself is copied');
  t.equal(ts(['cp', '-L', 'box:/evil', path.join(host, 'out', 'etc-copy')]).status, 0);
  t.ok(fs.existsSync(path.join(host, 'out', 'etc-copy', 'planted')), '-L follows it, inside the container');

  // Out: a directory into a new one takes its contents; owners are the caller's unless -a.
  t.equal(ts(['cp', 'box:/data/src', path.join(host, 'out', 'data')]).status, 0);
  t.same(fs.readdirSync(path.join(host, 'out', 'data')).sort(), ['a', 'link', 'sub']);
  t.equal(fs.statSync(path.join(host, 'out', 'data', 'sub', 'b')).mode & 0o777, 0o640);
  t.equal(ts(['cp', '-a', 'box:/data/b-kept', path.join(host, 'out')]).status, 0, 'a file into an existing directory');
  t.equal(fs.statSync(path.join(host, 'out', 'b-kept')).uid, 1234);

  // Tar streams both ways.
  const tar = path.join(host, 'data.tar');
  sh(`node ${JSON.stringify(path.join(__dirname, '..', 'dist', 'tsrun.js'))} --storage ${storage} --root ${root} cp box:/data/src - > ${tar}`);
  t.match(sh(`tar -tf ${tar} | sort`), /^src\nsrc\/a\nsrc\/link\nsrc\/sub\nsrc\/sub\/b\n$/, 'cp CONTAINER:SRC - writes a tar');
  sh(`tar -C ${host}/src -cf ${host}/in.tar a sub`);
  t.equal(ts(['exec', id, 'mkdir', '/fromtar']).status, 0);
  sh(`node ${JSON.stringify(path.join(__dirname, '..', 'dist', 'tsrun.js'))} --storage ${storage} --root ${root} cp - box:/fromtar < ${host}/in.tar`);
  t.equal(inside('cat /fromtar/a /fromtar/sub/b'), 'AB', 'cp - CONTAINER:DST extracts a tar');
  t.equal(ts(['rm', '-f', id]).status, 0);
});

t.test('cp with a stopped container, volumes included; a hostile tar is refused', { skip: needsRoot }, async (t) => {
  t.equal(ts(['run', '--name', 'stopped', '-v', 'cpvol:/vol', 'busybox', 'sh', '-c', 'echo layer > /f; echo vol > /vol/v; ln -s / /rootlink']).status, 0);
  t.equal(ts(['cp', 'stopped:/f', path.join(host, 'f-out')]).status, 0);
  t.equal(fs.readFileSync(path.join(host, 'f-out'), 'utf8'), 'layer\n', 'out of the writable layer');
  t.equal(ts(['cp', 'stopped:/vol/v', path.join(host, 'v-out')]).status, 0);
  t.equal(fs.readFileSync(path.join(host, 'v-out'), 'utf8'), 'vol\n', 'out of a volume it mounts');
  t.equal(ts(['cp', `${host}/src/a`, 'stopped:/vol/a']).status, 0);
  t.equal(fs.readFileSync(path.join(storage, 'volumes', 'cpvol', '_data', 'a'), 'utf8'), 'A', 'into the volume');
  t.equal(ts(['cp', `${host}/src/a`, 'stopped:/rootlink/new-a']).status, 0, 'into its writable layer, through its own symlink to /');
  t.equal(fs.readFileSync(path.join(storage, 'containers', ts(['inspect', 'stopped']).stdout.match(/"Id": "([0-9a-f]{64})"/)![1], 'upper', 'new-a'), 'utf8'), 'A');
  t.notOk(fs.existsSync('/new-a'), 'not on the host');
  const r = ts(['run', '--rm', '--volumes-from', 'stopped', 'busybox', 'cat', '/vol/a']);
  t.equal(r.stdout, 'A');
  t.same(fs.readdirSync(root).filter((n) => n.startsWith('cp-')), [], 'the copy\'s helper container is gone');
  // A tar whose symlink entry would lead a later entry out of the container.
  const { makeTar } = await import('./images');
  fs.writeFileSync(path.join(host, 'hostile.tar'), await makeTar([
    { name: 'esc', type: 'symlink', linkname: host },
    { name: 'esc/pwned', data: 'x' },
  ]));
  let out = '';
  try {
    sh(`node ${JSON.stringify(path.join(__dirname, '..', 'dist', 'tsrun.js'))} --storage ${storage} --root ${root} cp - stopped:/ < ${host}/hostile.tar 2>&1`);
  } catch (e) {
    out = String((e as { stdout?: string }).stdout);
  }
  t.match(out, /^tsrun: .*esc.*symlink/m, 'refused: the entry would be written through a symlink');
  t.notOk(fs.existsSync(path.join(host, 'pwned')), 'nothing written on the host');
  t.equal(ts(['rm', '-v', 'stopped']).status, 0);
  t.equal(ts(['volume', 'rm', 'cpvol']).status, 0);
});

t.test('diff, commit (a deleted file stays deleted), export | import', { skip: needsRoot }, async (t) => {
  t.equal(ts(['run', '--name', 'changer', '-v', `${host}:/mnt/host`, 'busybox', 'sh', '-c', 'echo new > /newfile; echo more >> /etc/passwd; rm /etc/group; mkdir -p /tmp/a/b; echo z > /tmp/a/b/z; ln /newfile /hardlink']).status, 0);
  t.equal(ts(['diff', 'changer']).stdout, ['C /etc', 'D /etc/group', 'C /etc/passwd', 'A /hardlink', 'A /newfile', 'C /tmp', 'A /tmp/a', 'A /tmp/a/b', 'A /tmp/a/b/z', ''].join('\n'), 'Docker\'s A/C/D lines; the runtime\'s own mount points are not changes');
  const c = ts(['commit', '-c', 'CMD ["cat", "/newfile"]', '-c', 'ENV MODE=committed', '-m', 'the change', 'changer', 'changed:v1']);
  t.equal(c.status, 0, c.stderr);
  t.match(c.stdout, /^sha256:[0-9a-f]{64}\n$/);
  t.equal(ts(['run', '--rm', 'changed:v1']).stdout, 'new\n', 'the new image runs with the change and its new CMD');
  const r = ts(['run', '--rm', 'changed:v1', 'sh', '-c', 'ls /etc; echo $MODE; tail -n 1 /etc/passwd; stat -c %h /newfile; ls -d /mnt/host 2>&1']);
  t.notMatch(r.stdout, /^group$/m, 'the deleted file stays deleted');
  t.match(r.stdout, /^committed$/m, 'ENV from -c');
  t.match(r.stdout, /^more$/m, 'the changed file');
  t.match(r.stdout, /^2$/m, 'the hardlink kept');
  t.match(r.stdout, /No such file/, 'a bind\'s mount point is not part of the image');
  const hist = JSON.parse(ts(['image', 'inspect', 'changed:v1']).stdout)[0];
  t.ok(JSON.stringify(hist).includes('the change'), 'the message is in the history');

  const tar = path.join(host, 'export.tar');
  t.equal(ts(['export', '-o', tar, 'changer']).status, 0);
  const names = sh(`tar -tf ${tar}`).split('\n');
  t.ok(names.includes('newfile') && names.includes('etc/passwd') && !names.includes('etc/group'), 'the merged filesystem, the deletion applied');
  t.equal(ts(['import', tar, 'exported:v1', '--change', 'CMD ["sh"]']).status, 0);
  t.equal(ts(['run', '--rm', 'exported:v1', 'sh', '-c', 'cat /newfile; ls /etc/group 2>&1 | grep -c "No such"']).stdout, 'new\n1\n', 'export | import round trip');
  t.equal(ts(['rm', 'changer']).status, 0);
  const bad = ts(['diff', 'nosuch']);
  t.equal(bad.status, 125);
  t.match(bad.stderr, /^tsrun: no such container: nosuch$/m);
});

t.test('review findings: a container racing diff and commit, stream errors, type changes, devices and setuid, an interrupted copy', { skip: needsRoot }, async (t) => {
  // A container that keeps swapping a directory for a symlink to a host directory: diff and commit read it frozen.
  const secret = path.join(host, 'secret-dir');
  fs.mkdirSync(secret, { recursive: true });
  fs.writeFileSync(path.join(secret, 'host-only-name'), 'HOST-SECRET');
  const racer = ts(['run', '-d', 'busybox', 'sh', '-c', `mkdir /b; echo c > /b/inner; ln -s ${secret} /x; while :; do mv /b /t; mv /x /b; mv /t /x; done`]).stdout.trim();
  t.match(racer, /^[0-9a-f]{64}$/);
  for (let i = 0; i < 12; i++) {
    const d = ts(['diff', racer]);
    t.equal(d.status, 0, d.stderr);
    if (/host-only-name/.test(d.stdout)) t.fail(`diff ${i} listed a host file: ${d.stdout}`);
  }
  const c = ts(['commit', racer, 'raced:v1']);
  t.equal(c.status, 0, c.stderr);
  const listing = ts(['run', '--rm', '--entrypoint', 'sh', 'raced:v1', '-c', 'cat /b/host-only-name /x/host-only-name 2>/dev/null; echo done']);
  t.notMatch(listing.stdout, /HOST-SECRET/, 'the committed layer holds no host file');
  let r = ts(['commit', '--pause=false', racer, 'raced:v2']);
  t.equal(r.status, 125, '--pause=false on a running container is refused');
  t.match(r.stderr, /only while it is frozen/);
  r = ts(['export', '-o', path.join(host, 'nodir', 'x.tar'), racer]);
  t.equal(r.status, 125);
  t.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  t.match(ts(['ps', '-a']).stdout, new RegExp(`${racer.slice(0, 12)}.*Up [^\\n]*$`, 'm'));
  t.notMatch(ts(['ps', '-a']).stdout, /Paused/, 'not left frozen');
  t.equal(ts(['rm', '-f', racer]).status, 0);

  // Type changes are refused, never a tree removed; devices and setuid bits do not reach the host without -a.
  const id = ts(['run', '-d', 'busybox', 'sh', '-c', 'mkdir -p /loot/keep && mknod /loot/disk b 7 0 && cp /bin/busybox /loot/suid && chmod 4755 /loot/suid && sleep 100']).stdout.trim();
  for (let i = 0; i < 100 && ts(['exec', id, 'ls', '/loot/suid']).status !== 0; i++) await new Promise((res) => setTimeout(res, 50));
  fs.writeFileSync(path.join(host, 'bin'), 'x');
  r = ts(['cp', path.join(host, 'bin'), `${id}:/`]);
  t.equal(r.status, 125);
  t.match(r.stderr, /cannot overwrite directory bin with a non-directory/);
  t.equal(ts(['exec', id, 'true']).status, 0, 'the container\'s /bin is still there');
  fs.mkdirSync(path.join(host, 'loot-out', 'loot'), { recursive: true });
  fs.writeFileSync(path.join(host, 'loot-out', 'loot', 'keep'), 'mine');
  r = ts(['cp', `${id}:/loot`, path.join(host, 'loot-out')]);
  t.equal(r.status, 125, 'a directory over a host file is refused');
  t.equal(fs.readFileSync(path.join(host, 'loot-out', 'loot', 'keep'), 'utf8'), 'mine');
  r = ts(['cp', `${id}:/loot`, path.join(host, 'loot2')]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /left out the device node loot2\/disk/);
  t.notOk(fs.existsSync(path.join(host, 'loot2', 'disk')));
  t.equal(fs.statSync(path.join(host, 'loot2', 'suid')).mode & 0o7777, 0o755, 'setuid cleared');
  t.equal(ts(['cp', '-a', `${id}:/loot`, path.join(host, 'loot3')]).status, 0);
  t.equal(fs.statSync(path.join(host, 'loot3', 'suid')).mode & 0o7777, 0o4755, '-a keeps it');
  t.ok(fs.lstatSync(path.join(host, 'loot3', 'disk')).isBlockDevice(), '-a copies the device node');
  r = ts(['cp', path.join(host, 'bin'), `${id}:/proc/sys/`]);
  t.equal(r.status, 125);
  t.equal(r.stderr.trim().split('\n').length, 1);
  t.notMatch(r.stderr, /internal error/);
  t.equal(ts(['rm', '-f', id]).status, 0);
  fs.rmSync(path.join(host, 'loot3'), { recursive: true, force: true });

  // An interrupted copy into a stopped container removes the container it made for the copy.
  t.equal(ts(['run', '--name', 'halted', 'busybox', 'true']).status, 0);
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'dist', 'tsrun.js'), '--root', root, '--storage', storage, 'cp', '-', 'halted:/tmp'], { stdio: ['pipe', 'ignore', 'pipe'] });
  for (let i = 0; i < 100 && !fs.readdirSync(root).some((n) => n.startsWith('cp-')); i++) await new Promise((res) => setTimeout(res, 50));
  t.ok(fs.readdirSync(root).some((n) => n.startsWith('cp-')), 'the copy made its helper');
  child.kill('SIGINT');
  const code = await new Promise((res) => child.on('exit', res));
  t.equal(code, 130);
  t.same(fs.readdirSync(root).filter((n) => n.startsWith('cp-')), [], 'and removed it');
  t.equal(ts(['rm', 'halted']).status, 0);
});
