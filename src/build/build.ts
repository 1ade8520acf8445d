// tsrun build: a Dockerfile's stages, the ones the target needs, step by
// step from their base image. A step's result (the image config and layers
// after it) is cached under a key of its parent's key, its instruction,
// the build args it reads and, for COPY and ADD, its sources' content: an
// unchanged rebuild takes every step from the cache and makes the same
// image, byte for byte.
import fs = require('node:fs');
import path = require('node:path');
import { crypto } from '../lazy';
import { TsrunError } from '../errors';
import { durationNs } from '../duration';
import { Registry } from '../container/registry';
import { imageLayers } from '../container/run-image';
import type { ContainerRoot } from '../container/copy';
import { withContainerRoot } from '../container/copy';
import { createImageContainer, removeContainerFiles } from '../container/run-image';
import type { Digest } from '../image/digest';
import type { Image, ImageRecord, ImageStore } from '../image/store';
import { MEDIA, type Descriptor, type ImageConfig, type Manifest } from '../image/types';
import { readMergedFile, resolveUser } from '../image/user';
import { formatReference, parseReference } from '../image/reference';
import { pullImage, type RegistryOptions } from '../registry/pull';
import type { PackedLayer } from '../image/commit';
import type { TreeEntry } from '../image/unpack';
import { parseDockerfile, type Dockerfile, type Instruction, type Stage } from './dockerfile';
import { expand, keyValues, splitQuoted, splitWhitespace, type Variables } from './words';
import { matchSources, openContext, sourceEntries, sourcesHash, openSource, type Source, type SourceRoot } from './context';
import { archiveEntries, archiveKind, copyStep, runStep, statInRoot, stepName, sweepSteps, type Placement } from './steps';

export interface BuildOptions {
  /** The context directory. */
  context: string;
  /** The Dockerfile's path (default CONTEXT/Dockerfile, or CONTEXT/Containerfile). */
  file?: string;
  /** The Dockerfile's text itself (-f -). */
  text?: string;
  tags?: string[];
  buildArgs?: Map<string, string>;
  target?: string;
  noCache?: boolean;
  /** --pull: pull base images even when the store has them. */
  pull?: boolean;
  /** RUN's network: bridge (the default, as Docker's), none or host. */
  network?: string;
  labels?: Record<string, string>;
  storage?: string;
  root?: string;
  registry?: RegistryOptions;
  /** Progress lines. */
  log?: (line: string) => void;
  /** RUN's output as it comes. */
  output?: (chunk: Buffer) => void;
}

export interface BuildResult {
  id: Digest;
  record: ImageRecord;
}

/** The image as it stands after a step. */
interface State {
  config: ImageConfig;
  layers: Descriptor[];
  key: string;
}

type Config = NonNullable<ImageConfig['config']>;

const DEFAULT_SHELL = ['/bin/sh', '-c'];
const FS_STEPS = new Set(['RUN', 'COPY', 'ADD', 'WORKDIR']);
const hashOf = (...parts: unknown[]) => crypto().createHash('sha256').update(JSON.stringify(parts)).digest('hex');
const hostArch = () => (process.arch === 'x64' ? 'amd64' : process.arch);

/** A layer of no files: the one lower layer a scratch stage's container needs (not kept in the image). */
function emptyLayer(store: ImageStore): { desc: Descriptor; diffID: string } {
  const tar = Buffer.alloc(1024);
  const digest = store.writeBlob(tar);
  return { desc: { mediaType: MEDIA.ociLayer, digest, size: tar.length }, diffID: digest };
}

/** Docker's media types for layers named by an OCI manifest's. */
function ociLayer(d: Descriptor): Descriptor {
  const mediaType = d.mediaType === MEDIA.dockerLayerGzip ? MEDIA.ociLayerGzip : d.mediaType === MEDIA.dockerLayer ? MEDIA.ociLayer : d.mediaType;
  return { mediaType, digest: d.digest, size: d.size };
}

/** Go's time.ParseDuration, in nanoseconds (HEALTHCHECK's flags). */
/** Stage by name or index, for FROM and COPY --from. */
function stageNamed(df: Dockerfile, name: string, before: number): Stage | undefined {
  const lower = name.toLowerCase();
  const s = /^\d+$/.test(name) ? df.stages[Number(name)] : df.stages.find((x) => x.name === lower);
  return s && s.index < before ? s : undefined;
}

class Builder {
  private readonly store: ImageStore;
  private readonly registry: Registry;
  private readonly log: (line: string) => void;
  private readonly results = new Map<number, State>();
  private readonly images = new Map<string, State>();
  private readonly consumed = new Set<string>();
  private readonly globals = new Map<string, string>();
  private context?: SourceRoot & { close(): void };
  private step = 0;
  private labelled = false;
  /** SIGINT, SIGTERM or SIGHUP: the running step is killed, its container removed, the build ends. */
  readonly interruption = new AbortController();

