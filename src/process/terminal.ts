// The user's terminal joined to a container's pty master (`run -it`,
// `exec -it`): raw mode while attached, window size kept in step, and the
// terminal restored on every way out.
import fs = require('node:fs');
import tty = require('node:tty');
import { native } from '../native';

export interface Attached {
  /** Resolves when the container's side has closed (EIO on the master) or after a grace period. */
  drained(graceMs?: number): Promise<void>;
  /** Puts the user's terminal back as it was; safe to call more than once. */
  restore(): void;
}

function writeAll(fd: number, data: Buffer) {
  let off = 0;
  while (off < data.length) {
    try {
      off += fs.writeSync(fd, data, off);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') continue;
      return; // EIO: the container's side is gone
    }
  }
}

export function attachTerminal(master: number, opts: { stdin: boolean }): Attached {
  const input = process.stdin;
  const raw = opts.stdin && input.isTTY;
  const resize = () => {
    const out = process.stdout;
    if (out.isTTY && out.rows && out.columns) {
      try {
        native().setWinsize(master, out.rows, out.columns);
      } catch {
        /* the pty is gone */
      }
    }
  };
  resize();
  process.stdout.on('resize', resize);
  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    process.stdout.off('resize', resize);
    if (raw) input.setRawMode(false);
    if (opts.stdin) {
      input.off('data', onInput);
      input.pause();
    }
    process.off('exit', restore);
  };
  // Even on an exit we did not plan for, the terminal is not left raw.
  process.on('exit', restore);
  const onInput = (chunk: Buffer) => writeAll(master, chunk);
  if (opts.stdin) {
    if (raw) input.setRawMode(true);
    input.on('data', onInput);
    input.resume();
  }
  const stream = new tty.ReadStream(master);
  let ended = false;
  let onEnd: (() => void) | undefined;
  const finish = () => {
    ended = true;
    onEnd?.();
  };
  stream.on('data', (chunk: Buffer) => process.stdout.write(chunk));
  stream.on('end', finish);
  // EIO is how a pty master says every slave is closed.
  stream.on('error', finish);
  return {
    restore,
    drained(graceMs = 2000) {
      if (ended) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          stream.destroy();
          resolve();
        }, graceMs);
        onEnd = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    },
  };
}
