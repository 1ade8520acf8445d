// The user's terminal joined to a container's pty master (`run -it`,
// `exec -it`): raw mode while attached, window size kept in step, and the
// terminal restored on every way out.
import fs = require('node:fs');
import { tty } from '../lazy';
import { native } from '../native';

export interface Attached {
  /** Resolves when the container's side has closed (EIO on the master) or after a grace period. */
  drained(graceMs?: number): Promise<void>;
  /** Puts the user's terminal back as it was; safe to call more than once. */
  restore(): void;
}

/**
 * Writes to the pty master without blocking the loop: while a chunk is
 * pending, the user's input is paused (backpressure), and the container's
 * output keeps flowing the other way. The master is non-blocking, so a
 * full buffer is EAGAIN: wait a moment and try again.
 */
function writer(fd: number, input: NodeJS.ReadStream) {
  let closed = false;
  const write = (data: Buffer, off = 0) => {
    if (closed || off >= data.length) {
      input.resume();
      return;
    }
    fs.write(fd, data, off, data.length - off, null, (err, n) => {
      if (err) {
        if (err.code === 'EAGAIN') return void setTimeout(() => write(data, off), 5);
        closed = true; // EIO: the container's side is gone
        return void input.resume();
      }
      write(data, off + n);
    });
  };
  return {
    onData(chunk: Buffer) {
      input.pause();
      write(chunk);
    },
    close() {
      closed = true;
    },
  };
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
    w.close();
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
  const w = writer(master, input);
  const onInput = (chunk: Buffer) => w.onData(chunk);
  if (opts.stdin) {
    if (raw) input.setRawMode(true);
    input.on('data', onInput);
    input.resume();
  }
  const stream = new (tty().ReadStream)(master);
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
