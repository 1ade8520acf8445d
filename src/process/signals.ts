// Signal names and numbers (signal(7)), accepted as TERM, SIGTERM or 15.
import os = require('node:os');
import { TsrunError } from '../errors';

const BY_NAME = os.constants.signals as Record<string, number>;

export function parseSignal(text: string): number {
  const t = text.trim();
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    if (n >= 1 && n <= 64) return n;
  } else {
    const name = t.toUpperCase().startsWith('SIG') ? t.toUpperCase() : 'SIG' + t.toUpperCase();
    const rt = /^SIGRTMIN(?:\+(\d+))?$/.exec(name) ?? /^SIGRTMAX(?:-(\d+))?$/.exec(name);
    if (rt) {
      const off = Number(rt[1] ?? 0);
      const n = name.startsWith('SIGRTMIN') ? 34 + off : 64 - off;
      if (n >= 34 && n <= 64) return n;
    }
    if (BY_NAME[name] !== undefined) return BY_NAME[name];
  }
  throw new TsrunError(`unknown signal "${text}": use a name such as TERM or SIGKILL, or a number 1-64`);
}

export function signalName(n: number): string {
  const found = Object.entries(BY_NAME).find(([, v]) => v === n);
  return found ? found[0] : `signal ${n}`;
}
