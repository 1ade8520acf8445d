// Linux capability names and numbers (capabilities(7)).
import fs = require('node:fs');

export const CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

/** The number of a capability name, or -1 if it is not one. */
export function capabilityNumber(name: string): number {
  return CAPABILITIES.indexOf(name.toUpperCase());
}

/** The highest capability the running kernel knows. */
export function hostLastCapability(): number {
  try {
    return Number(fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim());
  } catch {
    return CAPABILITIES.length - 1;
  }
}

/**
 * A capability set as a bit mask. Capabilities newer than the kernel are
 * left out (as runc does), since the kernel would refuse the whole set.
 */
export function capabilityMask(names: readonly string[] | undefined, lastCap: number): number {
  // A set: a name given twice (in any case) is one capability.
  const bits = new Set((names ?? []).map(capabilityNumber).filter((n) => n >= 0 && n <= lastCap));
  let mask = 0;
  for (const n of bits) mask += 2 ** n;
  return mask;
}

/** Decodes a CapEff-style hex mask from /proc/PID/status into names. */
export function capabilityNames(hexMask: string): string[] {
  const mask = BigInt('0x' + hexMask);
  return CAPABILITIES.filter((_, i) => (mask >> BigInt(i)) & 1n);
}

/** The capabilities this process holds (its permitted set): all that it can give a container. */
export function runtimeCapabilities(): string[] {
  try {
    const m = /^CapPrm:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return capabilityNames(m[1]);
  } catch {
    /* no procfs: assume every capability the kernel has */
  }
  return CAPABILITIES.slice(0, hostLastCapability() + 1);
}
