// Progress lines for unpacking and loading on a terminal; silent when
// stderr is a pipe or a file, so scripts and logs stay clean.
export interface Progress {
  update(label: string, bytes: number, total?: number): void;
  done(): void;
}

const MB = 1024 * 1024;

export function progress(stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { update() {}, done() {} };
  const started = Date.now();
  let last = 0;
  let shown = false;
  return {
    update(label, bytes, total) {
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      const rate = bytes / MB / Math.max((now - started) / 1000, 0.001);
      const size = total ? `${(bytes / MB).toFixed(1)}/${(total / MB).toFixed(1)} MB` : `${(bytes / MB).toFixed(1)} MB`;
      stream.write(`\r\x1b[K${label}: ${size}, ${rate.toFixed(1)} MB/s`);
      shown = true;
    },
    done() {
      if (shown) stream.write('\r\x1b[K');
    },
  };
}

/**
 * A line per item (a layer of a pull or push), redrawn in place on a
 * terminal as Docker draws its bars; elsewhere only each item's last line,
 * when it is final, so a pipe gets one line per layer.
 */
export interface Board {
  set(key: string, text: string, final?: boolean): void;
  /** A line of its own, printed above the items' lines. */
  note(line: string): void;
  done(): void;
}

export function board(stream: NodeJS.WriteStream = process.stderr): Board {
  const lines = new Map<string, string>();
  if (!stream.isTTY) {
    return {
      set(key, text, final) {
        if (final) stream.write(`${key}: ${text}\n`);
      },
      note: (line) => stream.write(`${line}\n`),
      done() {},
    };
  }
  let drawn = 0;
  let last = 0;
  let closed = false;
  const draw = () => {
    last = Date.now();
    let out = drawn ? `\x1b[${drawn}A` : '';
    for (const [key, text] of lines) out += `\r\x1b[K${key}: ${text}\n`;
    drawn = lines.size;
    stream.write(out);
  };
  return {
    set(key, text, final) {
      // A worker that ends after the board did must not draw over the lines printed since.
      if (closed) return;
      const fresh = !lines.has(key);
      lines.set(key, text);
      if (fresh || final || Date.now() - last >= 100) draw();
    },
    note(line) {
      if (closed) return void stream.write(`${line}\n`);
      stream.write(`${drawn ? `\x1b[${drawn}A` : ''}\r\x1b[K${line}\n`);
      drawn = 0;
      draw();
    },
    done() {
      if (lines.size && !closed) draw();
      closed = true;
    },
  };
}

/** Docker's bar: `[=====>      ]  12.3MB/30.1MB`. */
export function bar(bytes: number, total: number, width = 30): string {
  const fill = total > 0 ? Math.min(width, Math.floor((bytes / total) * width)) : width;
  const mb = (n: number) => `${(n / 1e6).toFixed(1)}MB`;
  return `[${'='.repeat(Math.max(0, fill - 1))}${fill ? '>' : ''}${' '.repeat(width - fill)}] ${mb(bytes)}/${mb(total)}`;
}
