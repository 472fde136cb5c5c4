/**
 * gons/reexec: run a registered action in a re-spawned copy of this program
 * inside other Linux namespaces, and get its result back over an IPC channel.
 * @packageDocumentation
 */
// For consumers whose `types` setting leaves @types/node out: the declarations use Node's types.
/// <reference types="node" preserve="true" />
export { type Action, type ActionHandle, type ActionParam, type ActionResult, register } from './registry';
export { checkAction, runAction } from './child';
export type { ActionOptions, NamespaceWorkerOptions, ReexecOptions, RunOptions } from './options';
export type { CompileCacheOption } from './compile-cache';
export { AbortError, ReexecError, type ReexecErrorCode } from './errors';
export type { CgroupsOption } from '../lib/cgroup';
// Calls reject with it when a switch fails: importable from where the calls are.
export { NamespaceSwitchError } from '../lib/errors';
export { type NamespaceWorker, openNamespaceWorker, runReexecAction } from './worker';
export type { Target } from '../lib/target';
export { type ContainerTarget, ContainerError } from '../lib/container';
export type { WorkerEndReason, WorkerExitListener } from './worker';
export type { Namespace, NamespaceType } from '../lib/namespaces';
export { TransferredFd, transferFd } from './handles';
export { type ConnectInOptions, type ListenInOptions, type Where, connectIn, listenIn, openIn } from './in-target';
export { type BindInOptions, type SocketInOptions, bindIn, socketConstants, socketIn } from './native-handles';
export {
  type NamespacePoolOptions, type PoolRunOptions, type PoolWhere, type PoolWorkerEndReason, type PoolWorkerExit, type PoolWorkerStart,
  type NamespacePool, createNamespacePool,
} from './pool';
