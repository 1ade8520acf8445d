// logs: what a detached container wrote, from the monitor's log (CRI
// format: "<RFC 3339 time> <stdout|stderr> <F|P> <text>", P for a piece of a
// longer line), with --tail, --since, -t and -f across a rotation.
import fs = require('node:fs');
import { TsrunError } from '../errors';
import type { Registry } from './registry';
import { isAlive } from './store';

export interface LogEntry {
  time: string;
  stream: 'stdout' | 'stderr';
  /** The text, with its newline when the line was complete. */
  text: string;
}

export interface LogOptions {
  /** Only the last N lines (-1 or undefined: all). */
  tail?: number;
  /** Only lines written at or after this time. */
  since?: Date;
  follow?: boolean;
  /** How often -f looks for more (ms). */
  pollMs?: number;
}

/** Turns CRI records into lines: P pieces join the record that completes them. */
export class LogParser {
  private pending: Record<string, { time: string; text: string } | undefined> = {};
  private rest = '';

  push(chunk: string, out: (e: LogEntry) => void) {
    const text = this.rest + chunk;
    const lines = text.split('\n');
    this.rest = lines.pop()!;
    for (const line of lines) this.record(line, out);
  }

  /** At the end of the log: what is pending is output without a newline. */
  end(out: (e: LogEntry) => void) {
    if (this.rest) this.record(this.rest, out);
    this.rest = '';
    for (const stream of ['stdout', 'stderr'] as const) {
      const p = this.pending[stream];
      if (p?.text) out({ time: p.time, stream, text: p.text });
      this.pending[stream] = undefined;
    }
  }

  private record(line: string, out: (e: LogEntry) => void) {
    const a = line.indexOf(' ');
    const b = line.indexOf(' ', a + 1);
    const c = line.indexOf(' ', b + 1);
    if (a < 0 || b < 0 || c < 0) return; // not a record (a torn write)
    const time = line.slice(0, a);
    const stream = line.slice(a + 1, b);
    if (stream !== 'stdout' && stream !== 'stderr') return;
    const full = line.slice(b + 1, c) === 'F';
    const piece = line.slice(c + 1);
    const p = this.pending[stream];
    const joined = { time: p?.time ?? time, text: (p?.text ?? '') + piece };
    if (full) {
      this.pending[stream] = undefined;
      out({ time: joined.time, stream, text: joined.text + '\n' });
    } else {
      this.pending[stream] = joined;
    }
  }
}

/** Docker's --since: an RFC 3339 time, a Unix time in seconds, or a duration back from now (10m, 1h30m, 45s). */
export function parseSince(v: string, now = Date.now()): Date {
  if (/^\d+(\.\d+)?$/.test(v)) return new Date(Number(v) * 1000);
  const dur = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$/.exec(v);
  if (dur && v) return new Date(now - ((Number(dur[1] ?? 0) * 60 + Number(dur[2] ?? 0)) * 60 + Number(dur[3] ?? 0)) * 1000);
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new TsrunError(`--since ${v}: use a time (2026-11-27T10:00:00Z), Unix seconds, or a duration (10m, 1h30m)`);
  return new Date(t);
}

function readFileIfAny(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** The log's lines so far, then (with follow) new ones until the container has stopped. */
export async function readLogs(registry: Registry, id: string, opts: LogOptions, out: (e: LogEntry) => void): Promise<void> {
  if (!registry.isManaged(id)) throw new TsrunError(`container ${id} has no log: only containers run from images (run -d) keep one`);
  const file = registry.file(id, 'container.log');
  const since = opts.since?.getTime();
  const keep = (e: LogEntry) => since === undefined || Date.parse(e.time) >= since;
  // The current file is opened first, so a rotation from here on is noticed.
  let fd = -1;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    /* nothing written yet */
  }
  const entries: LogEntry[] = [];
  const parser = new LogParser();
  parser.push(readFileIfAny(`${file}.1`), (e) => keep(e) && entries.push(e));
  // Pieces of a line split across the rotation join up: one parser for both files.
  let offset = 0;
  const readMore = (emit: (e: LogEntry) => void) => {
    if (fd < 0) return;
    const buf = Buffer.alloc(1 << 16);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, offset);
      if (n <= 0) break;
      offset += n;
      parser.push(buf.subarray(0, n).toString('utf8'), emit);
    }
  };
  readMore((e) => keep(e) && entries.push(e));
  if (!opts.follow) parser.end((e) => keep(e) && entries.push(e));
  const tail = opts.tail !== undefined && opts.tail >= 0 ? entries.slice(Math.max(0, entries.length - opts.tail)) : entries;
  for (const e of tail) out(e);
  if (!opts.follow) {
    if (fd >= 0) fs.closeSync(fd);
    return;
  }
  const emit = (e: LogEntry) => keep(e) && out(e);
  const stillWriting = () => {
    if (!registry.isManaged(id)) return false;
    const rt = registry.runtimeRecord(id);
    if (rt?.monitorPid && isAlive(rt.monitorPid, rt.monitorStartTime ?? '')) return true;
    try {
      return registry.read(id).state.restarting;
    } catch {
      return false;
    }
  };
  for (;;) {
    const writing = stillWriting();
    readMore(emit);
    // Rotated (or first created): finish the old file, go on with the new one.
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(file);
    } catch {
      /* removed with the container */
    }
    if (st && (fd < 0 || fs.fstatSync(fd).ino !== st.ino)) {
      readMore(emit);
      if (fd >= 0) fs.closeSync(fd);
      fd = fs.openSync(file, 'r');
      offset = 0;
      readMore(emit);
    }
    if (!writing) break;
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 100));
  }
  parser.end(emit);
  if (fd >= 0) fs.closeSync(fd);
}
