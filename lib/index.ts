/**
 * gons: switch a (re-spawned) Node process into existing Linux namespaces
 * before Node starts, with a pre-init hook loaded by `LD_PRELOAD`.
 * @packageDocumentation
 */
// For consumers whose `types` setting leaves @types/node out: the declarations use Node's types.
/// <reference types="node" preserve="true" />
export { type Namespace, type NamespaceType, namespaceTypes } from './namespaces';
export { type ContainerErrorCode, type GonsErrorCode, NamespaceSwitchError } from './errors';
export { preinitPath } from './native';
export { status } from './status';
export { enterTargetRoot, leaveTargetRoot, hasTargetRoot } from './root';
export { joinPidNamespace } from './pid';
export { namespaceEnv, validateNamespaces } from './validate';
export { type Target, type TargetRisk } from './target';
export { type ContainerTarget, ContainerError } from './container';
export { type NamespaceInfo, listNamespaces } from './discover';