  constructor(
    private readonly df: Dockerfile,
    private readonly opts: BuildOptions,
    private readonly label = 'Dockerfile',
  ) {
    this.registry = new Registry(opts.storage, opts.root);
    this.store = this.registry.images;
    this.log = opts.log ?? ((line) => process.stderr.write(`${line}\n`));
  }

  private contextRoot(): SourceRoot {
    this.context ??= openContext(this.opts.context);
    return this.context;
  }

  close() {
    this.context?.close();
  }

  checkInterrupted() {
    const sig = this.interruption.signal.reason as string | undefined;
    if (this.interruption.signal.aborted) throw new TsrunError(`build interrupted by ${sig}`, 130);
  }

  /** The state as an image a container can be made from. */
  private imageOf(state: State): Image {
    const empty = state.layers.length ? undefined : emptyLayer(this.store);
    const layers = empty ? [empty.desc] : state.layers;
    const diffIDs = empty ? [empty.diffID] : state.config.rootfs.diff_ids;
    // Volumes are the image's to mount when it runs, not a build step's.
    const config: ImageConfig = { ...state.config, rootfs: { type: 'layers', diff_ids: diffIDs }, config: { ...state.config.config, Volumes: undefined, Healthcheck: undefined } };
    const id = `sha256:${state.key}` as Digest;
    return {
      record: { id, names: [], manifestDigest: id, created: state.config.created ?? '', loaded: '' },
      manifest: { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { mediaType: MEDIA.ociConfig, digest: id, size: 0 }, layers },
      config,
    };
  }

  private cacheFile(key: string) {
    return path.join(this.store.buildCacheDir(), `${key}.json`);
  }

  private cached(key: string): State | undefined {
    if (this.opts.noCache) return undefined;
    try {
      const e = JSON.parse(fs.readFileSync(this.cacheFile(key), 'utf8')) as { config: ImageConfig; layers: Descriptor[] };
      if (!e.layers.every((l) => this.store.hasBlob(l.digest))) return undefined;
      return { config: e.config, layers: e.layers, key };
    } catch {
      return undefined;
    }
  }

  private remember(state: State) {
    fs.mkdirSync(this.store.buildCacheDir(), { recursive: true, mode: 0o700 });
    const tmp = this.store.tmpPath('cache');
    fs.writeFileSync(tmp, JSON.stringify({ config: state.config, layers: state.layers }));
    fs.renameSync(tmp, this.cacheFile(state.key));
  }

