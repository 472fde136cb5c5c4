/**
 * gons/reexec: run a registered action in a re-spawned copy of this program
 * inside other Linux namespaces, and get its result back over an IPC channel.
 * @packageDocumentation
 */
export { type Action, register } from './registry';
export { checkAction, runAction } from './child';
export type { NamespaceWorkerOptions, ReexecOptions, RunOptions } from './plan';
export type { CompileCacheOption } from './compile-cache';
export { AbortError, ReexecError } from './errors';
// Calls reject with it when a switch fails: importable from where the calls are.
export { NamespaceSwitchError } from '../lib/errors';
export { NamespaceWorker, openNamespaceWorker, runReexecAction } from './worker';
export type { Target } from '../lib/target';
export type { Namespace, NamespaceType } from '../lib/namespaces';
export { TransferredFd, transferFd } from './handles';
export { type ConnectInOptions, type ListenInOptions, type Where, connectIn, listenIn, openIn } from './in-target';
export { type BindInOptions, type SocketInOptions, bindIn, socketConstants, socketIn } from './native-handles';
export {
  type NamespacePoolOptions, type PoolRunOptions, type PoolWhere, type PoolWorkerEndReason, type PoolWorkerExit, type PoolWorkerStart,
  NamespacePool, createNamespacePool,
} from './pool';
