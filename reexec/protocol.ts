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
