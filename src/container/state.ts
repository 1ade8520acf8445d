// state and list: what the store says, with each status checked against
// the live process.
import { ociState, Store, statusOf, type OciState } from './store';

export interface ListEntry extends OciState {
  created: string;
  owner: string;
}

/** The runtime-spec state, with what runc's `state` adds (rootfs, created, owner). */
export function containerState(id: string, root?: string): OciState & { rootfs: string; created: string; owner: string } {
  const store = new Store(root);
  const rec = store.read(id);
  return { ...ociState(store, rec), rootfs: rec.rootfs, created: rec.created, owner: rec.owner };
}

export function listContainers(root?: string): ListEntry[] {
  const store = new Store(root);
  const out: ListEntry[] = [];
  for (const id of store.ids()) {
    try {
      const rec = store.read(id);
      out.push({ ...ociState(store, rec), status: statusOf(store, rec), created: rec.created, owner: rec.owner });
    } catch {
      /* a directory without a record yet: not a container to list */
    }
  }
  return out;
}
