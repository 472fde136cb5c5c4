/** The registered actions, by name. Registration happens in parent and child alike. */
import { gonsError } from '../lib/errors';

/** An action run in a re-executed child; its result travels back to the parent. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Action<P = any, R = any> = (param: P) => R | Promise<R>;

const actions = new Map<string, Action>();

/** Brands the types an action handle carries; never set at run time. */
declare const actionTypes: unique symbol;

/**
 * A registered action, as `register()` returns it: its name, and for the
 * compiler its function's parameter type `P` and awaited result type `R`, so
 * that `runReexecAction(handle, { param })`, `worker.run(handle, param)` and
 * `pool.run(where, handle, param)` check `param` and resolve to `R`.
 * @template P The action's parameter type.
 * @template R The action's awaited result type.
 */
export interface ActionHandle<P = any, R = any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  /** The name the action was registered under. */
  readonly name: string;
  /** @internal Types only: never set. */
  readonly [actionTypes]?: (param: P) => R;
}

/** The parameter type of an action handle's function. */
export type ActionParam<H> = H extends ActionHandle<infer P, unknown> ? P : never;
/** The awaited result type of an action handle's function. */
export type ActionResult<H> = H extends ActionHandle<never, infer R> ? R : never;
/** A call's `param` argument: optional when the action's function takes none or an optional one. */
export type ParamArgs<P, Rest extends unknown[] = []> = undefined extends P ? [param?: P, ...rest: Rest] : [param: P, ...rest: Rest];

/** The handles `register()` made: only these stand for their names. */
const handles = new WeakSet<object>();

/** The name an action argument stands for: a handle's name; anything else as it is, for the name checks. */
export function actionName(action: unknown): unknown {
  return typeof action === 'object' && action !== null && handles.has(action) ? (action as ActionHandle).name : action;
}

/** Rejects names that are empty, contain `=` or NUL, or are not strings. */
export function checkActionName(name: unknown, where: string): asserts name is string {
  if (typeof name !== 'string' || name === '' || /[=\0]/.test(name)) {
    throw gonsError('ERR_INVALID_ARG_VALUE', `gons/reexec: ${where}: invalid action name ${JSON.stringify(name)}: must be a non-empty string without "=" or NUL`);
  }
}

/**
 * Registers an action under a unique name. Register actions at the top level
 * of the program (before `checkAction()`), so the re-executed child registers
 * them too. Returns a handle that calls take in place of the name, typed by
 * the function's parameter and awaited result.
 */
export function register<F extends Action>(name: string, action: F): ActionHandle<Parameters<F> extends [] ? undefined : Parameters<F>[0], Awaited<ReturnType<F>>> {
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
  const handle = Object.freeze({ name });
  handles.add(handle);
  return handle;
}

/** The action registered under `name`, if any. */
export function lookup(name: string): Action | undefined {
  return actions.get(name);
}

/** Throws unless `name` is a valid name with an action registered under it (in Go's wording). */
export function checkRegistered(name: unknown, where: string): asserts name is string {
  if (typeof name === 'string' && actions.has(name)) return; // its name was checked when it was registered
  checkActionName(name, where);
  if (!actions.has(name)) {
    throw gonsError('ERR_GONS_UNREGISTERED_ACTION', `gons/reexec: ${where}: attempting to re-execute into unregistered action ${JSON.stringify(name)}`, {
      action: name,
    });
  }
}
