// Config validation: each bad config names its field. No root needed.
import t from 'tap';
import { defaultSpec } from '../src/spec/default';
import { parseSpec, validateSpec } from '../src/spec/validate';
import { parseSignal } from '../src/process/signals';

const good = () => JSON.parse(JSON.stringify(defaultSpec({ args: ['true'] })));

t.test('the default spec is valid', async (t) => {
  t.ok(validateSpec(good()));
});

const cases: [string, (s: any) => void, RegExp][] = [
  ['ociVersion', (s) => (s.ociVersion = '2.0'), /^invalid config: ociVersion: /],
  ['root.path', (s) => delete s.root, /root\.path: is required/],
  ['process.args', (s) => (s.process.args = []), /process\.args: must name a command/],
  ['process.cwd', (s) => (s.process.cwd = 'relative'), /process\.cwd: must be an absolute path/],
  ['env entry', (s) => (s.process.env = ['NOEQUALS']), /process\.env\[0\]: "NOEQUALS" is not NAME=value/],
  ['uid', (s) => (s.process.user.uid = -1), /process\.user\.uid/],
  ['unknown capability', (s) => s.process.capabilities.bounding.push('CAP_FLY'), /process\.capabilities\.bounding\[3\]: unknown capability "CAP_FLY"/],
  ['rlimit type', (s) => (s.process.rlimits = [{ type: 'RLIMIT_WINGS', soft: 1, hard: 1 }]), /process\.rlimits\[0\]\.type: unknown limit "RLIMIT_WINGS"/],
  ['rlimit soft > hard', (s) => (s.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 10, hard: 5 }]), /soft limit 10 exceeds hard limit 5/],
  ['mount destination', (s) => s.mounts.push({ destination: 'rel', type: 'tmpfs' }), /mounts\[7\]\.destination: must be an absolute path/],
  ['bind without source', (s) => s.mounts.push({ destination: '/x', type: 'bind' }), /mounts\[7\]\.source: a bind mount needs a source/],
  ['namespace type', (s) => s.linux.namespaces.push({ type: 'wormhole' }), /linux\.namespaces\[6\]\.type: unknown namespace type "wormhole"/],
  ['namespace twice', (s) => s.linux.namespaces.push({ type: 'pid' }), /namespace "pid" is listed twice/],
  ['no mount namespace', (s) => (s.linux.namespaces = s.linux.namespaces.filter((n: any) => n.type !== 'mount')), /linux\.namespaces: a mount namespace is required/],
  ['hostname without uts', (s) => (s.linux.namespaces = s.linux.namespaces.filter((n: any) => n.type !== 'uts')), /hostname: setting it needs a uts namespace of the container's own/],
  ['hostname in the host\'s uts namespace joined by path', (s) => (s.linux.namespaces = s.linux.namespaces.map((n: any) => (n.type === 'uts' ? { type: 'uts', path: '/proc/self/ns/uts' } : n))), /hostname: setting it needs a uts namespace of the container's own \(new, or joined by a path that is not the host's\)/],
  ['user ns without maps', (s) => s.linux.namespaces.push({ type: 'user' }), /linux\.uidMappings: a new user namespace needs uid mappings/],
  ['device path', (s) => (s.linux.devices = [{ path: '/etc/x', type: 'c', major: 1, minor: 1 }]), /linux\.devices\[0\]\.path: must be a path under \/dev/],
  ['sysctl name', (s) => (s.linux.sysctl = { '../../etc/passwd': 'x' }), /linux\.sysctl\.\.\.\/\.\.\/etc\/passwd: is not a sysctl name/],
  ['host-global sysctl', (s) => (s.linux.sysctl = { 'kernel.core_pattern': '|/tmp/x' }), /linux\.sysctl\.kernel\.core_pattern: is not namespaced: writing it would change the host/],
  ['net sysctl without netns', (s) => ((s.linux.sysctl = { 'net.ipv4.ip_forward': '1' }), (s.linux.namespaces = s.linux.namespaces.filter((n: any) => n.type !== 'network'))), /needs a new network namespace/],
  ['mount source type', (s) => s.mounts.push({ destination: '/x', type: 'tmpfs', source: 5 }), /mounts\[7\]\.source: must be a string/],
  ['device uid type', (s) => (s.linux.devices = [{ path: '/dev/x', type: 'c', major: 1, minor: 1, uid: 'root' }]), /linux\.devices\[0\]\.uid: must be a non-negative integer/],
  ['rootfsPropagation', (s) => (s.linux.rootfsPropagation = 'sideways'), /linux\.rootfsPropagation: must be one of/],
];

for (const [name, edit, re] of cases) {
  t.test(`invalid: ${name}`, async (t) => {
    const s = good();
    edit(s);
    t.throws(() => validateSpec(s), re);
  });
}

t.test('JSON syntax errors name the file', async (t) => {
  t.throws(() => parseSpec('{ nope', '/b/config.json'), /invalid config: \/b\/config\.json: not valid JSON/);
});

t.test('signals by name, SIG-name and number', async (t) => {
  t.equal(parseSignal('TERM'), 15);
  t.equal(parseSignal('SIGKILL'), 9);
  t.equal(parseSignal('kill'), 9);
  t.equal(parseSignal('10'), 10);
  t.equal(parseSignal('SIGRTMIN+2'), 36);
  t.throws(() => parseSignal('SIGNOPE'), /unknown signal "SIGNOPE"/);
  t.throws(() => parseSignal('99'), /unknown signal/);
});
