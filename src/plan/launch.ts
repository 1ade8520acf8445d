// The parent's side of the handshake (DESIGN section 2), numbered as the
// child's is: 1 clone, 2 maps and placement, 3 go, 4 ready, 5 start/exec.
import fs = require('node:fs');
import type * as Net from 'node:net';
import util = require('node:util');
import { EXIT_CANNOT_INVOKE, EXIT_NOT_FOUND, TsrunError, errnoName } from '../errors';
import { EXEC_HELPER_PATH, native, type ExitStatus } from '../native';
import { cloneFlagNames } from '../ns/namespaces';
import { describeClone, type Plan } from './compile';
import { MESSAGE_SIZE, Msg, Op, Reply, STEP_CLONE, STEP_MONITOR, STEP_SECCOMP } from './ops';

export interface LaunchHooks {
  /** Handshake 2: put the container process in its cgroup before it goes on. */
  place?(pid: number): void | Promise<void>;
  /** Receives --trace lines. */
  trace?(line: string): void;
}

interface Message {
  kind: number;
  step: number;
  err: number;
  value: number;
}

/** Fixed-size records over the sync socket, read without blocking Node. */
class SyncChannel {
  private readonly socket: Net.Socket;
  private buffered = Buffer.alloc(0);
  private queue: Message[] = [];
  private waiters: ((m: Message | null) => void)[] = [];
  private ended = false;

  constructor(fd: number) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const net = require('node:net') as typeof Net;
    this.socket = new net.Socket({ fd, readable: true, writable: true });
    this.socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      while (this.buffered.length >= MESSAGE_SIZE) {
        const b = this.buffered;
        this.push({ kind: b.readInt32LE(0), step: b.readInt32LE(4), err: b.readInt32LE(8), value: b.readInt32LE(12) });
        this.buffered = b.subarray(MESSAGE_SIZE);
      }
    });
    const end = () => {
      this.ended = true;
      for (const w of this.waiters.splice(0)) w(null);
    };
    this.socket.on('end', end);
    this.socket.on('close', end);
    // A child that exits leaves ECONNRESET at worst: that is an end too.
    this.socket.on('error', end);
  }

  private push(m: Message) {
    const w = this.waiters.shift();
    if (w) w(m);
    else this.queue.push(m);
  }

  /** The next message, or null at EOF (the child exec'd or exited). */
  next(): Promise<Message | null> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  send(kind: number) {
    const b = Buffer.alloc(MESSAGE_SIZE);
    b.writeInt32LE(kind, 0);
    this.socket.write(b);
  }

  close() {
    this.socket.destroy();
  }
}

const systemErrors = util.getSystemErrorMap();

function describeErrno(err: number): string {
  const entry = systemErrors.get(-err);
  return entry ? `${entry[0]} (${entry[1]})` : errnoName(err);
}

/** The error a failed step becomes: the step, what it did, and errno. */
export function stepError(plan: Plan, index: number, err: number): TsrunError {
  if (index === STEP_MONITOR) return new TsrunError(`start the monitor ${plan.monitor?.path}: ${describeErrno(err)}`);
  if (index === STEP_SECCOMP) {
    const exec = plan.steps.find((x) => x.op === Op.EXEC);
    return new TsrunError(`load the seccomp filter (${(exec?.bytes?.length ?? 0) / 8} instructions) before execve ${JSON.stringify(exec?.argv ?? [])}: ${describeErrno(err)}`);
  }
  if (index === STEP_CLONE) return new TsrunError(`clone(${cloneFlagNames(plan.cloneFlags)}) of the container by its monitor: ${describeErrno(err)}`);
  const s = plan.steps[index];
  if (!s) return new TsrunError(`container setup failed at unknown step ${index}: ${describeErrno(err)}`);
  if (s.op === Op.LOOKUP_EXEC || s.op === Op.EXEC) {
    const cmd = s.op === Op.EXEC ? s.argv![0] : s.s![0]!;
    const code = err === errnoNumberOf('ENOENT') ? EXIT_NOT_FOUND : EXIT_CANNOT_INVOKE;
    const where = s.op === Op.LOOKUP_EXEC && !cmd.includes('/') ? ` in PATH=${s.s![1]}` : '';
    return new TsrunError(`step ${index + 1} (${s.title}): cannot run "${cmd}"${where}: ${describeErrno(err)}`, code);
  }
  return new TsrunError(`step ${index + 1} (${s.title}): ${describeErrno(err)}`);
}

