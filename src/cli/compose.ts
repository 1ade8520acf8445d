// compose: multi-container applications from a compose file, thin over
// src/compose/ (which is over the same library as every other verb).
import type { Command } from 'commander';
import YAML = require('yaml');
import { TsrunError } from '../errors';
import { loadProject, type Project } from '../compose/model';
import { projectContainers, type ProjectContainer } from '../compose/project';
import { buildService, ensureImages, selected, stopGrace, up, waitReady, type ComposeContext } from '../compose/up';
import { down } from '../compose/down';
import { summarize } from '../container/inspect';
import { readLogs, parseSince, type LogEntry } from '../container/logs';
import { execInContainer } from '../container/exec';
import { killManaged, restartContainer, startStopped, stopContainer } from '../container/stop';
import { pauseContainer, resumeContainer } from '../container/resources';
import { removeContainer } from '../container/remove';
import { topContainer } from '../container/top';
import { parseSignal } from '../process/signals';
import { readNetworkState } from '../network/attach';
import { formatBinding } from '../network/ports';
import { globals, printTable, registryOf } from './common';

const collect = (v: string, prev: string[] = []) => [...prev, v];

interface ComposeFlags {
  file?: string[];
  projectName?: string;
  projectDirectory?: string;
  envFile?: string[];
  profile?: string[];
}

/** The project the group's options name, with the store and a progress sink. */
function contextOf(cmd: Command): ComposeContext {
  let c: Command | null = cmd;
  while (c && c.name() !== 'compose') c = c.parent;
  const f = (c?.opts() ?? {}) as ComposeFlags;
  const project = loadProject({ files: f.file, projectName: f.projectName, projectDirectory: f.projectDirectory, envFiles: f.envFile, profiles: f.profile });
  return { project, registry: registryOf(cmd), log: (l) => process.stderr.write(`${l}\n`), buildOutput: (b) => process.stderr.write(b) };
}

function containersOf(ctx: ComposeContext, services: string[], opts: { all?: boolean; oneoff?: boolean } = {}): ProjectContainer[] {
  for (const s of services) if (!ctx.project.services[s] && !ctx.project.disabled[s]) throw new TsrunError(`no such service: ${s}`);
  return projectContainers(ctx.registry, ctx.project.name, { services, oneoff: opts.oneoff });
}

function firstOf(ctx: ComposeContext, service: string, index = 1): ProjectContainer {
  const c = containersOf(ctx, [service]).find((x) => x.number === index);
  if (!c) throw new TsrunError(`service ${service} has no container ${index} (compose up makes them)`);
  return c;
}

const colours = [36, 33, 32, 35, 34, 31];

/** Each container's lines after its name, coloured on a terminal, as Docker Compose prints them. */
async function printLogs(ctx: ComposeContext, list: ProjectContainer[], opts: { follow?: boolean; tail?: number; since?: Date; timestamps?: boolean; noPrefix?: boolean }) {
  const width = Math.max(0, ...list.map((c) => c.info.name.length));
  const tty = process.stdout.isTTY;
  await Promise.all(
    list.map((c, i) => {
      const name = c.info.name.padEnd(width);
      const prefix = opts.noPrefix ? '' : tty ? `\x1b[${colours[i % colours.length]}m${name} |\x1b[0m ` : `${name} | `;
      return readLogs(ctx.registry, c.info.id, { follow: opts.follow, tail: opts.tail, since: opts.since }, (e: LogEntry) => {
        const text = e.text.endsWith('\n') ? e.text : `${e.text}\n`;
        process.stdout.write(`${prefix}${opts.timestamps ? `${e.time} ` : ''}${text}`);
      });
    }),
  );
}

/** Empty lists and mappings left out, as Docker Compose's config prints the model. */
function compact(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(compact);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if ((Array.isArray(x) && !x.length) || (x && typeof x === 'object' && !Array.isArray(x) && !Object.keys(x).length && k !== 'networks')) continue;
      out[k] = compact(x);
    }
    return out;
  }
  return v;
}

function modelOf(p: Project) {
  const services = Object.fromEntries(Object.entries(p.services).map(([k, { name: _name, ...s }]) => [k, compact(s)]));
  return { name: p.name, services, networks: p.networks, volumes: p.volumes, ...(Object.keys(p.secrets).length ? { secrets: p.secrets } : {}), ...(Object.keys(p.configs).length ? { configs: p.configs } : {}) };
}

function tailOf(v: string): number | undefined {
  if (v === 'all') return undefined;
  if (!/^\d+$/.test(v)) throw new TsrunError(`--tail ${v}: give a number of lines or "all"`);
  return Number(v);
}