  /** A step: from the cache under its key, or done and cached. */
  private async cachedStep(key: string, shown: string | undefined, work: () => Promise<State>): Promise<State> {
    this.checkInterrupted();
    const hit = this.cached(key);
    const n = shown ? ++this.step : 0;
    if (hit) {
      if (shown) this.log(`#${n} ${shown} CACHED`);
      return hit;
    }
    const t0 = Date.now();
    if (shown) this.log(`#${n} ${shown}`);
    const state = await work();
    this.checkInterrupted();
    state.key = key;
    this.remember(state);
    if (shown) this.log(`#${n} DONE ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    return state;
  }

  /** The state after a step: a history entry, and its layer if it changed files. */
  private next(prev: State, createdBy: string, layer?: PackedLayer, change?: (c: Config, all: ImageConfig) => void): State {
    const config: ImageConfig = structuredClone(prev.config);
    const now = new Date().toISOString();
    change?.((config.config ??= {}), config);
    config.created = now;
    config.history = [...(config.history ?? []), { created: now, created_by: createdBy, ...(layer ? {} : { empty_layer: true }) }];
    if (layer) config.rootfs = { type: 'layers', diff_ids: [...config.rootfs.diff_ids, layer.diffID] };
    return { config, layers: layer ? [...prev.layers, layer.desc] : prev.layers, key: '' };
  }

  /** An image named by FROM or COPY --from: the store's, or pulled. */
  private async image(ref: string, where: string, platform?: string): Promise<State> {
    if (platform && platform !== `linux/${hostArch()}`) throw new TsrunError(`${where}: --platform=${platform}: tsrun build runs steps on this host only (linux/${hostArch()})`);
    const seen = this.images.get(ref);
    if (seen) return seen;
    let rec = this.opts.pull ? undefined : this.store.find(ref);
    if (!rec) {
      try {
        rec = (await pullImage(this.store, ref, { ...this.opts.registry, log: this.opts.registry?.log ?? this.log })).record;
      } catch (e) {
        if (!(e instanceof TsrunError)) throw e;
        throw new TsrunError(`${where}: image "${ref}" is not in ${this.store.root}, and pulling it failed: ${e.message}`);
      }
    }
    const img = this.store.get(rec.id);
    const state: State = { config: structuredClone(img.config), layers: img.manifest.layers.map(ociLayer), key: hashOf('image', img.record.id, img.record.manifestDigest) };
    this.images.set(ref, state);
    return state;
  }

  /** The stages the target needs, in order. */
  private needed(target: Stage): Stage[] {
    const need = new Set<number>();
    const visit = (s: Stage) => {
      if (need.has(s.index)) return;
      need.add(s.index);
      const base = stageNamed(this.df, this.expandGlobal(s.base), s.index);
      if (base) visit(base);
      for (const ins of s.instructions) {
        const from = ins.keyword === 'COPY' ? ins.flags.get('from') : undefined;
        const dep = from !== undefined ? stageNamed(this.df, this.expandGlobal(from), s.index) : undefined;
        if (dep) visit(dep);
      }
    };
    visit(target);
    return this.df.stages.filter((s) => need.has(s.index));
  }

  private expandGlobal(word: string): string {
    return expand(word, this.globals, this.df.escape);
  }

  async build(): Promise<BuildResult> {
    await sweepSteps(this.registry);
    const buildArgs = this.opts.buildArgs ?? new Map();
    for (const ins of this.df.globalArgs) {
      for (const [name, dflt] of this.at(ins, () => keyValues(ins.args, this.df.escape, 'ARG', false))) {
        const v = buildArgs.has(name) ? buildArgs.get(name) : dflt !== undefined ? this.at(ins, () => expand(dflt, this.globals, this.df.escape)) : undefined;
        if (buildArgs.has(name)) this.consumed.add(name);
        if (v !== undefined) this.globals.set(name, v);
      }
    }
    const target = this.opts.target === undefined ? this.df.stages[this.df.stages.length - 1] : this.df.stages.find((s) => s.name === this.opts.target!.toLowerCase() || String(s.index) === this.opts.target);
    if (!target) throw new TsrunError(`--target ${this.opts.target}: no stage of that name (${this.df.stages.map((s) => s.name ?? String(s.index)).join(', ')})`);
    const stages = this.needed(target);
    this.labelled = stages.length > 1;
    let state: State | undefined;
    for (const stage of stages) {
      state = await this.stage(stage);
      this.results.set(stage.index, state);
    }
    if (this.opts.labels && Object.keys(this.opts.labels).length) {
      const labels = this.opts.labels;
      const prev = state!;
      state = await this.cachedStep(hashOf(prev.key, 'label', labels), undefined, async () => this.next(prev, `LABEL ${Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(' ')}`, undefined, (c) => (c.Labels = { ...c.Labels, ...labels })));
    }
    const unused = [...buildArgs.keys()].filter((k) => !this.consumed.has(k));
    if (unused.length) this.log(`warning: build-args not consumed by any ARG: ${unused.join(', ')}`);
    return this.write(state!);
  }

  /** The final image: its config, manifest and record (under the -t names). */
  private write(state: State): BuildResult {
    // The image's own OnBuild triggers are for builds FROM it; the rest as the steps left it.
    const configBytes = JSON.stringify(state.config);
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, digest: this.store.writeBlob(configBytes), size: Buffer.byteLength(configBytes) },
      layers: state.layers,
    };
    if (!state.layers.length) throw new TsrunError('the image has no layers (a scratch stage that copied nothing): tsrun stores only images with files');
    const names = (this.opts.tags ?? []).map((t) => formatReference(parseReference(t)));
    const record = this.store.addImage(this.store.writeBlob(JSON.stringify(manifest)), names);
    return { id: record.id, record };
  }

  /** Runs fn, its errors given the instruction's line. */
  private at<T>(ins: Instruction, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw this.located(ins, e);
    }
  }

  /** An error with the Dockerfile's name and the instruction's line, once. */
  private located(ins: Instruction, e: unknown): unknown {
    if (e instanceof TsrunError && !/^\S+:\d+: /.test(e.message)) return new TsrunError(`${this.label}:${ins.line}: ${e.message}`, e.exitCode);
    return e;
  }

  private async atAsync<T>(ins: Instruction, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw this.located(ins, e);
    }
  }

  private async stage(stage: Stage): Promise<State> {
    const label = this.labelled ? `${stage.name ?? `stage-${stage.index}`} ` : '';
    const total = 1 + stage.instructions.filter((i) => FS_STEPS.has(i.keyword)).length;
    let shown = 1;
    const base = this.expandGlobal(stage.base);
    const where = `${this.label}:${stage.line}`;
    const from = `[${label}1/${total}] FROM ${base}${stage.name ? ` AS ${stage.name}` : ''}`;
    let state: State;
    const prior = stageNamed(this.df, base, stage.index);
    if (prior) state = this.results.get(prior.index)!;
    else if (base === 'scratch') state = { config: { architecture: hostArch(), os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] }, layers: [], key: hashOf('scratch') };
    else state = await this.image(base, where, stage.platform ? this.expandGlobal(stage.platform) : undefined);
    this.log(`#${++this.step} ${from}`);
    const run = new StageRun(this, stage, state);
    // A base image's ONBUILD triggers run first, then are no longer the image's.
    const triggers = prior ? [] : (state.config.config?.OnBuild ?? []);
    if (triggers.length) {
      run.state = this.next(run.state, 'ONBUILD triggers cleared', undefined, (c) => (c.OnBuild = undefined));
      run.state.key = hashOf(state.key, 'onbuild-clear');
      for (const t of triggers) {
        const parsed = parseDockerfile(`FROM scratch\n${t}\n`, `ONBUILD of ${base}`).stages[0].instructions[0];
        await run.execute({ ...parsed, line: stage.line }, `[${label}${shown}/${total}] ONBUILD ${t}`);
      }
    }
    for (const ins of stage.instructions) {
      const display = FS_STEPS.has(ins.keyword) ? `[${label}${++shown}/${total}] ${ins.text}` : undefined;
      await this.atAsync(ins, () => run.execute(ins, display));
    }
    return run.state;
  }

  // What StageRun needs of the build.
  get dockerfile() {
    return this.df;
  }
  get buildOptions() {
    return this.opts;
  }
  get reg() {
    return this.registry;
  }
  globalValue(name: string) {
    return this.globals.get(name);
  }
  consume(name: string) {
    this.consumed.add(name);
  }
  context0() {
    return this.contextRoot();
  }
  stageResult(s: Stage) {
    return this.results.get(s.index);
  }
  imageState(ref: string, where: string) {
    return this.image(ref, where);
  }
  stateImage(s: State) {
    return this.imageOf(s);
  }
  doStep(key: string, shown: string | undefined, work: () => Promise<State>) {
    return this.cachedStep(key, shown, work);
  }
  nextState(prev: State, createdBy: string, layer?: PackedLayer, change?: (c: Config, all: ImageConfig) => void) {
    return this.next(prev, createdBy, layer, change);
  }
}

/** One stage's instructions, with its ARGs and SHELL. */
class StageRun {
  private readonly args = new Map<string, string>();

