/**
 * What the tests reach below the public API: plans they change before a
 * start (a holder that dies in between, a hook that is not preloaded), and
 * children they drive by hand over the raw channel. Not exported by the package.
 */
export { planReexec } from './plan';
export { startProcess } from './process';
export { childOf, processOf, startWorker } from './worker';
export { type WorkerOpener, createPoolWith } from './pool';
