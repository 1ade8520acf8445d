// mount(8)-style option words into mount(2) flags and filesystem data.

export const MS = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  SYNCHRONOUS: 0x10,
  REMOUNT: 0x20,
  MANDLOCK: 0x40,
  DIRSYNC: 0x80,
  NOATIME: 0x400,
  NODIRATIME: 0x800,
  BIND: 0x1000,
  REC: 0x4000,
  UNBINDABLE: 0x20000,
  PRIVATE: 0x40000,
  SLAVE: 0x80000,
  SHARED: 0x100000,
  RELATIME: 0x200000,
  STRICTATIME: 0x1000000,
} as const;

const SET: Record<string, number> = {
  ro: MS.RDONLY,
  nosuid: MS.NOSUID,
  nodev: MS.NODEV,
  noexec: MS.NOEXEC,
  sync: MS.SYNCHRONOUS,
  remount: MS.REMOUNT,
  mand: MS.MANDLOCK,
  dirsync: MS.DIRSYNC,
  noatime: MS.NOATIME,
  nodiratime: MS.NODIRATIME,
  bind: MS.BIND,
  rbind: MS.BIND | MS.REC,
  relatime: MS.RELATIME,
  strictatime: MS.STRICTATIME,
};

const CLEAR: Record<string, number> = {
  rw: MS.RDONLY,
  suid: MS.NOSUID,
  dev: MS.NODEV,
  exec: MS.NOEXEC,
  async: MS.SYNCHRONOUS,
  nomand: MS.MANDLOCK,
  atime: MS.NOATIME,
  diratime: MS.NODIRATIME,
  norelatime: MS.RELATIME,
  nostrictatime: MS.STRICTATIME,
};

const PROPAGATION: Record<string, number> = {
  private: MS.PRIVATE,
  rprivate: MS.PRIVATE | MS.REC,
  shared: MS.SHARED,
  rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE,
  rslave: MS.SLAVE | MS.REC,
  unbindable: MS.UNBINDABLE,
  runbindable: MS.UNBINDABLE | MS.REC,
};

/** Options that only steer the runtime and never reach mount(2). */
const IGNORED = new Set(['defaults']);

/** tmpcopyup (runc's and crun's): a tmpfs starts with a copy of the directory it covers. */
const COPY_UP: Record<string, boolean> = { tmpcopyup: true, notmpcopyup: false };

/** Every option name tsrun reads itself (others go to mount(2) as the filesystem's data). */
export const KNOWN_MOUNT_OPTIONS: readonly string[] = [...Object.keys(SET), ...Object.keys(CLEAR), ...Object.keys(PROPAGATION), ...Object.keys(COPY_UP), ...IGNORED].sort();

export interface ParsedOptions {
  flags: number;
  propagation: number;
  data: string;
  /** tmpcopyup was asked for. */
  copyUp?: boolean;
}

export function parseMountOptions(options: readonly string[] = []): ParsedOptions {
  let flags = 0;
  let propagation = 0;
  let copyUp = false;
  const data: string[] = [];
  for (const opt of options) {
    if (SET[opt] !== undefined) flags |= SET[opt];
    else if (CLEAR[opt] !== undefined) flags &= ~CLEAR[opt];
    else if (PROPAGATION[opt] !== undefined) propagation = PROPAGATION[opt];
    else if (COPY_UP[opt] !== undefined) copyUp = COPY_UP[opt];
    else if (!IGNORED.has(opt)) data.push(opt);
  }
  return { flags, propagation, data: data.join(','), ...(copyUp ? { copyUp } : {}) };
}

export function propagationFlags(name: string): number {
  return PROPAGATION[name] ?? 0;
}

/** The flags a bind mount must be remounted with to take effect. */
export const BIND_REMOUNT_FLAGS = MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC | MS.NOATIME | MS.NODIRATIME | MS.RELATIME | MS.STRICTATIME;
