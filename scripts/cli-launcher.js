#!/usr/bin/env node
// tsrun's command: loads the CLI bundle (cli.js beside this file) with a V8
// code cache, so a command does not compile the whole bundle again at every
// start (about 40 ms of a 1.4 MB bundle here; Node 20 has no compile cache
// of its own). npm run build writes this file with the bundle's hash below.
//
// The cache is kept beside the bundle, where only who installed the bundle
// can write, and read only if that same owner wrote it and no one else can
// change it: a code cache is code. It is made by the first command that
// finds none (or one V8 rejects), at that command's exit, so it holds the
// functions a real command compiled; a command that cannot write it runs
// without.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const Module = require('node:module');

const BUNDLE_HASH = '@BUNDLE_HASH@';
const bundle = path.join(__dirname, 'cli.js');
const cacheDir = path.join(__dirname, '.code-cache');
const cacheFile = path.join(cacheDir, `cli-${BUNDLE_HASH}-v8-${process.versions.v8}-${process.arch}.bin`);

function trustedCache() {
  let fd;
  try {
    fd = fs.openSync(cacheFile, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const st = fs.fstatSync(fd);
    const owner = fs.statSync(bundle).uid;
    if (!st.isFile() || st.uid !== owner || (st.mode & 0o022) !== 0) return undefined;
    return fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

const source = fs.readFileSync(bundle, 'utf8');
const cachedData = trustedCache();
const script = new vm.Script(Module.wrap(source), { filename: bundle, cachedData });
if (!cachedData || script.cachedDataRejected) {
  process.once('exit', () => {
    try {
      fs.mkdirSync(cacheDir, { mode: 0o755 });
    } catch {
      // there already, or not ours to make: the write below says which
    }
    const tmp = `${cacheFile}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, script.createCachedData(), { mode: 0o644, flag: 'wx' });
      fs.renameSync(tmp, cacheFile);
    } catch {
      fs.rmSync(tmp, { force: true });
    }
  });
}
const mod = new Module(bundle, module);
mod.filename = bundle;
mod.paths = Module._nodeModulePaths(__dirname);
script.runInThisContext()(mod.exports, Module.createRequire(bundle), mod, bundle, __dirname);
mod.loaded = true;
mod.exports.main(process.argv).then((code) => {
  process.exitCode = code;
});
