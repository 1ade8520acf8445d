// Bundles the CLI into one file (dist/tsrun.js): every `tsrun` command pays
// Node's module resolution and file reads at start-up, and one file instead
// of some sixty cuts that (npm run bench shows the CLI's start-up).
import { build } from 'esbuild';
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
  outfile: 'dist/tsrun.js',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // The addon is found at run time next to the package, as from dist/*.js.
  external: ['*.node'],
  plugins: [lazyChildProcess],
  banner: { js: '#!/usr/bin/env node' },
  logLevel: 'warning',
});
fs.chmodSync('dist/tsrun.js', 0o755);
