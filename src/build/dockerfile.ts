// A Dockerfile read into stages of instructions. dockerfile-ast (the
// parser of the Docker language server) finds instructions, continuation
// lines, comments, parser directives, flags and heredocs; what the words
// mean (exec or shell form, expansion) is decided here, as BuildKit does.
import { TsrunError } from '../errors';

export interface Heredoc {
  name: string;
  /** Its lines, each ending in "\n" (leading tabs gone for <<-). */
  content: string;
  /** <<"EOF" or <<'EOF': no expansion in it. */
  quoted: boolean;
}

export interface Instruction {
  /** 1-based, for messages. */
  line: number;
  keyword: string;
  /** The arguments, continuation lines joined, flags left out. */
  args: string;
  flags: Map<string, string>;
  heredocs: Heredoc[];
  /** The arguments as a JSON array of strings (exec form), when they are one. */
  json?: string[];
  /** As written (continuations joined): the history entry and the cache key. */
  text: string;
}

export interface Stage {
  index: number;
  /** FROM ... AS name */
  name?: string;
  /** The FROM's image, before expansion of the ARGs declared above the first FROM. */
  base: string;
  platform?: string;
  line: number;
  instructions: Instruction[];
}

export interface Dockerfile {
  escape: string;
  /** ARG instructions before the first FROM. */
  globalArgs: Instruction[];
  stages: Stage[];
}

