// Bundles the CLI into one file (dist/cli.js): every `tsrun` command pays
// Node's module resolution and file reads at start-up, and one file instead
// of some sixty cuts that (npm run bench shows the CLI's start-up). The
// command itself, dist/tsrun.js, is scripts/cli-launcher.js with the
// bundle's hash, which names the bundle's V8 code cache.
import { build } from 'esbuild';
import crypto from 'node:crypto';
import fs from 'node:fs';

// commander requires child_process at load time, only to run external
// subcommands, which tsrun has none of; loading it (and net with it) costs
// about 8 ms of every command's start-up. Defer it until first use.
const lazyChildProcess = {
  name: 'lazy-child-process',
  setup(b) {
    b.onResolve({ filter: /^(node:)?child_process$/ }, (args) => (args.importer.includes('node_modules/commander') ? { path: 'lazy-child-process', namespace: 'tsrun' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'tsrun' }, () => ({
      contents: "let m; module.exports = new Proxy({}, { get: (_, k) => (m ??= require('node:child_process'))[k] });",
      loader: 'js',
    }));
  },
};

await build({
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/cli.js',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // The addon is found at run time next to the package, as from dist/*.js.
  external: ['*.node'],
  plugins: [lazyChildProcess],
  logLevel: 'warning',
});
const hash = crypto.createHash('sha256').update(fs.readFileSync('dist/cli.js')).digest('hex').slice(0, 16);
fs.writeFileSync('dist/tsrun.js', fs.readFileSync('scripts/cli-launcher.js', 'utf8').replace('@BUNDLE_HASH@', hash), { mode: 0o755 });
fs.chmodSync('dist/tsrun.js', 0o755);
// Caches of earlier bundles are never read again.
fs.rmSync('dist/.code-cache', { recursive: true, force: true });
