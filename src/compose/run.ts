// compose run: a one-off container of a service (PROJECT-SERVICE-run-XXXX,
// labelled oneoff), its dependencies started first, the service's ports not
// published (Docker Compose's rule: they would clash with the service's own).
import crypto = require('node:crypto');
import { TsrunError } from '../errors';
import { runImage, runImageDetached } from '../container/run-image';
import { configHash, LABEL } from './project';
import { ensureImages, ensureNetworks, ensureVolumes, imageName, runOptionsOf, up, type ComposeContext } from './up';

export interface OneOffOptions {
  rm?: boolean;
  detach?: boolean;
  env?: string[];
  entrypoint?: string;
  name?: string;
  deps?: boolean;
  user?: string;
  workdir?: string;
  tty?: boolean;
  publish?: string[];
}

export async function runOneOff(ctx: ComposeContext, service: string, command: string[], opts: OneOffOptions): Promise<number> {
  const s = ctx.project.services[service];
  if (!s) throw new TsrunError(ctx.project.disabled[service] ? `service ${service} is in profiles that are not enabled: use --profile` : `no such service: ${service}`);
  const deps = Object.keys(s.depends_on).filter((d) => ctx.project.services[d]);
  if (opts.deps !== false && deps.length) await up(ctx, { services: deps });
  await ensureNetworks(ctx, Object.keys(s.networks));
  await ensureVolumes(ctx, s.volumes.filter((v) => v.type === 'volume' && v.source).map((v) => v.source!));
  await ensureImages(ctx, [s], {});
  const image = ctx.registry.images.get(imageName(ctx.project, s));
  const base = runOptionsOf(ctx, s, 1, configHash(ctx.project, s, image.record.id));
  const tty = opts.tty !== false && !!process.stdin.isTTY && !opts.detach;
  const run = {
    ...base,
    name: opts.name ?? `${ctx.project.name}-${service}-run-${crypto.randomBytes(6).toString('hex')}`,
    ...(command.length ? { args: command } : {}),
    ...(opts.entrypoint !== undefined ? { entrypoint: opts.entrypoint } : {}),
    env: [...(base.env ?? []), ...(opts.env ?? [])],
    user: opts.user ?? base.user,
    workdir: opts.workdir ?? base.workdir,
    rm: opts.rm,
    restart: undefined,
    tty,
    interactive: tty || base.interactive,
    labels: { ...base.labels, [LABEL.oneoff]: 'True', [LABEL.number]: '1' },
    networking: { ...base.networking, publish: opts.publish ?? [] },
    forwardSignals: true,
  };
  if (opts.detach) {
    const id = await runImageDetached(run);
    process.stdout.write(`${id}\n`);
    return 0;
  }
  return runImage(run);
}