  constructor(
    private readonly b: Builder,
    private readonly stage: Stage,
    public state: State,
  ) {}

  private get escape() {
    return this.b.dockerfile.escape;
  }

  private get config(): Config {
    return this.state.config.config ?? {};
  }

  /** Variables for expansion: the stage's ARGs, ENV over them (Docker's precedence). */
  private vars(): Variables {
    const v = new Map(this.args);
    for (const e of this.config.Env ?? []) {
      const eq = e.indexOf('=');
      if (eq > 0) v.set(e.slice(0, eq), e.slice(eq + 1));
    }
    return v;
  }

  private words(text: string, used: Set<string>): string[] {
    return splitQuoted(text, this.escape).map((w) => expand(w, this.vars(), this.escape, used));
  }

  private one(text: string, used: Set<string>): string {
    return expand(text.trim(), this.vars(), this.escape, used);
  }

  /** The build args a step read, as part of its key. */
  private usedArgs(used: Set<string>): [string, string][] {
    return [...used].filter((n) => this.args.has(n) && !(this.config.Env ?? []).some((e) => e.startsWith(`${n}=`))).sort().map((n) => [n, this.args.get(n)!]);
  }

  private get shell(): string[] {
    return this.config.Shell?.length ? this.config.Shell : DEFAULT_SHELL;
  }

  /** Exec form as given, shell form through SHELL. */
  private command(ins: Instruction): string[] {
    return ins.json ?? [...this.shell, ins.args.trim()];
  }

  private meta(ins: Instruction, used: Set<string>, createdBy: string, change: (c: Config, all: ImageConfig) => void): Promise<State> {
    const prev = this.state;
    return this.b.doStep(hashOf(prev.key, ins.text, this.usedArgs(used)), undefined, async () => this.b.nextState(prev, createdBy, undefined, change));
  }

