// wait: blocks until a container has stopped for good (its restart policy
// done with it) and returns its exit code.
import { TsrunError } from '../errors';
import type { Registry } from './registry';

export async function waitContainer(registry: Registry, id: string, pollMs = 50): Promise<number> {
  let last: number | undefined;
  for (;;) {
    if (!registry.isManaged(id)) {
      // --rm removed it: the exit code seen last.
      if (last !== undefined) return last;
      throw new TsrunError(`no such container: ${id}`);
    }
    let info;
    try {
      info = registry.read(id);
    } catch (e) {
      if (last !== undefined) return last;
      throw e;
    }
    const live = registry.live(info);
    if (live.finishedAt) last = live.exitCode;
    // While the monitor lives (it becomes the clean-up, which may restart), the end is not final.
    const settled = (live.status === 'exited' || live.status === 'dead') && !info.state.restarting && !live.monitorPid;
    if (settled) return live.exitCode;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