const KNOWN = new Set(['ADD', 'ARG', 'CMD', 'COPY', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'FROM', 'HEALTHCHECK', 'LABEL', 'MAINTAINER', 'ONBUILD', 'RUN', 'SHELL', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR']);

/** Flags each instruction takes; any other is refused (a flag ignored could drop what the user asked for). */
const FLAGS: Record<string, string[]> = {
  FROM: ['platform'],
  RUN: [],
  COPY: ['from', 'chown', 'chmod', 'link'],
  ADD: ['chown', 'chmod', 'link'],
  HEALTHCHECK: ['interval', 'timeout', 'start-period', 'start-interval', 'retries'],
};

/** A JSON array of strings, or undefined: Docker reads anything else as the shell form. */
export function jsonForm(args: string): string[] | undefined {
  if (!args.trimStart().startsWith('[')) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(args);
  } catch {
    return undefined;
  }
  return Array.isArray(v) && v.every((s) => typeof s === 'string') ? v : undefined;
}

/** The heredocs the first line opens (<<EOF, <<-EOF, <<"EOF"), in order. */
function heredocMarkers(firstLine: string): { name: string; strip: boolean; quoted: boolean }[] {
  return [...firstLine.matchAll(/<<(-?)(["']?)([A-Za-z0-9_.-]+)\2/g)].map((m) => ({ name: m[3], strip: m[1] === '-', quoted: m[2] !== '' }));
}

export function parseDockerfile(source: string, label = 'Dockerfile'): Dockerfile {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { DockerfileParser } = require('dockerfile-ast') as typeof import('dockerfile-ast');
  // Docker reads CRLF files as LF ones; the parser would take "\\\r" for no continuation.
  const text = source.replace(/\r\n/g, '\n');
  const doc = DockerfileParser.parse(text);
  const escape = doc.getEscapeCharacter();
  for (const d of doc.getDirectives()) {
    const name = d.getName().toLowerCase();
    const value = d.getValue().trim();
    // A syntax directive picks a BuildKit frontend; tsrun reads only the Dockerfile language itself.
    if (name === 'syntax' && !/^(docker\.io\/)?docker\/dockerfile(-upstream)?(:[A-Za-z0-9._-]+)?(@sha256:[0-9a-f]{64})?$/.test(value)) throw new TsrunError(`${label}:${d.getRange().start.line + 1}: # syntax=${value}: tsrun build reads the Dockerfile language (docker/dockerfile), not other frontends`);
  }
  const offsets = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === '\n') offsets.push(i + 1);
  const at = (p: { line: number; character: number }) => offsets[p.line] + p.character;

  const stages: Stage[] = [];
  const globalArgs: Instruction[] = [];
  for (const ins of doc.getInstructions()) {
    const line = ins.getRange().start.line + 1;
    const where = `${label}:${line}`;
    const keyword = ins.getKeyword();
    if (!KNOWN.has(keyword)) throw new TsrunError(`${where}: unknown instruction ${ins.getInstruction()}`);
    const args = ins.getArgumentsContent() ?? '';
    const flags = new Map<string, string>();
    const withFlags = ins as unknown as { getFlags?: () => { getName(): string; getValue(): string | null }[] };
    for (const f of withFlags.getFlags?.() ?? []) {
      const allowed = FLAGS[keyword] ?? [];
      if (keyword === 'RUN') throw new TsrunError(`${where}: RUN --${f.getName()} is not supported by tsrun build (RUN takes no flags here)`);
      if (!allowed.includes(f.getName())) throw new TsrunError(`${where}: unknown flag --${f.getName()} for ${keyword}${allowed.length ? ` (it takes ${allowed.map((a) => `--${a}`).join(', ')})` : ''}`);
      if (f.getValue() === null) throw new TsrunError(`${where}: ${keyword} --${f.getName()} needs a value (--${f.getName()}=VALUE)`);
      flags.set(f.getName(), f.getValue()!);
    }
    const heredocs: Heredoc[] = [];
    if (['RUN', 'COPY', 'ADD'].includes(keyword)) {
      const markers = heredocMarkers(args.split('\n')[0]);
      const found = (ins as unknown as { getHeredocs(): { getName(): string; getContentRange(): { start: { line: number; character: number }; end: { line: number; character: number } } | null; getDelimiterRange(): unknown }[] }).getHeredocs();
      markers.forEach((m, n) => {
        const h = found[n];
        if (!h || h.getName() !== m.name || !h.getDelimiterRange()) throw new TsrunError(`${where}: the heredoc <<${m.name} is not closed by a line "${m.name}"`);
        const range = h.getContentRange();
        let content = range ? text.slice(at(range.start), at(range.end)) + '\n' : '';
        if (m.strip) content = content.replace(/^\t+/gm, '');
        heredocs.push({ name: m.name, content, quoted: m.quoted });
      });
    }
    const flagText = [...flags].map(([k, v]) => `--${k}=${v} `).join('');
    const instruction: Instruction = { line, keyword, args, flags, heredocs, json: heredocs.length ? undefined : jsonForm(args), text: `${keyword} ${flagText}${args}` };
    if (keyword === 'FROM') {
      const words = args.split(/\s+/).filter(Boolean);
      if (!(words.length === 1 || (words.length === 3 && words[1].toUpperCase() === 'AS'))) throw new TsrunError(`${where}: FROM takes IMAGE [AS NAME], not "${args}"`);
      const name = words[2]?.toLowerCase();
      if (name !== undefined) {
        if (!/^[a-z][a-z0-9._-]*$/.test(name)) throw new TsrunError(`${where}: stage name "${words[2]}" must start with a letter and hold only letters, digits, ".", "_" and "-"`);
        if (stages.some((s) => s.name === name)) throw new TsrunError(`${where}: a stage named "${name}" is defined twice`);
      }
      stages.push({ index: stages.length, name, base: words[0], platform: flags.get('platform'), line, instructions: [] });
      continue;
    }
    if (!stages.length) {
      if (keyword !== 'ARG') throw new TsrunError(`${where}: ${keyword} before the first FROM (only ARG may come before it)`);
      globalArgs.push(instruction);
      continue;
    }
    if (keyword === 'ONBUILD') {
      const trigger = args.trim().split(/\s+/)[0]?.toUpperCase() ?? '';
      if (!trigger) throw new TsrunError(`${where}: ONBUILD needs an instruction`);
      if (['ONBUILD', 'FROM', 'MAINTAINER'].includes(trigger)) throw new TsrunError(`${where}: ONBUILD ${trigger} is not allowed`);
      if (!KNOWN.has(trigger)) throw new TsrunError(`${where}: ONBUILD: unknown instruction ${trigger}`);
    }
    stages[stages.length - 1].instructions.push(instruction);
  }
  if (!stages.length) throw new TsrunError(`${label}: no FROM instruction (a Dockerfile starts with FROM IMAGE, after ARGs at most)`);
  return { escape, globalArgs, stages };
}
