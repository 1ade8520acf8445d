// Starting an image container under its monitor (`run -d`, `start`,
// `restart`, and a restart policy): the runtime's create with a monitor,
// then start through the exec fifo, then this command may exit.
import fs = require('node:fs');
import { CLI_PATH } from '../native';
import { createContainer, readBundleSpec } from './create';
import { deleteContainer } from './delete';
import type { ContainerInfo, Registry } from './registry';
import { startContainer } from './start';
import { isAlive, processStartTime, type ContainerRecord } from './store';
import { TsrunError } from '../errors';
import { connectNetworks, disconnectNetworks } from '../network/attach';
import { mountVolumes } from '../volume/mounts';
import { healthTimes } from './health';

export interface DetachedStartOptions {
  trace?: (line: string) => void;
}

/** A tsrun command line on this registry's root and store, for the monitor to run. */
function tsrunCommand(registry: Registry, ...verb: string[]): string[] {
  return [process.execPath, CLI_PATH, '--root', registry.runtime.root, '--storage', registry.images.root, ...verb];
}

/** The command the monitor runs once the container has exited: `tsrun container-exited ID`. */
export function exitCommand(registry: Registry, id: string): string[] {
  return tsrunCommand(registry, 'container-exited', id);
}

/** The file by which a stop tells the monitor that it cleans up after the exit itself (see withExitClaim). */
export const EXIT_CLAIM = 'exit-claim';

/**
 * While fn runs, the container's monitor leaves what follows an exit to
 * this process (it starts no `container-exited`, a Node process of its
 * own): for a stop or rm that waits for the exit and cleans up after it.
 * Should this process die first, the monitor does it as before.
 */
export async function withExitClaim<T>(registry: Registry, id: string, fn: () => Promise<T>): Promise<T> {
  const file = registry.file(id, EXIT_CLAIM);
  fs.writeFileSync(file, `${process.pid} ${processStartTime(process.pid)}\n`, { mode: 0o600 });
  try {
    return await fn();
  } finally {
    fs.rmSync(file, { force: true });
  }
}

/** Call with the container's lock held. */
export async function startDetached(registry: Registry, info: ContainerInfo, opts: DetachedStartOptions = {}): Promise<void> {
  const id = info.id;
  // What is left of an earlier run (a stopped runtime container) goes first.
  if (registry.runtime.exists(id)) await deleteContainer(id, { root: registry.runtime.root, force: true });
  fs.rmSync(registry.file(id, 'exit.json'), { force: true });
  fs.rmSync(registry.file(id, 'health.json'), { force: true });
  fs.rmSync(registry.file(id, EXIT_CLAIM), { force: true });
  const bundle = registry.containerDir(id);
  await mountVolumes(registry, info);
  await connectNetworks(registry, info);
  const created = await createContainer({
    id,
    bundle,
    spec: readBundleSpec(bundle),
    root: registry.runtime.root,
    trace: opts.trace,
    overlay: info.overlay,
    // A detached container has no terminal or pipe of ours to read from;
    // with -i its stdin stays open (the monitor holds a pipe), as Docker's does.
    stdinNull: !info.config.tty && !info.config.openStdin,
    monitor: {
      exitFile: registry.file(id, 'exit.json'),
      logFile: registry.file(id, 'container.log'),
      logMaxBytes: info.hostConfig.logMaxBytes,
      terminal: info.config.tty,
      holdStdin: info.config.openStdin && !info.config.tty,
      exitCommand: exitCommand(registry, id),
      claimFile: registry.file(id, EXIT_CLAIM),
      health: info.config.healthcheck ? { command: tsrunCommand(registry, 'healthcheck', 'run', id), ...healthTimes(info.config.healthcheck) } : undefined,
    },
  }).catch(async (e) => {
    await disconnectNetworks(registry, id).catch(() => {});
    throw e;
  });
  // Recorded before it can run, so the monitor's clean-up finds this run's pid.
  info.state = { ...info.state, pid: created.record.pid, startedAt: new Date().toISOString(), finishedAt: '', error: '', manuallyStopped: false, restarting: false, oomKilled: false };
  registry.write(info);
  try {
    startContainer(id, registry.runtime.root);
    await created.process.awaitExec();
  } catch (e) {
    // The command could not be exec'd: nothing of this run stays running or mounted.
    const rt = registry.runtimeRecord(id);
    await deleteContainer(id, { root: registry.runtime.root, force: true });
    if (rt) await monitorRecorded(registry, id, rt);
    await disconnectNetworks(registry, id).catch(() => {});
    info.state = { ...info.state, finishedAt: new Date().toISOString(), exitCode: e instanceof TsrunError ? e.exitCode : 125, error: (e as Error).message };
    registry.write(info);
    throw e;
  } finally {
    created.process.detach();
  }
}

/** Waits (at most 2 s) for the monitor of a run that just ended to write its exit.json, so the directory is left alone after. */
export async function monitorRecorded(registry: Registry, id: string, rt: ContainerRecord) {
  if (!rt.monitorPid || !isAlive(rt.monitorPid, rt.monitorStartTime ?? '')) return;
  for (let i = 0; i < 100 && registry.readExit(id)?.pid !== rt.pid; i++) await new Promise((r) => setTimeout(r, 20));
}
