// User namespaces for image containers: the container's root is an
// unprivileged host id, the image's files appear as its own through
// idmapped layers, and --userns=auto keeps containers' ranges apart.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { busyboxImage, needsRoot, stateRoot, TEST_BASE, tsrun } from './helpers';
import { probe, removeProbe } from './probe';

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
