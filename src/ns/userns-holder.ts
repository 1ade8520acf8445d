// A user namespace made ahead of its container, held open by a process of
// its own. The container's idmapped layers need a user namespace with its
// mapping before the container exists (mount_setattr takes one as an fd),
// and the container then joins that same namespace by path: one mapping,
// one namespace.
import { launch } from '../plan/launch';
import { Op } from '../plan/ops';
import { step } from '../plan/step';
import type { Plan } from '../plan/compile';
import { CLONE_NEWUSER } from './namespaces';

export interface HeldUserNamespace {
  /** /proc/PID/ns/user of the holder. */
  path: string;
  /** Ends the holder; the namespace lives on while the container is in it. */
  release(): Promise<void>;
}

export async function holdUserNamespace(uidMap: string, gidMap: string): Promise<HeldUserNamespace> {
  const plan: Plan = {
    cloneFlags: CLONE_NEWUSER,
    twoStage: false,
    newUserNamespace: true,
    uidMap,
    gidMap,
    trace: false,
    steps: [
      step(Op.PDEATHSIG, 'prctl(PR_SET_PDEATHSIG, SIGKILL)', 'the holder ends with the runtime', { n: [9] }),
      step(Op.SYNC_WAIT, 'wait for the maps', 'the runtime writes uid_map and gid_map first'),
      step(Op.READY, 'ready', 'the namespace exists, with its mapping'),
      step(Op.WAIT_START, 'hold it', 'until the runtime lets go of the socket', { n: [-1] }),
    ],
  };
  const holder = await launch(plan);
  const exited = holder.exited();
  return {
    path: `/proc/${holder.pid}/ns/user`,
    async release() {
      try {
        holder.signal(9);
      } catch {
        /* already gone */
      }
      await exited;
      holder.detach();
    },
  };
}
