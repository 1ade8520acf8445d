// runc's global options that tsrun cannot carry out are refused, never ignored:
// a client that asked for systemd's cgroups or rootless handling must learn it
// did not get them.
import fs = require('node:fs');
import { TsrunError } from '../errors';

export function refuseUnsupportedGlobals(opts: { systemdCgroup?: boolean; rootless?: string }) {
  if (opts.systemdCgroup) {
    const why = fs.existsSync('/run/systemd/system') ? 'tsrun places cgroups through cgroupfs only (it has no systemd cgroup driver)' : 'no systemd runs on this host (no /run/systemd/system), and tsrun places cgroups through cgroupfs';
    throw new TsrunError(`--systemd-cgroup: ${why}; set SystemdCgroup = false in containerd's runc options, or cgroup_manager = "cgroupfs" for podman`);
  }
  const mode = opts.rootless;
  if (mode !== undefined) {
    if (mode !== 'true' && mode !== 'false' && mode !== 'auto') throw new TsrunError(`--rootless ${mode}: use true, false or auto`);
    if (mode === 'true' || process.geteuid?.() !== 0) throw new TsrunError(`--rootless ${mode}: tsrun runs containers as root only (euid ${process.geteuid?.()})`);
  }
}
