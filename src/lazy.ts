// Modules that cost start-up time (each pulls in streams and more) and that
// most commands never use: loaded on first use.
import type * as Crypto from 'node:crypto';
import type * as Tty from 'node:tty';
import type * as TarStream from 'tar-stream';

let cryptoModule: typeof Crypto | undefined;
let ttyModule: typeof Tty | undefined;

export function crypto(): typeof Crypto {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (cryptoModule ??= require('node:crypto') as typeof Crypto);
}

export function tty(): typeof Tty {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (ttyModule ??= require('node:tty') as typeof Tty);
}

export function tarStream(): typeof TarStream {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('tar-stream') as typeof TarStream;
}
