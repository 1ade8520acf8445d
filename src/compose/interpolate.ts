// The Compose Specification's interpolation: $VAR, ${VAR}, ${VAR:-default},
// ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt}, and
// $$ for a literal dollar. Defaults may themselves hold ${...}.
import { TsrunError } from '../errors';

export type Lookup = (name: string) => string | undefined;

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

/** Expands text; `unset` hears of each variable that is used unset without a default. */
export function interpolate(text: string, lookup: Lookup, unset?: (name: string) => void): string {
  return expand(text, 0, lookup, unset, false).out;
}

/** Reads from i up to the end (or, nested, up to the closing brace) and returns where it stopped. */
function expand(text: string, i: number, lookup: Lookup, unset: ((name: string) => void) | undefined, nested: boolean): { out: string; end: number } {
  let out = '';
  while (i < text.length) {
    const c = text[i];
    if (nested && c === '}') return { out, end: i };
    if (c !== '$') {
      out += c;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (next === '{') {
      const r = braced(text, i + 2, lookup, unset);
      out += r.out;
      i = r.end;
      continue;
    }
    const m = NAME.exec(text.slice(i + 1));
    if (!m) {
      // A lone $ (before a space, a digit, the end) stays itself, as Compose leaves it.
      out += '$';
      i++;
      continue;
    }
    out += value(m[0], lookup, unset);
    i += 1 + m[0].length;
  }
  if (nested) throw new TsrunError(`invalid interpolation in "${text}": a \${ is not closed`);
  return { out, end: i };
}

function value(name: string, lookup: Lookup, unset?: (name: string) => void): string {
  const v = lookup(name);
  if (v === undefined) {
    unset?.(name);
    return '';
  }
  return v;
}

/** ${...} from just after the brace; returns past the closing brace. */
function braced(text: string, i: number, lookup: Lookup, unset?: (name: string) => void): { out: string; end: number } {
  const m = NAME.exec(text.slice(i));
  if (!m) throw new TsrunError(`invalid interpolation in "${text}": \${ must be followed by a variable name`);
  const name = m[0];
  i += name.length;
  if (text[i] === '}') return { out: value(name, lookup, unset), end: i + 1 };
  const op = /^(:?[-?+])/.exec(text.slice(i))?.[1];
  if (!op) throw new TsrunError(`invalid interpolation in "${text}": after \${${name} comes "${text[i] ?? ''}", not }, :-, -, :?, ?, :+ or +`);
  i += op.length;
  // The word after the operator is expanded only where it is used, but it is read (for its end) always.
  const word = expand(text, i, lookup, undefined, true);
  const wordText = () => expand(text, i, lookup, unset, true).out;
  const end = word.end + 1;
  const v = lookup(name);
  const colon = op.startsWith(':');
  const missing = v === undefined || (colon && v === '');
  switch (op.slice(-1)) {
    case '-':
      return { out: missing ? wordText() : v!, end };
    case '+':
      return { out: missing ? '' : wordText(), end };
    default: {
      if (!missing) return { out: v!, end };
      const why = wordText();
      throw new TsrunError(`required variable ${name} is ${v === undefined ? 'missing' : 'empty'}${why ? `: ${why}` : ''}`);
    }
  }
}
