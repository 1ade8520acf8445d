// User namespace id maps: a container's ids as the host owns them, and back.
import type { IdMapping } from './types';

export type IdMap = IdMapping[] | undefined;

/** The id an unmapped id shows as (the kernel's overflow id). */
export const OVERFLOW_ID = 65534;

/** A container id as the host sees it: through the map if there is one, the overflow id if it maps nowhere. */
export const toHostId = (map: IdMap, id: number) => (map?.length ? (hostIdOf(map, id) ?? OVERFLOW_ID) : id);

/** A host id as the container sees it, the same way back. */
export function toContainerId(map: IdMap, id: number): number {
  if (!map?.length) return id;
  const m = map.find((e) => id >= e.hostID && id < e.hostID + e.size);
  return m ? m.containerID + (id - m.hostID) : OVERFLOW_ID;
}

/** The host id that a container id maps to, or undefined if it is not mapped. */
export function hostIdOf(maps: IdMap, id: number): number | undefined {
  const m = (maps ?? []).find((e) => id >= e.containerID && id < e.containerID + e.size);
  return m ? m.hostID + (id - m.containerID) : undefined;
}