export function register(program: Command) {
  const compose = program
    .command('compose')
    .description('run multi-container applications from a compose file (compose.yaml)')
    .option('-f, --file <file>', 'a compose file (repeatable, merged in order; - for stdin)', collect)
    .option('-p, --project-name <name>', 'the project name (default: the name key, else the directory\'s name)')
    .option('--project-directory <dir>', 'the directory relative paths start from (default: the first file\'s)')
    .option('--env-file <file>', 'variables for interpolation (default: .env in the project directory)', collect)
    .option('--profile <name>', 'enable a profile (repeatable)', collect);

  compose
    .command('up')
    .description('make and start the services\' containers: unchanged ones are left running, changed ones recreated')
    .argument('[service...]')
    .option('-d, --detach', 'leave them running in the background')
    .option('--build', 'build images before starting')
    .option('--no-build', 'do not build missing images')
    .option('--force-recreate', 'recreate containers even if nothing changed')
    .option('--no-recreate', 'leave existing containers as they are, even if changed')
    .option('--no-deps', 'do not start the services the named ones depend on')
    .option('--scale <service=n>', 'run N containers of a service (over deploy.replicas)', collect)
    .option('--remove-orphans', 'remove containers of services no longer in the file')
    .option('--pull <policy>', 'always, missing or never')
    .option('--abort-on-container-exit', 'without -d: stop everything when any container stops')
    .option('--wait', 'wait until every container runs, and is healthy where it has a health check (implies -d)')
    .option('--wait-timeout <seconds>', 'with --wait: give up after this long')
    .action(async (services: string[], opts: { detach?: boolean; build?: boolean; forceRecreate?: boolean; recreate?: boolean; deps?: boolean; scale?: string[]; removeOrphans?: boolean; pull?: string; abortOnContainerExit?: boolean; wait?: boolean; waitTimeout?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const scale: Record<string, number> = {};
      for (const s of opts.scale ?? []) {
        const m = /^([^=]+)=(\d+)$/.exec(s);
        if (!m) throw new TsrunError(`--scale ${s}: use SERVICE=N`);
        scale[m[1]] = Number(m[2]);
      }
      if (opts.pull && !['always', 'missing', 'never'].includes(opts.pull)) throw new TsrunError(`--pull ${opts.pull}: use always, missing or never`);
      if (opts.forceRecreate && opts.recreate === false) throw new TsrunError('--force-recreate and --no-recreate cannot be used together');
      if (opts.waitTimeout !== undefined && (!opts.wait || !/^\d+$/.test(opts.waitTimeout))) throw new TsrunError(`--wait-timeout ${opts.waitTimeout}: give a whole number of seconds, with --wait`);
      const ids = await up(ctx, { services, build: opts.build, noBuild: opts.build === false, forceRecreate: opts.forceRecreate, noRecreate: opts.recreate === false, noDeps: opts.deps === false, scale, removeOrphans: opts.removeOrphans, pull: opts.pull as 'always' | undefined });
      if (opts.wait) {
        const deadline = opts.waitTimeout !== undefined ? Date.now() + Number(opts.waitTimeout) * 1000 : undefined;
        const list = projectContainers(ctx.registry, ctx.project.name).filter((c) => ids.includes(c.info.id));
        await Promise.all(list.map(async (c) => {
          await waitReady(ctx, c, `up --wait: service ${c.service}`, { deadline });
          process.stderr.write(`Container ${c.info.name}  ${ctx.registry.read(c.info.id).config.healthcheck ? 'Healthy' : 'Running'}\n`);
        }));
        return;
      }
      if (opts.detach) return;
      // Attached: every container's log until they all stop; Ctrl-C stops them.
      const list = projectContainers(ctx.registry, ctx.project.name).filter((c) => ids.includes(c.info.id));
      let stopping = false;
      const stopAll = async () => {
        if (stopping) return;
        stopping = true;
        process.stderr.write('Gracefully stopping... (press Ctrl+C again to force)\n');
        await Promise.all(list.map((c) => stopContainer(ctx.registry, c.info.id, stopGrace(ctx.project.services[c.service])).catch(() => false)));
      };
      let interrupts = 0;
      const onSignal = () => {
        if (++interrupts > 1) process.exit(130);
        void stopAll();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        if (opts.abortOnContainerExit) {
          const watchers = list.map(async (c) => {
            await readLogs(ctx.registry, c.info.id, { follow: true, tail: 0 }, () => {});
            await stopAll();
          });
          await Promise.all([printLogs(ctx, list, { follow: true }), ...watchers]);
        } else await printLogs(ctx, list, { follow: true });
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      if (stopping) process.exitCode = 130;
    });

  compose
    .command('down')
    .description('stop and remove the project\'s containers and networks (-v: its volumes too)')
    .option('-v, --volumes', 'remove the project\'s named volumes and containers\' anonymous volumes')
    .option('--rmi <which>', 'remove images: local (those built without an image name) or all')
    .option('--remove-orphans', 'remove containers of services no longer in the file')
    .option('-t, --timeout <seconds>', 'seconds to wait for each container to stop')
    .action(async (opts: { volumes?: boolean; rmi?: string; removeOrphans?: boolean; timeout?: string }, cmd: Command) => {
      if (opts.timeout !== undefined && !/^\d+$/.test(opts.timeout)) throw new TsrunError(`--timeout ${opts.timeout}: give whole seconds`);
      await down(contextOf(cmd), { volumes: opts.volumes, rmi: opts.rmi as 'local' | undefined, removeOrphans: opts.removeOrphans, timeout: opts.timeout === undefined ? undefined : Number(opts.timeout) });
    });

  compose
    .command('ps')
    .description('list the project\'s containers')
    .argument('[service...]')
    .option('-a, --all', 'stopped containers too')
    .option('-q, --quiet', 'only ids')
    .option('--services', 'only service names')
    .option('--format <format>', 'table or json', 'table')
    .action((services: string[], opts: { all?: boolean; quiet?: boolean; services?: boolean; format: string }, cmd: Command) => {
      if (opts.format !== 'table' && opts.format !== 'json') throw new TsrunError(`unknown --format "${opts.format}": use table or json`);
      const ctx = contextOf(cmd);
      const rows = containersOf(ctx, services, { oneoff: true })
        .map((c) => ({ c, s: summarize(ctx.registry, c.info) }))
        .filter(({ s }) => opts.all || ['running', 'paused', 'restarting'].includes(s.status));
      if (opts.services) return void process.stdout.write([...new Set(rows.map((r) => r.c.service))].map((s) => `${s}\n`).join(''));
      if (opts.quiet) return void process.stdout.write(rows.map((r) => `${r.c.info.id}\n`).join(''));
      if (opts.format === 'json') {
        const out = rows.map(({ c, s }) => ({ ID: c.info.id, Name: c.info.name, Image: c.info.image, Command: s.command, Project: ctx.project.name, Service: c.service, Created: c.info.created, State: s.status, Health: s.health ?? '', Status: s.statusText, ExitCode: s.exitCode, Labels: c.info.config.labels, Publishers: (readNetworkState(ctx.registry, c.info.id)?.ports ?? []).map((p) => ({ URL: p.hostIp || '0.0.0.0', TargetPort: p.containerPort, PublishedPort: p.hostPort, Protocol: p.protocol })) }));
        return void process.stdout.write(out.map((o) => `${JSON.stringify(o)}\n`).join(''));
      }
      printTable([['NAME', 'IMAGE', 'COMMAND', 'SERVICE', 'CREATED', 'STATUS', 'PORTS'], ...rows.map(({ c, s }) => [c.info.name, c.info.image, s.command.length > 30 ? `${s.command.slice(0, 29)}…` : s.command, c.service, c.info.created.slice(0, 19).replace('T', ' '), s.statusText, s.ports])]);
    });

  compose
    .command('logs')
    .description('the services\' output, each line after its container\'s name')
    .argument('[service...]')
    .option('-f, --follow', 'keep printing new output')
    .option('-t, --timestamps', 'show when each line was written')
    .option('-n, --tail <lines>', 'only the last N lines of each container', 'all')
    .option('--since <time>', 'only lines since a time or a duration back (10m)')
    .option('--no-log-prefix', 'without the container names')
    .action(async (services: string[], opts: { follow?: boolean; timestamps?: boolean; tail: string; since?: string; logPrefix?: boolean }, cmd: Command) => {
      const ctx = contextOf(cmd);
      await printLogs(ctx, containersOf(ctx, services), { follow: opts.follow, tail: tailOf(opts.tail), since: opts.since ? parseSince(opts.since) : undefined, timestamps: opts.timestamps, noPrefix: opts.logPrefix === false });
    });

  compose
    .command('exec')
    .description('run a command in a service\'s running container')
    .argument('<service>')
    .argument('<command...>')
    .option('-T, --no-tty', 'no terminal (the default when stdin is not one)')
    .option('-e, --env <NAME=value>', 'set an environment variable', collect)
    .option('-u, --user <user>', 'user to run as')
    .option('-w, --workdir <dir>', 'working directory')
    .option('--index <n>', 'which replica (default 1)', '1')
    .option('-d, --detach', 'do not wait for the command')
    .passThroughOptions()
    .action(async (service: string, command: string[], opts: { tty?: boolean; env?: string[]; user?: string; workdir?: string; index: string; detach?: boolean }, cmd: Command) => {
      const ctx = contextOf(cmd);
      if (!/^\d+$/.test(opts.index)) throw new TsrunError(`--index ${opts.index}: give a replica number`);
      const c = firstOf(ctx, service, Number(opts.index));
      if (!ctx.registry.live(c.info).running) throw new TsrunError(`service ${service}: container ${c.info.name} is not running`);
      const tty = opts.tty !== false && !!process.stdin.isTTY && !opts.detach;
      process.exitCode = await execInContainer({ id: c.info.id, root: globals(cmd).root, args: command, env: opts.env, user: opts.user, cwd: opts.workdir, detach: opts.detach, forwardSignals: true, terminal: tty ? { stdin: true } : undefined });
    });

  const simple = (verb: string, description: string, fn: (ctx: ComposeContext, c: ProjectContainer, opts: Record<string, string | undefined>) => Promise<unknown>, extra?: (c: Command) => Command) => {
    let c = compose.command(verb).description(description).argument('[service...]');
    if (extra) c = extra(c);
    c.action(async (services: string[], opts: Record<string, string | undefined>, cmd: Command) => {
      const ctx = contextOf(cmd);
      const list = containersOf(ctx, services);
      // Stopping goes against the start order, starting with it.
      const order = selected(ctx.project, undefined);
      const rank = (s: string) => order.indexOf(s);
      list.sort((a, b) => (['stop', 'kill', 'pause', 'rm'].includes(verb) ? rank(b.service) - rank(a.service) : rank(a.service) - rank(b.service)) || a.number - b.number);
      for (const x of list) {
        await fn(ctx, x, opts);
        process.stderr.write(` Container ${x.info.name}  ${{ start: 'Started', stop: 'Stopped', restart: 'Restarted', pause: 'Paused', unpause: 'Unpaused', kill: 'Killed', rm: 'Removed' }[verb]}\n`);
      }
    });
  };
  const seconds = (v: string | undefined, s: ProjectContainer, ctx: ComposeContext) => {
    if (v !== undefined && !/^\d+$/.test(v)) throw new TsrunError(`--timeout ${v}: give whole seconds`);
    return v === undefined ? stopGrace(ctx.project.services[s.service]) : Number(v);
  };
  simple('start', 'start the services\' existing containers', (ctx, c) => startStopped(ctx.registry, c.info.id));
  simple('stop', 'stop the services\' containers', (ctx, c, o) => stopContainer(ctx.registry, c.info.id, seconds(o.timeout, c, ctx)), (c) => c.option('-t, --timeout <seconds>', 'seconds before SIGKILL'));
  simple('restart', 'restart the services\' containers', (ctx, c, o) => restartContainer(ctx.registry, c.info.id, seconds(o.timeout, c, ctx)), (c) => c.option('-t, --timeout <seconds>', 'seconds before SIGKILL'));
  simple('pause', 'freeze the services\' containers', (ctx, c) => pauseContainer(c.info.id, ctx.registry.runtime.root));
  simple('unpause', 'thaw the services\' containers', (ctx, c) => resumeContainer(c.info.id, ctx.registry.runtime.root));
  simple('kill', 'send a signal to the services\' containers', (ctx, c, o) => killManaged(ctx.registry, c.info.id, parseSignal(o.signal ?? 'SIGKILL')), (c) => c.option('-s, --signal <signal>', 'the signal', 'SIGKILL'));
  simple(
    'rm',
    'remove the services\' stopped containers',
    async (ctx, c, o) => {
      if (ctx.registry.live(c.info).running && !o.stop) throw new TsrunError(`container ${c.info.name} is running: stop it first, or use rm -s`);
      if (o.stop) await stopContainer(ctx.registry, c.info.id, stopGrace(ctx.project.services[c.service]));
      await removeContainer(ctx.registry, c.info.id, { force: true, volumes: !!o.volumes });
    },
    (c) => c.option('-s, --stop', 'stop running ones first').option('-v, --volumes', 'their anonymous volumes too').option('-f, --force', 'do not ask (tsrun never asks)'),
  );

  compose
    .command('run')
    .description('run a one-off command in a new container of a service')
    .argument('<service>')
    .argument('[command...]')
    .option('--rm', 'remove the container when it exits')
    .option('-d, --detach', 'run in the background and print its id')
    .option('-e, --env <NAME=value>', 'set an environment variable', collect)
    .option('--entrypoint <cmd>', 'replace the entrypoint')
    .option('--name <name>', 'the container\'s name')
    .option('--no-deps', 'do not start the services it depends on')
    .option('-u, --user <user>', 'user to run as')
    .option('-w, --workdir <dir>', 'working directory')
    .option('-T, --no-tty', 'no terminal')
    .option('-p, --publish <port>', 'publish a port (the service\'s own ports are not published)', collect)
    .passThroughOptions()
    .action(async (service: string, command: string[], opts: { rm?: boolean; detach?: boolean; env?: string[]; entrypoint?: string; name?: string; deps?: boolean; user?: string; workdir?: string; tty?: boolean; publish?: string[] }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const { runOneOff } = await import('../compose/run');
      process.exitCode = await runOneOff(ctx, service, command, opts);
    });

  compose
    .command('config')
    .description('print the resolved model: files merged, variables interpolated, short syntax made long')
    .option('--format <format>', 'yaml or json', 'yaml')
    .option('--services', 'only the services\' names')
    .option('--volumes', 'only the volumes\' names')
    .option('--networks', 'only the networks\' names')
    .option('-q, --quiet', 'only check the files')
    .action((opts: { format: string; services?: boolean; volumes?: boolean; networks?: boolean; quiet?: boolean }, cmd: Command) => {
      if (opts.format !== 'yaml' && opts.format !== 'json') throw new TsrunError(`unknown --format "${opts.format}": use yaml or json`);
      const { project } = contextOf(cmd);
      if (opts.quiet) return;
      if (opts.services) return void process.stdout.write(Object.keys(project.services).map((s) => `${s}\n`).join(''));
      if (opts.volumes) return void process.stdout.write(Object.keys(project.volumes).map((s) => `${s}\n`).join(''));
      if (opts.networks) return void process.stdout.write(Object.keys(project.networks).map((s) => `${s}\n`).join(''));
      const model = modelOf(project);
      process.stdout.write(opts.format === 'json' ? `${JSON.stringify(model, null, 2)}\n` : YAML.stringify(model));
    });

  compose
    .command('pull')
    .description('pull the services\' images')
    .argument('[service...]')
    .action(async (services: string[], _opts: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      await ensureImages(ctx, selected(ctx.project, services.length ? services : undefined, true).map((n) => ctx.project.services[n]).filter((s) => s.image), { noBuild: true, pull: 'always' });
    });

  compose
    .command('build')
    .description('build the services that have a build section')
    .argument('[service...]')
    .action(async (services: string[], _opts: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      for (const n of selected(ctx.project, services.length ? services : undefined, true)) if (ctx.project.services[n].build) await buildService(ctx, ctx.project.services[n]);
    });

  compose
    .command('top')
    .description('the processes of the services\' running containers')
    .argument('[service...]')
    .action((services: string[], _opts: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      for (const c of containersOf(ctx, services)) {
        if (!ctx.registry.live(c.info).running) continue;
        const rows = topContainer(ctx.registry, c.info.id);
        process.stdout.write(`${c.info.name}\n`);
        printTable([['UID', 'PID', 'PPID', 'CMD'], ...rows.map((r) => [String(r.uid), String(r.pid), String(r.ppid), r.cmd])]);
        process.stdout.write('\n');
      }
    });

  compose
    .command('images')
    .description('the images the project\'s containers run')
    .argument('[service...]')
    .action((services: string[], _opts: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const rows = containersOf(ctx, services).map((c) => [c.info.name, c.info.image, c.info.imageId.replace(/^sha256:/, '').slice(0, 12)]);
      printTable([['CONTAINER', 'IMAGE', 'IMAGE ID'], ...rows]);
    });

  compose
    .command('port')
    .description('the host address a service\'s container port is published on')
    .argument('<service>')
    .argument('<port>', 'PORT[/PROTOCOL]')
    .option('--index <n>', 'which replica (default 1)', '1')
    .action((service: string, port: string, opts: { index: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const m = /^(\d+)(?:\/(tcp|udp))?$/.exec(port);
      if (!m) throw new TsrunError(`port ${port}: use PORT or PORT/tcp|udp`);
      const c = firstOf(ctx, service, Number(opts.index));
      const b = (readNetworkState(ctx.registry, c.info.id)?.ports ?? []).find((p) => p.containerPort === Number(m[1]) && p.protocol === (m[2] ?? 'tcp'));
      if (!b) throw new TsrunError(`service ${service}: port ${port} is not published`);
      process.stdout.write(`${formatBinding(b).split('->')[0]}\n`);
    });

}
