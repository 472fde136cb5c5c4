/** The messages on the channel. */
import { gonsError } from '../lib/errors';
import { encodeFrame } from './channel';
import type { WireError } from './errors';
import type { HandleSlot } from './handles';

/**
 * A request for no action: the child replies with its pid once its namespace
 * switch is known to have succeeded. No registered name can look like it.
 */
export const READY_ACTION = '\0ready';

/** Parent to child: run `action` with `param`. */
export interface Request {
  id: number;
  action: string;
  param: unknown;
}

/**
 * Child to parent: the outcome of request `id`; `handles` says where the fds
 * sent just before it go in `result`. A failed namespace switch is an error
 * named `NamespaceSwitchError`.
 */
export type Reply =
  | { id: number; result: unknown; handles?: HandleSlot[] }
  | { id: number; error: WireError };

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
const isOptional = (v: unknown, ...types: string[]) => v === undefined || types.includes(typeof v);

function hasOnly(o: Record<string, unknown>, keys: readonly string[]): boolean {
  return Object.keys(o).every((k) => keys.includes(k));
}

const wireErrorKeys = ['name', 'message', 'stack', 'code', 'errno', 'syscall', 'path', 'envVar'] as const;

function isWireError(e: unknown): boolean {
  return isPlainObject(e) && hasOnly(e, wireErrorKeys) && typeof e.name === 'string' && typeof e.message === 'string' &&
    isOptional(e.stack, 'string') && isOptional(e.envVar, 'string') && ['code', 'errno', 'syscall', 'path'].every((k) => isOptional(e[k], 'string', 'number')) &&
    (e.name !== 'NamespaceSwitchError' || isSwitchError(e));
}

/** A failed switch names the variable, path and call at fault and a (negative) errno. */
function isSwitchError(e: Record<string, unknown>): boolean {
  return ['envVar', 'path', 'syscall'].every((k) => typeof e[k] === 'string') && Number.isSafeInteger(e.errno) && (e.errno as number) < 0;
}

/**
 * Checks that a decoded frame from a child is a well-formed reply: a plain
 * object with an integer id and exactly one of result or error (strings and
 * numbers only). A child in an untrusted container may send
 * anything; the caller turns `undefined` into `ERR_GONS_PROTOCOL`.
 */
export function asReply(msg: unknown): Reply | undefined {
  if (!isPlainObject(msg) || !Number.isSafeInteger(msg.id)) return undefined;
  const keys = Object.keys(msg);
  // handles: only beside a result; checked where the fds are taken (reexec/handles.ts checkSlots).
  if ('result' in msg && 'handles' in msg) return keys.length === 3 ? (msg as Reply) : undefined;
  if (keys.length !== 2) return undefined;
  if ('result' in msg) return msg as Reply;
  if ('error' in msg) return isWireError(msg.error) ? (msg as Reply) : undefined;
  return undefined;
}

/** A request as a frame; a param that cannot be cloned is a `ReexecError` before anything is sent. */
export function encodeRequest(where: string, id: number, action: string, param: unknown): Buffer[] {
  try {
    return encodeFrame({ id, action, param });
  } catch (err) {
    throw gonsError('ERR_GONS_NOT_CLONEABLE', `gons/reexec: ${where}: param of action ${JSON.stringify(action)} cannot be cloned: ${(err as Error).message}`, {
      action, cause: err,
    });
  }
}
