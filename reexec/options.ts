/**
 * The options of the public calls, and the plan they are checked into
 * (plan.ts): types only, so that every layer — the process, the calls, the
 * worker, the pool — can name them without importing the planner above it.
 */
import type { Namespace } from '../lib/namespaces';
import type { Target } from '../lib/target';
import type { ContainerTarget } from '../lib/container';
import type { CgroupsOption } from '../lib/cgroup';
import type { CompileCacheOption } from './compile-cache';

/** Options of `runReexecAction`. */
export interface ReexecOptions {
  /** Namespaces to join, in this order; gons's shape, `!` allowed. */
  namespaces?: Namespace[];
  /**
   * Or: the namespaces of a running process, joined atomically through a
   * pidfd; or of a container by name (`{ container, engine }`), resolved
   * through its engine's API.
   */
  target?: Target | ContainerTarget;
  /**
   * With `target`: give the child the target process's uids, gids, groups,
   * capability sets and no_new_privs, and no fd back to the host's root,
   * before the first action (see docs/confinement.md).
   */
  confine?: boolean;
  /**
   * The cgroups the child joins before it joins any namespace (see
   * docs/security.md): with `target`, the target's by default
   * (`false` opts out); with `namespaces`, none unless named here — `{ pid }`
   * (that process's) or a list of cgroup directories.
   */
  cgroups?: CgroupsOption;
  /** Parameter for the action; any structured-cloneable value. */
  param?: unknown;
  /** Extra environment for the child. */
  env?: Record<string, string>;
  /** Module to re-execute instead of the current main script; it must register the action and call `checkAction()`. */
  entry?: string | URL;
  /** Milliseconds; then the child is killed and the call rejects with code `ERR_GONS_TIMEOUT`. */
  timeout?: number;
  /** Aborting kills the child and rejects with an `AbortError`. */
  signal?: AbortSignal;
  /** Where the child's stdout and stderr go: this process's stderr (the default), or nowhere. Never its stdout. */
  output?: 'stderr' | 'ignore';
  /** Bound of one message from the child, in bytes (default 256 MiB); a larger frame is `ERR_GONS_PROTOCOL`. */
  maxMessageBytes?: number;
  /** The child's compile cache (Node ≥ 22.10): on by default, `false` turns it off, `{ directory }` chooses where. */
  compileCache?: CompileCacheOption;
}

/**
 * Options of `runReexecAction` with an action handle: `param` has the
 * action's parameter type, and is required when the action needs one.
 */
export type ActionOptions<P> = Omit<ReexecOptions, 'param'> & (undefined extends P ? { param?: P } : { param: P });
/** `runReexecAction`'s options argument for a handle: optional when `param` is. */
export type OptionsArgs<P> = undefined extends P ? [options?: ActionOptions<P>] : [options: ActionOptions<P>];

/**
 * Options of `openNamespaceWorker`; `timeout` and `signal` bound the start
 * (an entry that never calls `checkAction()` would never answer).
 */
export type NamespaceWorkerOptions = Omit<ReexecOptions, 'param'>;

/** Options of one call on a worker or a pool. */
export interface RunOptions {
  /** Milliseconds; then the call rejects with code `ERR_GONS_TIMEOUT` (a worker keeps running). */
  timeout?: number;
  /** Aborting rejects the call with an `AbortError` (a worker keeps running). */
  signal?: AbortSignal;
}

/** Everything a re-execution needs, checked. */
export interface Plan {
  /** Node's arguments: the safe flags of this process, the main script (or `entry`) and its arguments. */
  args: string[];
  /** The child's whole environment. */
  env: NodeJS.ProcessEnv;
  /** The target's pidfd, inherited as fd 4. */
  pidfd?: number;
  output: 'stderr' | 'ignore';
  maxMessageBytes: number;
  timeout?: number;
  signal?: AbortSignal;
  /** `runReexecAction`'s request, encoded: a param that cannot be cloned fails before anything is spawned. */
  request?: Buffer[];
  /** Closes what planning opened (our copy of the pidfd); idempotent. */
  release(): void;
}
