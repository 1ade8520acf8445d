// Running a CNI network configuration list, as libcni does: ADD runs each
// plugin in order and hands each the result of the one before
// (prevResult); DEL runs them in reverse with the result ADD cached. The
// plugins are the field's own (Debian's containernetworking-plugins); this
// file only executes them by the CNI spec's protocol: the command in
// CNI_COMMAND, the config on stdin, a result or an error object on stdout.
import { spawn } from 'node:child_process';
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';

export const CNI_VERSION = '1.0.0';

/** Where plugins are looked for: --cni-path (or CNI_PATH) alone when given, else Debian's and the upstream default. */
export function pluginDirs(cniPath?: string): string[] {
  const given = (cniPath ?? process.env.CNI_PATH ?? '').split(':').filter(Boolean);
  return given.length ? given : ['/usr/lib/cni', '/opt/cni/bin'];
}

export interface PluginConf {
  type: string;
  [key: string]: unknown;
}

export interface ConfList {
  cniVersion: string;
  name: string;
  plugins: PluginConf[];
}

export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { interface?: number; address: string; gateway?: string }[];
  routes?: { dst: string; gw?: string }[];
  dns?: unknown;
}

export interface CniRuntime {
  containerId: string;
  /** The bound network namespace; "" on a DEL after it is gone (a reboot). */
  netns: string;
  ifname: string;
  /** Values for plugins that declare the capability: portMappings, mac, ips. */
  capabilityArgs?: Record<string, unknown>;
  cniPath?: string;
  /**
   * A locked file the plugin inherits (as fd 3): the lock lasts as long as
   * the plugin does, so an undo after tsrun was killed waits for a plugin
   * still at work rather than racing it.
   */
  holdFd?: number;
}

function findPlugin(type: string, dirs: string[]): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(type)) throw new TsrunError(`CNI plugin type "${type}" is not a plain file name`);
  for (const d of dirs) {
    const p = path.join(d, type);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  throw new TsrunError(`CNI plugin "${type}" not found in ${dirs.join(', ')} (install containernetworking-plugins, or give --cni-path)`);
}

/** One plugin's config as the spec says a runtime passes it: the list's name and version, runtimeConfig for its capabilities, prevResult. */
function pluginInput(list: ConfList, plugin: PluginConf, rt: CniRuntime, prev: CniResult | undefined): string {
  const conf: Record<string, unknown> = { ...plugin, cniVersion: list.cniVersion, name: list.name };
  delete conf.capabilities;
  const caps = (plugin.capabilities ?? {}) as Record<string, boolean>;
  const runtimeConfig = Object.fromEntries(Object.entries(rt.capabilityArgs ?? {}).filter(([k]) => caps[k]));
  if (Object.keys(runtimeConfig).length) conf.runtimeConfig = runtimeConfig;
  if (plugin.capabilities) conf.capabilities = plugin.capabilities;
  if (prev) conf.prevResult = prev;
  return JSON.stringify(conf);
}

/** How long a plugin may take (TSRUN_CNI_TIMEOUT seconds, default 60): one that hangs is killed, and the run fails saying so. */
function pluginTimeoutMs(): number {
  const v = Number(process.env.TSRUN_CNI_TIMEOUT ?? 60);
  return Number.isFinite(v) && v > 0 ? v * 1000 : 60_000;
}

function execPlugin(command: 'ADD' | 'DEL', list: ConfList, plugin: PluginConf, rt: CniRuntime, prev: CniResult | undefined, onStart?: () => void): Promise<string> {
  const dirs = pluginDirs(rt.cniPath);
  const file = findPlugin(plugin.type, dirs);
  onStart?.();
  const env = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: rt.containerId,
    CNI_NETNS: rt.netns,
    CNI_IFNAME: rt.ifname,
    CNI_PATH: dirs.join(':'),
  };
  return new Promise((resolve, reject) => {
    const child = spawn(file, [], { env, stdio: ['pipe', 'pipe', 'pipe', ...(rt.holdFd !== undefined ? [rt.holdFd] : [])] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e) => reject(new TsrunError(`CNI ${command} ${plugin.type} (network ${list.name}): run ${file}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)));
    const limit = pluginTimeoutMs();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, limit);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) return reject(new TsrunError(`CNI ${command} ${plugin.type} (network ${list.name}, container ${rt.containerId.slice(0, 12)}): ${file} did not answer within ${limit / 1000} s and was killed (TSRUN_CNI_TIMEOUT sets the limit)`));
      const stdout = Buffer.concat(out).toString('utf8');
      if (code === 0) return resolve(stdout);
      let msg = Buffer.concat(err).toString('utf8').trim() || `exit ${code ?? signal}`;
      try {
        // The spec's error object: {code, msg, details}.
        const e = JSON.parse(stdout) as { code?: number; msg?: string; details?: string };
        if (e.msg) msg = `${e.msg}${e.details ? ` (${e.details})` : ''} [CNI error ${e.code}]`;
      } catch {
        /* not JSON: stderr or the exit status says it */
      }
      // The plugins run iptables from PATH (go-iptables): say which package is missing.
      if (/"iptables": executable file not found/.test(msg)) msg += ' (install the Debian package iptables)';
      reject(new TsrunError(`CNI ${command} ${plugin.type} (network ${list.name}, container ${rt.containerId.slice(0, 12)}): ${msg}`));
    });
    child.stdin!.on('error', () => {
      /* a plugin that exits without reading: its status says why */
    });
    child.stdin!.end(pluginInput(list, plugin, rt, prev));
  });
}

/**
 * ADD through the whole list; the last plugin's result is the attachment's.
 * `started(n)` is told each time a plugin is about to run: what DEL must undo.
 */
export async function cniAdd(list: ConfList, rt: CniRuntime, started?: (n: number) => void, answered?: (r: CniResult) => void): Promise<CniResult> {
  let prev: CniResult | undefined;
  for (const [i, plugin] of list.plugins.entries()) {
    const out = await execPlugin('ADD', list, plugin, rt, prev, () => started?.(i + 1));
    try {
      prev = JSON.parse(out) as CniResult;
    } catch {
      throw new TsrunError(`CNI ADD ${plugin.type} (network ${list.name}): its result is not JSON: ${out.slice(0, 200)}`);
    }
    answered?.(prev);
  }
  return prev ?? { cniVersion: list.cniVersion };
}

/**
 * DEL through the list in reverse, with the cached result of ADD. Every
 * plugin runs even if one fails (what each made is its own to undo); the
 * first failure is reported after.
 */
export async function cniDel(list: ConfList, rt: CniRuntime, prev: CniResult | undefined, count = list.plugins.length): Promise<void> {
  let first: Error | undefined;
  // Only the plugins ADD ran: one it never reached made nothing (and may not even be installed).
  for (const plugin of list.plugins.slice(0, count).reverse()) {
    try {
      await execPlugin('DEL', list, plugin, rt, prev);
    } catch (e) {
      first ??= e as Error;
    }
  }
  if (first) throw first;
}
