import { NamespaceSwitchError } from './errors';
import { type NamespaceType, namespaceKinds, namespaceTypes } from './namespaces';
import { addon, type HookState } from './native';

let state: HookState | null | undefined;

/** The hook's record of what it did at startup; null when it was not preloaded. */
export function hookState(): HookState | null {
  if (state === undefined) state = addon.hookState();
  return state;
}

/** Reads the hook's record again: the late pid namespace join changes it. */
export function refreshHookState(): void {
  state = undefined;
}

/**
 * In a process started with the pre-init hook preloaded: the error that
 * stopped the namespace switching at startup, or null when all went well (or
 * the hook was not loaded), like Go's `gons.Status()`.
 */
export function status(): NamespaceSwitchError | null {
  const st = hookState();
  if (!st || st.errno === 0) return null;
  return new NamespaceSwitchError(st.message, st);
}

/** The namespaces the hook joined at startup (from its state), in gons's order; for debug output. */
export function joinedTypes(): NamespaceType[] {
  const joined = hookState()?.joined ?? 0;
  return namespaceTypes.filter((type) => (joined & namespaceKinds[type].flag) !== 0);
}