  async execute(ins: Instruction, shown: string | undefined): Promise<void> {
    const used = new Set<string>();
    const k = ins.keyword;
    switch (k) {
      case 'ARG': {
        for (const [name, dflt] of keyValues(ins.args, this.escape, 'ARG', false)) {
          const given = this.b.buildOptions.buildArgs;
          if (given?.has(name)) this.b.consume(name);
          const v = given?.has(name) ? given.get(name) : dflt !== undefined ? expand(dflt, this.vars(), this.escape) : this.b.globalValue(name);
          if (v !== undefined) this.args.set(name, v);
          else this.args.delete(name);
        }
        return;
      }
      case 'ENV': {
        const pairs = keyValues(ins.args, this.escape, 'ENV', true).map(([key, v]) => [expand(key, this.vars(), this.escape, used), expand(v!, this.vars(), this.escape, used)] as const);
        this.state = await this.meta(ins, used, `ENV ${pairs.map(([a, b]) => `${a}=${b}`).join(' ')}`, (c) => {
          for (const [key, v] of pairs) c.Env = [...(c.Env ?? []).filter((e) => !e.startsWith(`${key}=`)), `${key}=${v}`];
        });
        return;
      }
      case 'LABEL': {
        const pairs = keyValues(ins.args, this.escape, 'LABEL', true).map(([key, v]) => [expand(key, this.vars(), this.escape, used), expand(v!, this.vars(), this.escape, used)] as const);
        this.state = await this.meta(ins, used, `LABEL ${pairs.map(([a, b]) => `${a}=${b}`).join(' ')}`, (c) => (c.Labels = { ...c.Labels, ...Object.fromEntries(pairs) }));
        return;
      }
      case 'MAINTAINER': {
        const who = ins.args.trim();
        this.state = await this.meta(ins, used, `MAINTAINER ${who}`, (_c, all) => (all.author = who));
        return;
      }
      case 'USER': {
        const user = this.one(ins.args, used);
        if (!user) throw new TsrunError('USER needs a user (NAME or UID, and :GROUP)');
        this.state = await this.meta(ins, used, `USER ${user}`, (c) => (c.User = user));
        return;
      }
      case 'CMD':
      case 'ENTRYPOINT': {
        const cmd = this.command(ins);
        const setsCmdHere = this.stage.instructions.some((i) => i.keyword === 'CMD' && i.line < ins.line);
        this.state = await this.meta(ins, used, `${k} ${JSON.stringify(cmd)}`, (c) => {
          if (k === 'CMD') c.Cmd = cmd;
          else {
            c.Entrypoint = cmd;
            // An ENTRYPOINT drops a CMD the base image set (Docker's rule); one set in this stage stays.
            if (!setsCmdHere) c.Cmd = null;
          }
        });
        return;
      }
      case 'SHELL': {
        if (!ins.json?.length) throw new TsrunError('SHELL takes a JSON array, e.g. SHELL ["/bin/bash", "-c"]');
        const sh = ins.json;
        this.state = await this.meta(ins, used, `SHELL ${JSON.stringify(sh)}`, (c) => (c.Shell = sh));
        return;
      }
      case 'EXPOSE': {
        const ports: string[] = [];
        for (const w of this.words(ins.args, used)) {
          const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(w);
          const lo = Number(m?.[1]);
          const hi = m?.[2] ? Number(m[2]) : lo;
          if (!m || lo < 1 || hi > 65535 || hi < lo || hi - lo > 1000) throw new TsrunError(`EXPOSE ${w}: expected PORT[-PORT][/tcp|udp|sctp] with ports 1-65535`);
          for (let p = lo; p <= hi; p++) ports.push(`${p}/${(m[3] ?? 'tcp').toLowerCase()}`);
        }
        if (!ports.length) throw new TsrunError('EXPOSE needs a port');
        this.state = await this.meta(ins, used, `EXPOSE ${ports.join(' ')}`, (c) => (c.ExposedPorts = { ...c.ExposedPorts, ...Object.fromEntries(ports.map((p) => [p, {}])) }));
        return;
      }
      case 'VOLUME': {
        const vols = (ins.json ?? this.words(ins.args, used)).filter(Boolean);
        if (!vols.length) throw new TsrunError('VOLUME needs a path');
        for (const v of vols) if (!v.startsWith('/')) throw new TsrunError(`VOLUME ${v}: the path must be absolute`);
        this.state = await this.meta(ins, used, `VOLUME ${JSON.stringify(vols)}`, (c) => (c.Volumes = { ...c.Volumes, ...Object.fromEntries(vols.map((v) => [v, {}])) }));
        return;
      }
      case 'STOPSIGNAL': {
        const sig = this.one(ins.args, used);
        if (!/^(SIG)?[A-Z0-9+-]+$|^\d+$/.test(sig)) throw new TsrunError(`STOPSIGNAL ${sig}: expected a signal name or number`);
        this.state = await this.meta(ins, used, `STOPSIGNAL ${sig}`, (c) => (c.StopSignal = sig));
        return;
      }
      case 'ONBUILD': {
        const trigger = ins.args.trim();
        this.state = await this.meta(ins, used, `ONBUILD ${trigger}`, (c) => (c.OnBuild = [...(c.OnBuild ?? []), trigger]));
        return;
      }
      case 'HEALTHCHECK': {
        const check = this.healthcheck(ins);
        this.state = await this.meta(ins, used, `HEALTHCHECK ${JSON.stringify(check.Test)}`, (c) => (c.Healthcheck = check));
        return;
      }
      case 'WORKDIR': {
        const raw = this.one(ins.args, used);
        if (!raw) throw new TsrunError('WORKDIR needs a path');
        const dir = path.posix.resolve(this.config.WorkingDir || '/', raw);
        const prev = this.state;
        this.state = await this.b.doStep(hashOf(prev.key, ins.text, this.usedArgs(used)), shown, async () => {
          const layer = await copyStep({ ...this.container(prev), plan: () => [{ dir: dir.slice(1), entries: () => emptyEntries(), owner: () => ({ uid: 0, gid: 0 }) }], dirOwner: { uid: 0, gid: 0 } });
          return this.b.nextState(prev, `WORKDIR ${dir}`, layer, (c) => (c.WorkingDir = dir));
        });
        return;
      }
      case 'RUN':
        return this.run(ins, shown);
      case 'COPY':
      case 'ADD':
        return this.copy(ins, shown, used);
      default:
        throw new TsrunError(`${k} is not supported by tsrun build`);
    }
  }

