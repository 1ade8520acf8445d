// The tsrun command: a thin shell over the library, one file per verb.
import { Command, CommanderError } from 'commander';
import { EXIT_RUNTIME } from '../errors';
import { reportError } from './common';
import { log, logOptionsOf, openLog } from './log';
import { refuseUnsupportedGlobals } from './globals';
import * as create from './create';
import * as del from './delete';
import * as image from './image';
import * as images from './images';
import * as events from './events';
import * as exec from './exec';
import * as load from './load';
import * as pause from './pause';
import * as stats from './stats';
import * as update from './update';
import * as save from './save';
import * as importVerb from './import';
import * as rm from './rm';
import * as kill from './kill';
import * as list from './list';
import * as run from './run';
import * as spec from './spec';
import * as start from './start';
import * as state from './state';
import * as ps from './ps';
import * as logs from './logs';
import * as stop from './stop';
import * as wait from './wait';
import * as inspect from './inspect';
import * as top from './top';
import * as rename from './rename';
import * as exited from './exited';
import * as pull from './pull';
import * as tag from './tag';
import * as loginVerb from './login';
import * as push from './push';
import * as network from './network';
import * as volume from './volume';
import * as diff from './diff';
import * as commit from './commit';
import * as buildVerb from './build';
import * as compose from './compose';
import * as exportVerb from './export';
import * as cp from './cp';
import * as featuresVerb from './features';
import * as healthcheck from './healthcheck';

export function buildProgram(): Command {
  const program = new Command('tsrun')
    .description('a Linux container runtime: OCI bundles, namespaces and cgroups, without a daemon')
    .version(require('../../package.json').version)
    .option('--root <dir>', 'state directory for containers', process.env.TSRUN_ROOT ?? '/run/tsrun')
    .option('--storage <dir>', 'image store', process.env.TSRUN_STORAGE ?? '/var/lib/tsrun')
    .option('--trace', 'print each setup step, with what it does and why, as it runs')
    .option('--cni-path <dirs>', 'where CNI plugins are (colon-separated; default CNI_PATH, else /usr/lib/cni:/opt/cni/bin)')
    // runc's global options, which containerd and podman pass on every call.
    .option('--log <file>', 'also write errors (and with --debug, set-up steps) to this file, as runc does for containerd and podman')
    .option('--log-format <format>', 'the --log file\'s lines: text or json', 'text')
    .option('--debug', 'log each set-up step (to --log, else stderr)')
    .option('--systemd-cgroup', 'place the container\'s cgroups through systemd (refused: tsrun drives cgroupfs)')
    .option('--rootless <mode>', 'true, false or auto (runc\'s); tsrun runs as root, so only false and auto, as root, are taken')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({
      outputError: (str, write) => {
        const msg = str.replace(/^error: /, '').trimEnd();
        log('error', msg);
        write(`tsrun: ${msg}\n`);
      },
    });
  for (const verb of [run, exec, ps, logs, stop, start, kill, rm, wait, inspect, top, rename, images, image, pull, push, tag, loginVerb, network, volume, cp, diff, commit, buildVerb, compose, exportVerb, load, save, importVerb, spec, create, state, del, list, pause, update, stats, events, exited, healthcheck, featuresVerb]) verb.register(program);
  for (const c of program.commands) c.exitOverride();
  // The environment carries it to every CNI call, the monitor's clean-up too.
  program.hook('preAction', () => {
    const dirs = program.opts().cniPath as string | undefined;
    if (dirs) process.env.CNI_PATH = dirs;
    refuseUnsupportedGlobals(program.opts());
  });
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    const logTo = logOptionsOf(argv);
    // An empty --log= is no log, as runc takes it; the format is checked either way.
    if (logTo.file) openLog(logTo.file, logTo.format);
    await buildProgram().parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end here too, successfully.
      return e.exitCode === 0 ? 0 : EXIT_RUNTIME;
    }
    return reportError(e);
  }
}

if (require.main === module) {
  main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
