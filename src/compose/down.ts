// compose down: the project's containers stopped in reverse dependency
// order and removed, its networks removed (never an external one), and with
// -v its volumes, with --rmi its images.
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';
import { removeNetwork } from '../network/manage';
import { networksOf } from '../network/attach';
import { removeVolume, volumesOf } from '../volume/manage';
import { removeImages } from '../image/remove';
import { dependencies, startOrder } from './model';
import { LABEL, projectContainers } from './project';
import { imageName, removeOne, stopGrace, type ComposeContext } from './up';
import { stopContainer } from '../container/stop';
import { withExitClaim } from '../container/detached';

export interface DownOptions {
  volumes?: boolean;
  rmi?: 'local' | 'all';
  removeOrphans?: boolean;
  timeout?: number;
}

export async function down(ctx: ComposeContext, opts: DownOptions = {}) {
  const project = ctx.project;
  if (opts.rmi && !['local', 'all'].includes(opts.rmi)) throw new TsrunError(`--rmi ${opts.rmi}: use local or all`);
  // Levels of the dependency graph, dependents first: a service stops once all that depend on it have; a level's services stop together.
  const level = new Map<string, number>();
  for (const n of startOrder(project).reverse()) {
    const dependents = Object.values(project.services).filter((o) => dependencies(o).includes(n));
    level.set(n, Math.max(-1, ...dependents.map((o) => level.get(o.name) ?? 0)) + 1);
  }
  const levels = [...new Set(level.values())].sort((a, b) => a - b).map((l) => [...level].filter(([, v]) => v === l).map(([n]) => n));
  const all = projectContainers(ctx.registry, project.name, { oneoff: true });
  const known = (s: string) => !!project.services[s] || !!project.disabled[s];
  // One-off runs and orphans first, then each level's containers together.
  const groups = [
    all.filter((c) => c.oneoff || (!known(c.service) && opts.removeOrphans)),
    ...levels.map((names) => all.filter((c) => !c.oneoff && names.includes(c.service))),
    all.filter((c) => !c.oneoff && project.disabled[c.service]),
  ];
  const orphans = all.filter((c) => !c.oneoff && !known(c.service));
  if (orphans.length && !opts.removeOrphans) ctx.log(`WARN: found orphan containers (${orphans.map((c) => c.info.name).join(', ')}): run with --remove-orphans to remove them`);
  // Only the stops keep that order: a stopped level's removal (its network clean-up, mostly) runs while
  // the next level stops. Each container is claimed first: its clean-up is done here, not by a process
  // its monitor would start.
  const removals: Promise<void>[] = [];
  for (const g of groups) {
    const stops = g.map(
      (c) =>
        new Promise<void>((stopped, notStopped) => {
          const grace = opts.timeout ?? stopGrace(project.services[c.service]);
          const removal = withExitClaim(ctx.registry, c.info.id, async () => {
            await stopContainer(ctx.registry, c.info.id, grace, undefined, { cleanUp: false }).then(() => stopped(), (e) => {
              notStopped(e);
              throw e;
            });
            await removeOne(ctx, c, { volumes: opts.volumes, stopped: true });
          });
          removal.catch(notStopped); // a claim that could not be made: no stop either (a no-op after stopped())
          removals.push(removal);
        }),
    );
    const failedStop = (await Promise.allSettled(stops)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failedStop) {
      await Promise.allSettled(removals);
      throw failedStop.reason;
    }
  }
  const failed = (await Promise.allSettled(removals)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;

  const nets = networksOf(ctx.registry);
  for (const n of Object.values(project.networks)) {
    if (n.external) continue;
    const have = nets.find(n.name);
    if (!have || (have.labels[LABEL.project] ?? project.name) !== project.name) continue;
    await removeNetwork(ctx.registry, n.name);
    ctx.log(` Network ${n.name}  Removed`);
  }
  if (opts.volumes) {
    const vols = volumesOf(ctx.registry);
    for (const v of Object.values(project.volumes)) {
      if (v.external || !vols.find(v.name)) continue;
      await removeVolume(ctx.registry, v.name);
      ctx.log(` Volume ${v.name}  Removed`);
    }
  }
  if (opts.rmi) {
    const images = new Set<string>();
    for (const s of Object.values({ ...project.services, ...project.disabled })) if (opts.rmi === 'all' || !s.image) images.add(imageName(project, s));
    for (const name of images) {
      if (!ctx.registry.images.find(name)) continue;
      try {
        await removeImages(ctx.registry.images, [name], {});
        ctx.log(` Image ${name}  Removed`);
      } catch (e) {
        ctx.log(`WARN: image ${name} kept: ${(e as Error).message}`);
      }
    }
  }
  fs.rmSync(path.join(ctx.registry.runtime.root, 'compose', project.name), { recursive: true, force: true });
}
