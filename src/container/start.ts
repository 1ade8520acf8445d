// start: let a created container exec its command (runtime-spec "start").
import fs = require('node:fs');
import { TsrunError } from '../errors';
import { Store, statusOf } from './store';

export function startContainer(id: string, root?: string) {
  const store = new Store(root);
  store.lock(id, () => {
    const rec = store.read(id);
    const status = statusOf(store, rec);
    if (status !== 'created') throw new TsrunError(`cannot start container "${id}": it is ${status}, and only a created container can start`);
    const fifo = store.fifo(id);
    let fd: number;
    try {
      // Non-blocking: with no reader (the process died) this fails at once with ENXIO.
      fd = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new TsrunError(`cannot start container "${id}": open ${fifo}: ${code}${code === 'ENXIO' ? ' (its process is no longer waiting)' : ''}`);
    }
    try {
      fs.writeSync(fd, '0');
    } finally {
      fs.closeSync(fd);
    }
    fs.unlinkSync(fifo);
  });
}
