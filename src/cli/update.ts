import type { Command } from 'commander';
import fs = require('node:fs');
import { resourcesFromFlags, type ResourceFlags, type Resources } from '../cgroup/resources';
import { updateContainer } from '../container/resources';
import { TsrunError } from '../errors';
import { globals, resolveRef, resourceOptions } from './common';

/** The most a resources document may hold (containerd's are a few hundred bytes). */
const MAX_RESOURCES_BYTES = 1 << 20;

/** What `update` changes; anything else a resources document names is refused, not skipped. */
const UPDATABLE: Record<string, readonly string[]> = {
  memory: ['limit', 'reservation', 'swap', 'swappiness', 'disableOOMKiller'],
  cpu: ['shares', 'quota', 'period', 'realtimeRuntime', 'realtimePeriod', 'cpus', 'mems', 'idle'],
  pids: ['limit'],
  blockIO: ['weight', 'leafWeight', 'weightDevice', 'throttleReadBpsDevice', 'throttleWriteBpsDevice', 'throttleReadIOPSDevice', 'throttleWriteIOPSDevice'],
  hugepageLimits: [],
  unified: [],
};

/**
 * runc's `update --resources FILE|-`: a runtime-spec linux.resources object
 * (containerd's shim passes it on stdin). Devices and the other fields a
 * running container's limits cannot take are refused with their names.
 */
export function readResources(file: string): Resources {
  let text: string;
  try {
    const buf = fs.readFileSync(file === '-' ? 0 : file);
    if (buf.length > MAX_RESOURCES_BYTES) throw new TsrunError(`update --resources ${file}: more than ${MAX_RESOURCES_BYTES} bytes`);
    text = buf.toString('utf8');
  } catch (e) {
    if (e instanceof TsrunError) throw e;
    throw new TsrunError(`update --resources ${file}: cannot read it: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new TsrunError(`update --resources ${file}: not valid JSON: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new TsrunError(`update --resources ${file}: must be a JSON object (runtime-spec linux.resources)`);
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (value === null || value === undefined) continue;
    const fields = UPDATABLE[key];
    if (!fields) throw new TsrunError(`update --resources ${file}: ${key} cannot be changed on a running container by tsrun`);
    if (!fields.length) continue;
    if (typeof value !== 'object' || Array.isArray(value)) throw new TsrunError(`update --resources ${file}: ${key} must be an object`);
    for (const [f, v] of Object.entries(value as Record<string, unknown>)) {
      if (v !== null && v !== undefined && !fields.includes(f)) throw new TsrunError(`update --resources ${file}: ${key}.${f} cannot be changed on a running container by tsrun`);
    }
  }
  return raw as Resources;
}

export function register(program: Command) {
  resourceOptions(program.command('update').description('change the resource limits of a running container, as `runc update`').argument('<id>', 'container id'))
    .option('-r, --resources <file>', 'a runtime-spec linux.resources JSON file, or - for stdin (flags given too override it)')
    .action((id: string, flags: ResourceFlags & { resources?: string }, cmd: Command) => {
      const resources = resourcesFromFlags(flags, flags.resources ? readResources(flags.resources) : {});
      if (!Object.keys(resources).length) throw new TsrunError('update: give at least one limit, such as --memory 256m or --pids-limit 100, or --resources FILE');
      updateContainer(resolveRef(cmd, id), resources, globals(cmd).root);
    });
}
