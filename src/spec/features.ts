// The runtime-spec's features document (features.md, features-linux.md):
// what this build of tsrun carries out, read from the same tables that check
// and apply a config, so it cannot claim what the code refuses.
import { CAPABILITIES } from '../process/capabilities';
import { NAMESPACES } from '../ns/namespaces';
import { KNOWN_MOUNT_OPTIONS } from '../rootfs/mount-options';
import { SECCOMP_ACTIONS, SECCOMP_ARCHITECTURES, SECCOMP_FLAGS, SECCOMP_OPERATORS } from '../security/seccomp';
import { native } from '../native';
import { apparmorEnabled } from './validate';

export const OCI_VERSION_MIN = '1.0.0';
export const OCI_VERSION_MAX = '1.2.0';

export function features(): object {
  const flags = Object.keys(SECCOMP_FLAGS);
  return {
    ociVersionMin: OCI_VERSION_MIN,
    ociVersionMax: OCI_VERSION_MAX,
    // config.json's hooks are refused (spec/validate.ts): none is run.
    hooks: [],
    mountOptions: KNOWN_MOUNT_OPTIONS,
    linux: {
      namespaces: NAMESPACES.filter((n) => n.type !== 'time').map((n) => n.type),
      capabilities: CAPABILITIES,
      cgroup: { v1: true, v2: true, systemd: false, systemdUser: false, rdma: false },
      seccomp: { enabled: true, actions: SECCOMP_ACTIONS, operators: SECCOMP_OPERATORS, archs: SECCOMP_ARCHITECTURES, knownFlags: flags, supportedFlags: flags },
      // Profiles are applied where the kernel enforces AppArmor, refused where it does not.
      apparmor: { enabled: apparmorEnabled() },
      selinux: { enabled: false },
      intelRdt: { enabled: false },
      mountExtensions: { idmap: { enabled: false } },
    },
    annotations: {
      'io.github.seccomp.libseccomp.version': native().seccompVersion(),
      'org.tsrun.version': require('../../package.json').version,
    },
  };
}
