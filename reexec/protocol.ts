/** The messages on the channel, and the environment variables of the re-execution protocol. */
import type { WireError } from './errors';
import type { HandleSlot } from './handles';
import type { NamespaceSwitchErrorDetails } from '../lib/errors';

/**
 * Marks a re-executed child and names the action it was started for (as in
 * Go's gons/reexec). The child removes it from its environment at load.
 */
export const ACTION_ENV = 'gons_reexec_action';

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

/** Child to parent: the outcome of request `id`; `handles` says where the fds sent just before it go in `result`. */
export type Reply =
  | { id: number; result: unknown; handles?: HandleSlot[] }
  | { id: number; error: WireError }
  | { id: number; switchError: NamespaceSwitchErrorDetails & { message: string } };

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
const isOptional = (v: unknown, ...types: string[]) => v === undefined || types.includes(typeof v);

function hasOnly(o: Record<string, unknown>, keys: readonly string[]): boolean {
  return Object.keys(o).every((k) => keys.includes(k));
}

const wireErrorKeys = ['name', 'message', 'stack', 'code', 'errno', 'syscall', 'path'] as const;
const switchErrorKeys = ['message', 'envVar', 'path', 'syscall', 'errno'] as const;

function isWireError(e: unknown): boolean {
  return isPlainObject(e) && hasOnly(e, wireErrorKeys) && typeof e.name === 'string' && typeof e.message === 'string' &&
    isOptional(e.stack, 'string') && ['code', 'errno', 'syscall', 'path'].every((k) => isOptional(e[k], 'string', 'number'));
}

function isSwitchError(e: unknown): boolean {
  return isPlainObject(e) && hasOnly(e, switchErrorKeys) && ['message', 'envVar', 'path', 'syscall'].every((k) => typeof e[k] === 'string') &&
    Number.isSafeInteger(e.errno);
}

/**
 * Checks that a decoded frame from a child is a well-formed reply: a plain
 * object with an integer id and exactly one of result, error (strings and
 * numbers only) or switchError. A child in an untrusted container may send
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
  if ('switchError' in msg) return isSwitchError(msg.switchError) ? (msg as Reply) : undefined;
  return undefined;
}
