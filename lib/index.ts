/**
 * gons: switch a (re-spawned) Node process into existing Linux namespaces
 * before Node starts, with a pre-init hook loaded by `LD_PRELOAD`.
 * @packageDocumentation
 */
export { type Namespace, type NamespaceType, namespaceTypes } from './namespaces';
export { NamespaceSwitchError } from './errors';
export { preinitPath } from './native';
export { status } from './status';
export { enterTargetRoot, leaveTargetRoot, hasTargetRoot } from './root';
export { namespaceEnv, validateNamespaces } from './validate';
export { type Target } from './target';
export { type ContainerTarget, ContainerError } from './container';
export { type NamespaceInfo, listNamespaces } from './discover';
