// The library: everything the CLI does, callable from TypeScript.
export { createContainer, readBundleSpec, type CreateOptions, type Created } from './container/create';
export { startContainer } from './container/start';
export { killContainer } from './container/kill';
export { deleteContainer } from './container/delete';
export { containerState, listContainers } from './container/state';
export { runContainer, exitCodeOf, type RunOptions } from './container/run';
export { Store, DEFAULT_ROOT, type OciState, type Status } from './container/store';
export { compilePlan, type Plan, type HostFacts } from './plan/compile';
export { readHostFacts } from './plan/host-facts';
export { launch, LaunchedProcess } from './plan/launch';
export { defaultSpec } from './spec/default';
export { parseSpec, validateSpec } from './spec/validate';
export type * from './spec/types';
export { TsrunError, ConfigError } from './errors';
export { parseSignal } from './process/signals';
