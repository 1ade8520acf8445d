// Words of a Dockerfile instruction as Docker's builder reads them: split
// on whitespace (quotes kept for the expansion), then each word expanded
// once, quotes and escapes removed and $VAR, ${VAR}, ${VAR:-word} and the
// other POSIX forms replaced from the build's variables.
import { TsrunError } from '../errors';

export type Variables = ReadonlyMap<string, string>;

/** Splits on whitespace outside quotes; quotes and escapes stay for expand(). */
export function splitQuoted(text: string, escape: string): string[] {
  const words: string[] = [];
  let word = '';
  let quote = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (!quote && /\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      continue;
    }
    inWord = true;
    word += c;
    if (c === escape && quote !== "'" && i + 1 < text.length) word += text[++i];
    else if (!quote && (c === '"' || c === "'")) quote = c;
    else if (c === quote) quote = '';
  }
  if (inWord) words.push(word);
  return words;
}

/** Splits on whitespace alone, as Docker splits COPY, ADD, FROM and EXPOSE arguments. */
export function splitWhitespace(text: string): string[] {
  return text.split(/\s+/).filter(Boolean);
}

/** Docker's filepath.Match, as a RegExp over one path ("*" and "?" never cross "/"). */
export function globRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) re += escapeRe(pattern[++i]);
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw new TsrunError(`pattern ${JSON.stringify(pattern)}: "[" without its "]"`);
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('^') || cls.startsWith('!')) cls = `^${cls.slice(1)}`;
      re += `[${cls.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += escapeRe(c);
  }
  return new RegExp(`^${re}$`, 's');
}

const escapeRe = (c: string) => c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

export const hasGlob = (s: string) => /[*?[]/.test(s);

/** The longest or shortest prefix or suffix of value matching a shell pattern, removed (${V#p}, ${V##p}, ${V%p}, ${V%%p}). */
function trimPattern(value: string, pattern: string, fromStart: boolean, longest: boolean): string {
  const re = new RegExp(globRegExp(pattern).source.replace(/\[\^\/\]/g, '.'), 's');
  const lengths = [...Array(value.length + 1).keys()];
  if (longest) lengths.reverse();
  for (const n of lengths) {
    const part = fromStart ? value.slice(0, n) : value.slice(value.length - n);
    if (re.test(part)) return fromStart ? value.slice(n) : value.slice(0, value.length - n);
  }
  return value;
}

/**
 * One word with quotes and escapes removed and variables replaced, as
 * Docker's shell lexer does it. `used` collects the names it read (the
 * build cache keys on the build args a step uses).
 */
export function expand(word: string, vars: Variables, escape: string, used?: Set<string>): string {
  let i = 0;
  const fail = (why: string): never => {
    throw new TsrunError(`${JSON.stringify(word)}: ${why}`);
  };
  const name = (): string => {
    const m = /^[A-Za-z_][A-Za-z0-9_]*|^[0-9]/.exec(word.slice(i));
    return m ? m[0] : '';
  };
  const lookup = (n: string): string | undefined => {
    used?.add(n);
    return vars.get(n);
  };
  // ${...} after "${": returns the expansion, i past the closing brace.
  const braced = (): string => {
    const n = name();
    if (!n) fail('bad substitution (a name is expected after "${")');
    i += n.length;
    const value = lookup(n);
    if (word[i] === '}') {
      i++;
      return value ?? '';
    }
    const op = /^(:[-+?]|[-+?]|##|#|%%|%)/.exec(word.slice(i))?.[0];
    if (!op) fail(`bad substitution after \${${n}`);
    i += op!.length;
    const arg = until('}');
    const set = value !== undefined && (op!.startsWith(':') ? value !== '' : true);
    switch (op) {
      case ':-':
      case '-':
        return set ? value! : arg;
      case ':+':
      case '+':
        return set ? arg : '';
      case ':?':
      case '?':
        if (!set) fail(`${n}: ${arg || 'is not set'}`);
        return value!;
      default:
        return trimPattern(value ?? '', arg, op!.startsWith('#'), op!.length === 2);
    }
  };
  // The word part of ${NAME:-word} up to the closing brace, itself expanded.
  const until = (close: string): string => {
    let out = '';
    while (i < word.length && word[i] !== close) out += step(true);
    if (word[i] !== close) fail(`missing "${close}"`);
    i++;
    return out;
  };
  const dollar = (): string => {
    i++;
    if (word[i] === '{') {
      i++;
      return braced();
    }
    const n = name();
    if (!n) return '$';
    i += n.length;
    return lookup(n) ?? '';
  };
  const step = (inBraces = false): string => {
    const c = word[i];
    if (c === escape) {
      i += 2;
      return word[i - 1] ?? '';
    }
    if (c === "'") {
      const end = word.indexOf("'", i + 1);
      if (end < 0) fail('unexpected end of the word: a single quote is not closed');
      const out = word.slice(i + 1, end);
      i = end + 1;
      return out;
    }
    if (c === '"') {
      i++;
      let out = '';
      while (i < word.length && word[i] !== '"') {
        if (word[i] === escape && ['"', '$', escape].includes(word[i + 1])) {
          out += word[i + 1];
          i += 2;
        } else if (word[i] === '$') out += dollar();
        else out += word[i++];
      }
      if (word[i] !== '"') fail('unexpected end of the word: a double quote is not closed');
      i++;
      return out;
    }
    if (c === '$') return dollar();
    if (inBraces && c === '}') return '';
    i++;
    return c;
  };
  let out = '';
  while (i < word.length) out += step();
  return out;
}

/** KEY=VALUE words (ENV, LABEL, ARG), or the old "KEY VALUE" form of ENV and LABEL. */
export function keyValues(text: string, escape: string, instruction: string, oldForm: boolean): [string, string | undefined][] {
  const words = splitQuoted(text, escape);
  if (!words.length) throw new TsrunError(`${instruction} needs at least one argument`);
  if (oldForm && !words[0].includes('=')) {
    // ENV KEY VALUE...: the value is the rest of the line as written.
    const rest = text.trimStart().slice(words[0].length).trim();
    if (!rest) throw new TsrunError(`${instruction} ${words[0]}: a value is needed (${instruction} KEY=VALUE or ${instruction} KEY VALUE)`);
    return [[words[0], rest]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq < 0) {
      if (instruction === 'ARG') return [w, undefined];
      throw new TsrunError(`${instruction} ${w}: expected KEY=VALUE`);
    }
    if (eq === 0) throw new TsrunError(`${instruction} ${w}: the name is empty`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}
