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