  private healthcheck(ins: Instruction): NonNullable<Config['Healthcheck']> {
    const text = ins.args.trim();
    if (/^NONE$/i.test(text)) {
      if (ins.flags.size) throw new TsrunError('HEALTHCHECK NONE takes no flags');
      return { Test: ['NONE'] };
    }
    const m = /^CMD\s+([\s\S]+)$/i.exec(text);
    if (!m) throw new TsrunError('HEALTHCHECK takes NONE or CMD COMMAND');
    const rest = m[1].trim();
    let test: string[];
    if (rest.startsWith('[')) {
      let v: unknown;
      try {
        v = JSON.parse(rest);
      } catch {
        v = undefined;
      }
      test = Array.isArray(v) && v.every((x) => typeof x === 'string') ? ['CMD', ...(v as string[])] : ['CMD-SHELL', rest];
    } else test = ['CMD-SHELL', rest];
    const out: NonNullable<Config['Healthcheck']> = { Test: test };
    const f = ins.flags;
    if (f.has('interval')) out.Interval = durationNs(f.get('interval')!, 'HEALTHCHECK --interval');
    if (f.has('timeout')) out.Timeout = durationNs(f.get('timeout')!, 'HEALTHCHECK --timeout');
    if (f.has('start-period')) out.StartPeriod = durationNs(f.get('start-period')!, 'HEALTHCHECK --start-period');
    if (f.has('start-interval')) out.StartInterval = durationNs(f.get('start-interval')!, 'HEALTHCHECK --start-interval');
    if (f.has('retries')) {
      const r = f.get('retries')!;
      if (!/^\d+$/.test(r)) throw new TsrunError(`HEALTHCHECK --retries ${r}: expected a whole number`);
      out.Retries = Number(r);
    }
    return out;
  }

  private container(state: State) {
    return { registry: this.b.reg, image: this.b.stateImage(state), label: `build step of ${this.stage.name ?? `stage ${this.stage.index}`}`, user: '0' };
  }

