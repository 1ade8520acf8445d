// state and list: what the store says, with each status checked against
// the live process.
import { ociState, Store, statusOf, type OciState } from './store';

export function containerState(id: string, root?: string): OciState {
  const store = new Store(root);
  return ociState(store, store.read(id));
}

export interface ListEntry extends OciState {
  created: string;
  owner: string;
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
