// The runtime's log, as runc keeps one for its clients: with --log FILE each
// error (and with --debug each set-up step) is also a line of that file, as
// logrus writes them, text or JSON. containerd's shim and podman read the last
// error line of it when a call fails.
import fs = require('node:fs');
import { TsrunError } from '../errors';

export type LogFormat = 'text' | 'json';
export type LogLevel = 'error' | 'warning' | 'info' | 'debug';

let sink: { fd: number; format: LogFormat } | undefined;

/** Opens FILE for appending (made if missing, as runc does, so a client finds it even empty). */
export function openLog(file: string, format: LogFormat) {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o600);
  } catch (e) {
    throw new TsrunError(`--log ${file}: cannot open it for appending: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  sink = { fd, format };
}

export function logging(): boolean {
  return sink !== undefined;
}

export function log(level: LogLevel, msg: string) {
  if (!sink) return;
  const time = new Date().toISOString();
  const line = sink.format === 'json' ? JSON.stringify({ level, msg, time }) : `time="${time}" level=${level} msg=${JSON.stringify(msg)}`;
  try {
    fs.writeSync(sink.fd, line + '\n');
  } catch {
    /* a full disk must not hide the error itself, which stderr still carries */
  }
}

/**
 * The global options that choose the log, read from argv before the verbs are
 * parsed: an unknown flag or verb is an error the log must hold too.
 */
export function logOptionsOf(argv: string[]): { file?: string; format: LogFormat } {
  const withValue = new Set(['--root', '--storage', '--cni-path', '--log', '--log-format', '--rootless']);
  let file: string | undefined;
  let format = 'text';
  for (let i = 2; i < argv.length && argv[i].startsWith('-'); i++) {
    const [name, inline] = argv[i].split(/=(.*)/s, 2);
    const value = inline ?? (withValue.has(name) ? argv[++i] : undefined);
    if (name === '--log') file = value;
    if (name === '--log-format' && value !== undefined) format = value;
  }
  if (format !== 'text' && format !== 'json') throw new TsrunError(`--log-format ${format}: use text or json`);
  return { file, format };
}