  private async run(ins: Instruction, shown: string | undefined) {
    let argv: string[];
    if (ins.heredocs.length) {
      const first = ins.args.split('\n')[0].trim();
      // RUN <<EOF alone: the heredoc is the script; else the shell reads the heredocs itself.
      argv = /^<<-?(["']?)[A-Za-z0-9_.-]+\1$/.test(first) && ins.heredocs.length === 1 ? [...this.shell, ins.heredocs[0].content] : [...this.shell, `${first}\n${ins.heredocs.map((h) => `${h.content}${h.name}\n`).join('')}`];
    } else argv = this.command(ins);
    const env = this.config.Env ?? [];
    // Build args reach RUN as environment, under ENV of the same name.
    const argEnv = [...this.args].filter(([n]) => !env.some((e) => e.startsWith(`${n}=`))).map(([n, v]) => `${n}=${v}`);
    const prev = this.state;
    const opts = this.b.buildOptions;
    this.state = await this.b.doStep(hashOf(prev.key, ins.text, argEnv.sort()), shown, async () => {
      const { exitCode, layer } = await runStep({
        ...this.container(prev),
        user: this.config.User || undefined,
        env: argEnv,
        network: opts.network ?? 'bridge',
        argv,
        output: opts.output ?? ((c) => process.stderr.write(c)),
        abort: this.b.interruption.signal,
      });
      this.b.checkInterrupted();
      if (exitCode !== 0) throw new TsrunError(`RUN ${JSON.stringify(argv)}: the command exited with status ${exitCode}`, 1);
      return this.b.nextState(prev, `RUN ${argv.join(' ')}`, layer);
    });
  }

  /** --chown's user and group as ids in the state's own passwd and group files (a bare user: the same number for the group, Docker's rule). */
  private async chownIds(spec: string, state: State): Promise<{ uid: number; gid: number }> {
    const img = this.b.stateImage(state);
    const dirs = state.layers.length ? (await imageLayers(this.b.reg.images, img)).map((l) => l.dir) : [];
    const [u, g] = spec.split(':', 2);
    const r = resolveUser(g === undefined ? u : spec, readMergedFile(dirs, '/etc/passwd'), readMergedFile(dirs, '/etc/group'));
    return { uid: r.uid, gid: g === undefined ? r.uid : r.gid };
  }

  private async copy(ins: Instruction, shown: string | undefined, used: Set<string>) {
    const k = ins.keyword;
    const words = ins.json ? ins.json.map((w) => expand(w, this.vars(), this.escape, used)) : this.words(ins.heredocs.length ? ins.args.split('\n')[0] : ins.args, used);
    if (words.length < 2) throw new TsrunError(`${k} needs a source and a destination (${k} SRC... DEST)`);
    const destWord = words.pop()!;
    const chmodText = ins.flags.get('chmod');
    if (chmodText !== undefined && !/^[0-7]{3,4}$/.test(chmodText)) throw new TsrunError(`${k} --chmod=${chmodText}: expected an octal mode such as 0755`);
    const chmod = chmodText === undefined ? undefined : parseInt(chmodText, 8);
    const prev = this.state;
    const chown = ins.flags.has('chown') ? await this.chownIds(expand(ins.flags.get('chown')!, this.vars(), this.escape, used), prev) : undefined;

    // Where the sources come from: the context, a stage, or an image.
    const fromText = ins.flags.get('from');
    let fromState: State | undefined;
    if (fromText !== undefined) {
      if (k === 'ADD') throw new TsrunError('ADD --from is not an option (COPY --from is)');
      const name = expand(fromText, this.vars(), this.escape, used);
      const st = stageNamed(this.b.dockerfile, name, this.stage.index);
      if (st) fromState = this.b.stageResult(st);
      else if (/^\d+$/.test(name) || this.b.dockerfile.stages.some((s) => s.name === name.toLowerCase())) throw new TsrunError(`COPY --from=${name}: a stage can copy only from a stage before it`);
      else fromState = await this.b.imageState(name, `COPY --from=${name}`);
    }
    for (const w of words) if (/^[a-z][a-z0-9+.-]*:\/\//i.test(w)) throw new TsrunError(`${k} ${w}: tsrun build does not fetch URLs (download the file into the build context, or fetch it in a RUN step)`);

    const dest = path.posix.resolve(this.config.WorkingDir || '/', destWord);
    const destRel = dest.slice(1);
    const destIsDir = destWord.endsWith('/') || destWord.endsWith('/.') || destWord === '.';
    const heredocs = new Map(ins.heredocs.map((h) => [h.name, h]));
    const owner = chown ?? { uid: 0, gid: 0 };
    const mode = (e: TreeEntry): TreeEntry => (chmod === undefined || e.header.type === 'symlink' ? e : { ...e, header: { ...e.header, mode: chmod } });

    const withSources = async <T>(fn: (root: SourceRoot) => Promise<T>): Promise<T> => {
      if (!fromState) return fn(this.b.context0());
      return withStateRoot(this.b.reg, this.b.stateImage(fromState), async (root) => fn({ fd: root.fd, label: `--from=${fromText}` }));
    };

    const inline = words.filter((w) => /^<<-?["']?[A-Za-z0-9_.-]+["']?$/.test(w)).map((w) => heredocs.get(w.replace(/^<<-?["']?|["']?$/g, '')));
    const patterns = words.filter((w) => !/^<<-?["']?[A-Za-z0-9_.-]+["']?$/.test(w));
    const inlineText = inline.map((h) => h && (h.quoted ? h.content : expand(h.content, this.vars(), this.escape)));
    const matchAll = (root: SourceRoot): Source[] => {
      const matched = patterns.flatMap((p) => matchSources(root, p, `${k} ${p}`));
      const many = matched.length + inline.length > 1 || patterns.some((p) => /[*?[]/.test(p));
      if (many && !destIsDir) throw new TsrunError(`${k}: with more than one source the destination must be a directory ending in "/" (${destWord})`);
      return matched;
    };
    const place = async (root: SourceRoot, matched: Source[]): Promise<State> => {
      const layer = await copyStep({
        ...this.container(prev),
        dirOwner: owner,
        plan: (destRoot: ContainerRoot): Placement[] => {
          const out: Placement[] = [];
          const fixed = () => owner;
          for (const h of inline) {
            if (!h) continue;
            const body = Buffer.from(h.quoted ? h.content : expand(h.content, this.vars(), this.escape));
            const name = destIsDir ? h.name : path.posix.basename(dest);
            const dir = destIsDir ? destRel : path.posix.dirname(dest).slice(1);
            out.push({ dir, owner: fixed, entries: () => oneFile(name, body, chmod ?? 0o644) });
          }
          for (const src of matched) {
            const srcName = path.posix.basename(`/${src.rel}`) || '.';
            if (src.st.isDirectory()) {
              out.push({ dir: destRel, owner: fixed, entries: () => mapEntries(sourceEntries(root, src, '.', () => owner), mode) });
              continue;
            }
            if (k === 'ADD' && src.st.isFile()) {
              const fd = openSource(root, src);
              let kind: ReturnType<typeof archiveKind>;
              try {
                kind = archiveKind(fd);
              } catch (e) {
                fs.closeSync(fd);
                throw e;
              }
              if (kind) {
                out.push({ dir: destRel, owner: chown ? fixed : (h) => ({ uid: h.uid ?? 0, gid: h.gid ?? 0 }), entries: () => closing(mapEntries(archiveEntries(fd, kind, src.rel), mode), fd) });
                continue;
              }
              fs.closeSync(fd);
            }
            const into = destIsDir || statInRoot(destRoot.fd, destRel)?.isDirectory();
            if (into) out.push({ dir: destRel, owner: fixed, entries: () => mapEntries(sourceEntries(root, src, srcName, () => owner), mode) });
            else out.push({ dir: path.posix.dirname(dest).slice(1), owner: fixed, entries: () => mapEntries(sourceEntries(root, src, path.posix.basename(dest), () => owner), mode) });
          }
          return out;
        },
      });
      return this.b.nextState(prev, `${k} ${[...patterns, ...inline.map((h) => `<<${h?.name}`)].join(' ')} ${dest}`, layer);
    };
    if (fromState) {
      // A stage's or an image's files are what its key says they are: the step is known without reading them.
      const key = hashOf(prev.key, ins.text, this.usedArgs(used), fromState.key, inlineText);
      this.state = await this.b.doStep(key, shown, () => withSources((root) => place(root, matchAll(root))));
    } else {
      const root = this.b.context0();
      const matched = matchAll(root);
      const key = hashOf(prev.key, ins.text, this.usedArgs(used), '', await sourcesHash(root, matched), inlineText);
      this.state = await this.b.doStep(key, shown, () => place(root, matched));
    }
  }
}

async function* emptyEntries(): AsyncGenerator<TreeEntry> {}

async function* oneFile(name: string, body: Buffer, mode: number): AsyncGenerator<TreeEntry> {
  yield {
    header: { name, type: 'file', mode, uid: 0, gid: 0, size: body.length, mtime: new Date(), linkname: '', uname: '', gname: '', devmajor: 0, devminor: 0 },
    body: (async function* () {
      yield body;
    })(),
  };
}

async function* mapEntries(entries: AsyncIterable<TreeEntry>, f: (e: TreeEntry) => TreeEntry): AsyncGenerator<TreeEntry> {
  for await (const e of entries) yield f(e);
}

async function* closing(entries: AsyncIterable<TreeEntry>, fd: number): AsyncGenerator<TreeEntry> {
  try {
    yield* entries;
  } finally {
    fs.closeSync(fd);
  }
}

/** The root of a container made from an image state (never started), for COPY --from. */
async function withStateRoot<T>(registry: Registry, image: Image, fn: (root: ContainerRoot) => Promise<T>): Promise<T> {
  const { info } = await createImageContainer({ image: 'build source', resolved: image, pull: 'never', storage: registry.images.root, root: registry.runtime.root, name: stepName(), args: ['/'], init: true, entrypoint: '', user: '0', network: 'none' });
  try {
    return await withContainerRoot(registry, info.id, fn);
  } finally {
    await registry.lock(info.id, async () => removeContainerFiles(registry, info));
  }
}

/** Reads the Dockerfile the options name. */
function dockerfileText(opts: BuildOptions): { text: string; label: string } {
  if (opts.text !== undefined) return { text: opts.text, label: 'Dockerfile' };
  const candidates = opts.file ? [opts.file] : [path.join(opts.context, 'Dockerfile'), path.join(opts.context, 'Containerfile')];
  for (const f of candidates) {
    try {
      return { text: fs.readFileSync(f, 'utf8'), label: path.basename(f) };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' || opts.file) throw new TsrunError(`read the Dockerfile ${f}: ${code}`);
    }
  }
  throw new TsrunError(`no Dockerfile in ${opts.context} (looked for Dockerfile and Containerfile; name one with -f)`);
}

export async function buildImage(opts: BuildOptions): Promise<BuildResult> {
  let st: fs.Stats;
  try {
    st = fs.statSync(opts.context);
  } catch (e) {
    throw new TsrunError(`build context ${opts.context}: ${(e as NodeJS.ErrnoException).code}`);
  }
  if (!st.isDirectory()) throw new TsrunError(`build context ${opts.context}: not a directory`);
  for (const t of opts.tags ?? []) {
    try {
      parseReference(t);
    } catch (e) {
      throw new TsrunError(`-t ${t}: ${(e as Error).message}`);
    }
  }
  const { text, label } = dockerfileText(opts);
  const df = parseDockerfile(text, label);
  const b = new Builder(df, opts, label);
  const onSignal = (sig: NodeJS.Signals) => b.interruption.abort(sig);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
  try {
    return await b.build();
  } finally {
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(sig, onSignal);
    b.close();
  }
}
