// rename: a container's name moves; the new one is claimed first, so a
// name taken meanwhile fails cleanly and the old one stays.
import fs = require('node:fs');
import type { Registry } from './registry';
import { networksOf, readNetworkState, refreshHosts } from '../network/attach';

export async function renameContainer(registry: Registry, id: string, newName: string): Promise<void> {
  await registry.lock(id, () => {
    const info = registry.read(id);
    if (info.name === newName) return;
    registry.claimName(newName, id);
    const old = info.name;
    info.name = newName;
    registry.write(info);
    const configFile = registry.file(id, 'config.json');
    try {
      const spec = JSON.parse(fs.readFileSync(configFile, 'utf8'));
      spec.annotations = { ...spec.annotations, 'tsrun.name': newName };
      fs.writeFileSync(configFile + '.tmp', JSON.stringify(spec, null, 2) + '\n', { mode: 0o600 });
      fs.renameSync(configFile + '.tmp', configFile);
    } catch {
      /* the name in config.json is informational */
    }
    registry.releaseName(old, id);
  });
  // Its peers on user networks know it by name: their /etc/hosts follow the new one.
  const joined = new Set((readNetworkState(registry, id)?.attachments ?? []).map((a) => a.network));
  if (joined.size) await refreshHosts(registry, networksOf(registry).list().filter((n) => joined.has(n.name)));
}