function errnoNumberOf(name: string): number {
  for (const [num, [n]] of systemErrors) if (n === name) return -num;
  return -1;
}

function traceStep(plan: Plan, hooks: LaunchHooks, index: number) {
  const s = plan.steps[index];
  if (s && hooks.trace) hooks.trace(`[${String(index + 1).padStart(2)}/${plan.steps.length}] ${s.title}\n        ${s.why}`);
}

/** A container process that has reported ready and waits to exec. */
export class LaunchedProcess {
  private exitPromise?: Promise<ExitStatus | null>;

  constructor(
    readonly plan: Plan,
    readonly pid: number,
    readonly pidfd: number,
    /** The monitor holding the container (0: the runtime is its parent). */
    readonly monitorPid: number,
    private readonly channel: SyncChannel,
    private readonly hooks: LaunchHooks,
  ) {}

  /** Resolves when the process exits: its status if it is our child (no monitor), else null. */
  exited(): Promise<ExitStatus | null> {
    this.exitPromise ??= new Promise((resolve) => native().watchPidfd(this.pidfd, resolve));
    return this.exitPromise;
  }

  signal(sig: number) {
    native().pidfdSendSignal(this.pidfd, sig);
  }

  /** Handshake 5 over the socket: start, then EOF means execve succeeded. */
  async start(): Promise<void> {
    this.channel.send(Reply.START);
    await this.awaitExec();
  }

  /** Waits for EOF (exec done) after a start that came through the exec fifo. */
  async awaitExec(): Promise<void> {
    for (;;) {
      const m = await this.channel.next();
      if (m === null) break;
      if (m.kind === Msg.STEP) traceStep(this.plan, this.hooks, m.step);
      else if (m.kind === Msg.ERROR) {
        this.channel.close();
        throw stepError(this.plan, m.step, m.err);
      }
    }
    this.channel.close();
  }

  /** Lets go of the socket and pidfd; the process runs on without us. */
  detach() {
    this.channel.close();
    fs.closeSync(this.pidfd);
  }

  closePidfd() {
    fs.closeSync(this.pidfd);
  }
}

/**
 * Clones the plan's child and drives it to "ready". On any failure the child
 * is killed and reaped before the error is thrown: nothing is left behind.
 */
