// create: bundle in, a container process waiting to exec out (runtime-spec
// "create"). Nothing is left behind when it fails.
import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
import { cgroupPathFor, DEFAULT_DEVICE_RULES, hostHierarchies, killCgroups, placeInCgroups, planWrites, removeCgroups, type CgroupPlacement, type DeviceRule } from '../cgroup/placement';
import { ConfigError, TsrunError } from '../errors';
import { compilePlan, type HostFacts, type OverlayMount } from '../plan/compile';
import { readHostFacts } from '../plan/host-facts';
import { launch, type LaunchedProcess } from '../plan/launch';
import { native } from '../native';
import { parseSpec } from '../spec/validate';
import type { Spec } from '../spec/types';
import { OCI_VERSION, processStartTime, Store, type ContainerRecord } from './store';

export interface CreateOptions {
  id: string;
  bundle: string;
  /** State root (default /run/tsrun). */
  root?: string;
  /** Write the container's pid here once it is created. */
  pidFile?: string;
  /** Receives a line per plan step as it runs. */
  trace?: (line: string) => void;
  /**
   * The caller starts, waits for and deletes the container itself (`run`):
   * start goes over the sync socket instead of the exec fifo, and the
   * container is killed if the caller dies.
   */
  foreground?: boolean;
  /** Use this config instead of reading bundle/config.json. */
  spec?: Spec;
  host?: HostFacts;
  /** An overlay of image layers to mount on the rootfs, inside the container's mount namespace. */
  overlay?: OverlayMount;
  /** Give the container /dev/null as stdin. */
  stdinNull?: boolean;
}

export interface Created {
  record: ContainerRecord;
  store: Store;
  /** The live handle; for a detached create the caller may simply drop it. */
  process: LaunchedProcess;
}

/** The devices cgroup rules of the config, after the default ones. */
function deviceRules(spec: Spec): DeviceRule[] {
  const given = (spec.linux?.resources?.devices ?? []) as DeviceRule[];
  return [...DEFAULT_DEVICE_RULES, ...given.filter((r) => r.allow || r.type !== undefined), ...(spec.linux?.devices ?? []).map((d) => ({ allow: true, type: d.type === 'u' ? 'c' : d.type, major: d.major, minor: d.minor, access: 'rwm' }))];
}

export function readBundleSpec(bundle: string): Spec {
  const file = path.join(bundle, 'config.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TsrunError(`read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseSpec(text, file);
}

export async function createContainer(opts: CreateOptions): Promise<Created> {
  const store = new Store(opts.root);
  store.dir(opts.id); // validates the id before anything is made
  const bundle = path.resolve(opts.bundle);
  const spec = opts.spec ?? readBundleSpec(bundle);
  let rootfs: string;
  try {
    rootfs = fs.realpathSync(path.resolve(bundle, spec.root!.path));
  } catch (e) {
    throw new ConfigError('root.path', `${path.resolve(bundle, spec.root!.path)}: ${(e as NodeJS.ErrnoException).code}`);
  }
  if (!fs.statSync(rootfs).isDirectory()) throw new ConfigError('root.path', `${rootfs}: ENOTDIR (not a directory)`);

  // Resource settings this host cannot apply fail now, before anything exists.
  planWrites(spec.linux?.resources ?? {}, hostHierarchies());
  const dir = store.claim(opts.id);
  const placement: CgroupPlacement = { created: [], dirs: [] };
  let fifoFd = -1;
  let launched: LaunchedProcess | undefined;
  try {
    const record: ContainerRecord = {
      ociVersion: OCI_VERSION,
      id: opts.id,
      pid: 0,
      pidStartTime: '',
      creatorPid: process.pid,
      creatorStartTime: processStartTime(process.pid) ?? '',
      bundle,
      rootfs,
      created: new Date().toISOString(),
      annotations: spec.annotations ?? {},
      owner: os.userInfo().username,
    };
    store.write(record);
    if (!opts.foreground) {
      native().mkfifo(store.fifo(opts.id), 0o600);
      // O_RDWR: the open does not block, and the child (which inherits it)
      // blocks in read until `start` writes.
      fifoFd = fs.openSync(store.fifo(opts.id), fs.constants.O_RDWR);
    }
    const plan = compilePlan(spec, opts.host ?? readHostFacts(), {
      rootfs,
      bundle,
      execFifoFd: fifoFd >= 0 ? fifoFd : undefined,
      parentDeathSignal: opts.foreground ? 9 : undefined,
      trace: !!opts.trace,
      overlay: opts.overlay,
      stdinNull: opts.stdinNull,
    });
    const cgPath = cgroupPathFor(opts.id, spec.linux?.cgroupsPath);
    record.cgroupPath = cgPath;
    store.write(record);
    launched = await launch(plan, {
      trace: opts.trace,
      place: (pid) => {
        opts.trace?.(`        handshake: runtime places pid ${pid} in cgroup ${cgPath}`);
        record.cgroup = placement;
        store.write(record);
        placeInCgroups(pid, cgPath, placement, { devices: deviceRules(spec), resources: spec.linux?.resources });
        store.write(record);
        if (spec.process?.oomScoreAdj !== undefined) {
          // From outside: inside a user namespace a lower score would be refused.
          opts.trace?.(`        handshake: runtime writes ${spec.process.oomScoreAdj} to /proc/${pid}/oom_score_adj`);
          fs.writeFileSync(`/proc/${pid}/oom_score_adj`, String(spec.process.oomScoreAdj));
        }
      },
    });
    record.pid = launched.pid;
    record.pidStartTime = processStartTime(launched.pid) ?? '';
    store.write(record);
    if (opts.pidFile) {
      const tmp = `${opts.pidFile}.tmp`;
      fs.writeFileSync(tmp, String(launched.pid));
      fs.renameSync(tmp, path.resolve(opts.pidFile));
    }
    return { record, store, process: launched };
  } catch (e) {
    if (launched) {
      try {
        process.kill(launched.pid, 'SIGKILL');
        native().reap(launched.pid);
      } catch {
        /* gone */
      }
    }
    try {
      await killCgroups(placement);
      removeCgroups(placement);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    throw e;
  } finally {
    if (fifoFd >= 0) fs.closeSync(fifoFd);
  }
}
