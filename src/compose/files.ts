// Where a Compose project's files are, as Docker Compose finds them: -f
// files in order, else compose.yaml (or its older names) in the working
// directory or the nearest parent that has one, with its override file;
// the project directory, the .env file and the project's name.
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';

/** Docker Compose's names, in its order of preference. */
const NAMES = ['compose.yaml', 'compose.yml', 'docker-compose.yaml', 'docker-compose.yml'];

export interface ComposeSource {
  /** The file's path, or "-" for standard input. */
  file: string;
  text: string;
}

/** The files named by -f, or found from cwd up; each read whole. */
export function findFiles(given: string[], cwd: string, stdin: () => string): ComposeSource[] {
  if (given.length) {
    return given.map((f) => {
      if (f === '-') return { file: '-', text: stdin() };
      const file = path.resolve(cwd, f);
      return { file, text: readText(file) };
    });
  }
  for (let dir = path.resolve(cwd); ; dir = path.dirname(dir)) {
    const found = NAMES.find((n) => fs.existsSync(path.join(dir, n)));
    if (found) {
      const file = path.join(dir, found);
      const override = path.join(dir, found.replace(/\.(ya?ml)$/, '.override.$1'));
      return [file, ...(fs.existsSync(override) ? [override] : [])].map((f) => ({ file: f, text: readText(f) }));
    }
    if (dir === path.dirname(dir)) break;
  }
  throw new TsrunError(`no compose file found in ${cwd} or a parent directory (looked for ${NAMES.join(', ')}); name one with -f`);
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TsrunError(`read compose file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/**
 * A .env file (Compose's format): NAME=VALUE lines, `export ` allowed, # comments,
 * values in single quotes taken as they are, in double quotes with \n, \t, \\ and \" escapes,
 * unquoted ones ending at " #".
 */
export function parseDotEnv(text: string, file: string): Map<string, string> {
  const out = new Map<string, string>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '').trim();
    if (!line || line.startsWith('#')) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*(?:=\s*(.*))?$/.exec(line);
    if (!m) throw new TsrunError(`${file}:${i + 1}: expected NAME=VALUE, found ${JSON.stringify(line.slice(0, 60))}`);
    if (m[2] === undefined) return; // NAME alone: nothing to set here
    let v = m[2];
    if (v.startsWith("'")) {
      const end = v.indexOf("'", 1);
      if (end < 0) throw new TsrunError(`${file}:${i + 1}: the value of ${m[1]} opens a ' it does not close`);
      v = v.slice(1, end);
    } else if (v.startsWith('"')) {
      const q = /^"((?:[^"\\]|\\.)*)"/.exec(v);
      if (!q) throw new TsrunError(`${file}:${i + 1}: the value of ${m[1]} opens a " it does not close`);
      v = q[1].replace(/\\(.)/g, (_, c: string) => ({ n: '\n', t: '\t', r: '\r' })[c] ?? c);
    } else {
      v = v.replace(/\s+#.*$/, '').trim();
    }
    out.set(m[1], v);
  });
  return out;
}

export function readDotEnv(file: string, required: boolean): Map<string, string> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (!required && (e as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw new TsrunError(`read env file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseDotEnv(text, file);
}

/** Docker Compose's rule: lower-case letters, digits, dashes and underscores, beginning with a letter or digit. */
export function normalizeProjectName(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9_-]/g, '');
}

export function checkProjectName(name: string, from: string) {
  if (!/^[a-z0-9][a-z0-9_-]*$/.test(name)) throw new TsrunError(`project name ${JSON.stringify(name)} (${from}) is not valid: use lower-case letters, digits, "-" and "_", beginning with a letter or digit`);
}