export async function launch(plan: Plan, hooks: LaunchHooks = {}): Promise<LaunchedProcess> {
  const n = native();
  if (hooks.trace) {
    hooks.trace(`[ 0/${plan.steps.length}] clone(${cloneFlagNames(plan.cloneFlags)})${plan.twoStage ? ': a first process joins namespaces by path, then forks the container' : ''}`);
    for (const line of describeClone(plan)) hooks.trace(`        ${line}`);
  }
  const { pid: firstPid, sock } = n.spawn({ cloneFlags: plan.cloneFlags, trace: plan.trace, steps: plan.steps, monitor: plan.monitor, execHelper: EXEC_HELPER_PATH });
  const channel = new SyncChannel(sock);
  // With a monitor, the first child only forks the monitor and exits; the
  // monitor clones the container and reports both pids.
  const viaMonitor = !!plan.monitor;
  let containerPid = plan.twoStage || viaMonitor ? 0 : firstPid;
  let monitorPid = 0;
  let monitorPidfd = -1;
  let pidfd = -1;
  const reaped = new Set<number>();
  const reapQuietly = (pid: number) => {
    try {
      n.reap(pid);
    } catch {
      /* already reaped */
    }
  };
  try {
    if (!plan.twoStage && !viaMonitor && plan.newUserNamespace) writeIdMaps(plan, firstPid, hooks);
    while (containerPid === 0 || (viaMonitor && monitorPid === 0)) {
      const m = await channel.next();
      if (m === null) throw new TsrunError(`container setup failed: the ${viaMonitor ? 'monitor' : 'first process'} exited before forking the container`);
      if (m.kind === Msg.STEP) traceStep(plan, hooks, m.step);
      else if (m.kind === Msg.ERROR) throw stepError(plan, m.step, m.err);
      else if (m.kind === Msg.USERNS) {
        writeIdMaps(plan, m.value, hooks);
        channel.send(Reply.GO);
      } else if (m.kind === Msg.MONITOR) {
        monitorPid = m.value;
        monitorPidfd = n.pidfdOpen(monitorPid);
        hooks.trace?.(`        monitor: pid ${monitorPid} holds the container (its parent) and outlives this command`);
        reapQuietly(firstPid);
        reaped.add(firstPid);
      } else if (m.kind === Msg.PID) {
        containerPid = m.value;
        if (viaMonitor) {
          if (!plan.twoStage && plan.newUserNamespace) writeIdMaps(plan, containerPid, hooks);
        } else {
          reapQuietly(firstPid);
          reaped.add(firstPid);
        }
      }
    }
    pidfd = n.pidfdOpen(containerPid);
    if (hooks.place) await hooks.place(containerPid);
    hooks.trace?.(`        handshake: runtime releases pid ${containerPid}`);
    channel.send(Reply.GO);
    for (;;) {
      const m = await channel.next();
      if (m === null) throw new TsrunError('container setup failed: the container process exited before it was ready');
      if (m.kind === Msg.STEP) traceStep(plan, hooks, m.step);
      else if (m.kind === Msg.ERROR) throw stepError(plan, m.step, m.err);
      else if (m.kind === Msg.READY) break;
    }
  } catch (e) {
    channel.close();
    if (viaMonitor) {
      // Not our children: signalled through pidfds, so never a reused pid; the monitor reaps the container.
      if (pidfd < 0 && containerPid > 0) {
        try {
          pidfd = n.pidfdOpen(containerPid);
        } catch {
          /* already gone */
        }
      }
      for (const fd of [pidfd, monitorPidfd]) {
        if (fd < 0) continue;
        try {
          n.pidfdSendSignal(fd, 9);
        } catch {
          /* already gone */
        }
      }
    }
    // Each child once; never a pid already reaped, which may belong to someone else by now.
    for (const pid of new Set(viaMonitor ? [firstPid] : [firstPid, containerPid])) {
      if (pid <= 0 || reaped.has(pid)) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      reapQuietly(pid);
    }
    if (pidfd >= 0) fs.closeSync(pidfd);
    if (monitorPidfd >= 0) fs.closeSync(monitorPidfd);
    throw e;
  }
  if (monitorPidfd >= 0) fs.closeSync(monitorPidfd);
  return new LaunchedProcess(plan, containerPid, pidfd, monitorPid, channel, hooks);
}

function writeIdMaps(plan: Plan, pid: number, hooks: LaunchHooks) {
  hooks.trace?.(`        handshake: runtime writes /proc/${pid}/uid_map and gid_map (user_namespaces(7))`);
  for (const [file, map] of [
    ['uid_map', plan.uidMap],
    ['gid_map', plan.gidMap],
  ] as const) {
    try {
      fs.writeFileSync(`/proc/${pid}/${file}`, map);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new TsrunError(`write /proc/${pid}/${file} (${map.trim().replace(/\n/g, '; ')}): ${err.code ?? err.message}`);
    }
  }
}
