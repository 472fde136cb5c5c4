/** The registered actions, by name. Registration happens in parent and child alike. */
import { gonsError } from '../lib/errors';

/** An action run in a re-executed child; its result travels back to the parent. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Action<P = any, R = any> = (param: P) => R | Promise<R>;

const actions = new Map<string, Action>();

/** Rejects names that are empty, contain `=` or NUL, or are not strings. */
export function checkActionName(name: unknown, where: string): asserts name is string {
  if (typeof name !== 'string' || name === '' || /[=\0]/.test(name)) {
    throw gonsError('ERR_INVALID_ARG_VALUE', `gons/reexec: ${where}: invalid action name ${JSON.stringify(name)}: must be a non-empty string without "=" or NUL`);
  }
}

/**
 * Registers an action under a unique name. Register actions at the top level
 * of the program (before `checkAction()`), so the re-executed child registers
 * them too.
 */
export function register(name: string, action: Action): void {
  checkActionName(name, 'register');
  if (typeof action !== 'function') {
    throw gonsError('ERR_INVALID_ARG_TYPE', `gons/reexec: register: action "${name}" must be a function`);
  }
  if (actions.has(name)) {
    throw gonsError('ERR_GONS_DUPLICATE_ACTION', `gons/reexec: register: re-execution action ${JSON.stringify(name)} already registered`, {
      action: name,
    });
  }
  actions.set(name, action);
}

/** The action registered under `name`, if any. */
export function lookup(name: string): Action | undefined {
  return actions.get(name);
}

/** Throws unless `name` is a valid name with an action registered under it (in Go's wording). */
export function checkRegistered(name: unknown, where: string): asserts name is string {
  checkActionName(name, where);
  if (!actions.has(name)) {
    throw gonsError('ERR_GONS_UNREGISTERED_ACTION', `gons/reexec: ${where}: attempting to re-execute into unregistered action ${JSON.stringify(name)}`, {
      action: name,
    });
  }
}
