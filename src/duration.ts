// Go's duration syntax (Docker's flags and Dockerfile options): 30s, 1m30s, 500ms.
import { TsrunError } from './errors';

const UNITS: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** Nanoseconds; `what` names the flag or option in the error. */
export function durationNs(text: string, what: string): number {
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(text)) throw new TsrunError(`${what} ${text}: not a duration (e.g. 30s, 1m30s, 500ms)`);
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(m[1]) * UNITS[m[2]];
  return Math.round(total);
}

/** A duration for people: 1.5s, 30s, 2m0s. */
export function formatNs(ns: number): string {
  const s = ns / 1e9;
  if (s < 60) return `${Number(s.toFixed(3))}s`;
  return `${Math.floor(s / 60)}m${Number((s % 60).toFixed(3))}s`;
}
