/**
 * The parent's calls: a one-shot `runReexecAction` and a warm
 * `NamespaceWorker` are the same thing — a re-executed child switched once
 * that serves calls over its channel until the channel is closed, one
 * `Child` (lifecycle.ts). A one-shot call is `Child.once`: start → call →
 * close, as gons's `RunReexecAction` (the result counts as soon as it
 * arrives; a child that lingers a second after it is killed).
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import createDebug from 'debug';
import { isContainerTarget, resolveContainer } from '../lib/container';
import { gonsError, systemError } from '../lib/errors';
import { addon } from '../lib/native';
import { Child } from './lifecycle';
import type { NamespaceWorkerOptions, OptionsArgs, Plan, ReexecOptions, RunOptions } from './options';
import { checkRunOptions, planReexec, throwIfAborted } from './plan';
import type { ReexecProcess } from './process';
import { type ActionHandle, type ActionParam, type ActionResult, type ParamArgs, actionName, checkActionName, checkRegistered } from './registry';
import { checkReadableByJoinedRoot } from './readable';
import { checkCallable } from './role';

const log = createDebug('gons:worker');

/** Each worker's child, for the pool and the tests (`internal.ts`): the worker itself shows only what users need. */
const children = new WeakMap<NamespaceWorker, Child>();

/**
 * A re-executed child that stays in its namespaces and runs actions on
 * request; made by `openNamespaceWorker`. Emits `'exit'` (code, signal, and
 * a `WorkerEndReason` when gons knows why) once the child has ended.
 */
export interface NamespaceWorker extends EventEmitter {
  /** Pid of the spawned child. */
  readonly pid: number;
  /** The pid of the target process this worker follows, if it was made from a `target`. */
  readonly targetPid: number | undefined;
  /** Why the worker ended, when gons knows better than its exit status: `'target-exited'`. */
  readonly endReason: WorkerEndReason | undefined;
  /**
   * Runs the action of `register()`'s handle in this worker's namespaces: `param` is checked against the
   * action's parameter type, and the call resolves to its awaited result type.
   */
  run<H extends ActionHandle>(action: H, ...args: ParamArgs<ActionParam<H>, [opts?: RunOptions]>): Promise<ActionResult<H>>;
  /**
   * Runs the registered action `action` in this worker's namespaces and
   * resolves to its result. Concurrent calls are fine.
   */
  run<R = unknown>(action: string, param?: unknown, opts?: RunOptions): Promise<R>;
  /**
   * Lets calls in flight finish, then ends the worker: it exits once its
   * channel is closed, or is killed after a grace period. Idempotent.
   */
  close(): Promise<void>;
  /**
   * Ends the worker at once (SIGKILL), for an action that will never settle:
   * calls in flight reject with `ERR_GONS_CHILD_DIED`. Resolves once it is gone.
   */
  kill(): Promise<void>;
  /**
   * Lets this process exit while the worker is idle and open. A call or a
   * `close()` in flight still keeps it alive until it settles.
   */
  unref(): this;
  /** Keeps this process alive while the worker is open (the default). */
  ref(): this;
  /** Listens for the worker's end: its exit code or signal, and why when gons knows (`'target-exited'`). */
  on(event: 'exit', listener: WorkerExitListener): this;
  /** Listens once for the worker's end; see `on('exit')`. */
  once(event: 'exit', listener: WorkerExitListener): this;
  /** `await using worker = await openNamespaceWorker(...)` closes it at scope end. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * `value instanceof NamespaceWorker` for gons's own modules (the API's
 * `where` may be a worker); the package exports the interface only, with no
 * constructor to call.
 */
export const NamespaceWorker: { [Symbol.hasInstance](value: unknown): value is NamespaceWorker } = {
  [Symbol.hasInstance]: (value: unknown): value is NamespaceWorker => value instanceof Worker,
};

/** A listener of a worker's `'exit'` event. */
export type WorkerExitListener = (code: number | null, signal: NodeJS.Signals | null, reason?: WorkerEndReason) => void;

/** @internal The child behind a worker: its state (running, ending, a call given up on) is asked of it, never copied. */
export function childOf(worker: NamespaceWorker): Child {
  return children.get(worker)!;
}

/** @internal The process behind a worker. */
export function processOf(worker: NamespaceWorker): ReexecProcess {
  return childOf(worker).process;
}

/** The worker behind `NamespaceWorker`: one `Child` (lifecycle.ts), with a target's watch; not exported. */
class Worker extends EventEmitter implements NamespaceWorker {
  /** Pid of the spawned child. */
  readonly pid: number;
  readonly #child: Child;

  /** The pid of the target process this worker follows, if it was made from a `target`. */
  readonly targetPid: number | undefined;
  /** `'target-exited'` once the worker ended because its target process exited. */
  #endReason: WorkerEndReason | undefined;

  /** @internal Use `openNamespaceWorker`. */
  constructor(child: Child, target?: TargetWatch) {
    super();
    this.pid = child.pid;
    this.#child = child;
    this.targetPid = target?.pid;
    children.set(this, child);
    const targetEnded = () => {
      this.#endReason = 'target-exited';
      child.fail(gonsError('ERR_GONS_TARGET_EXITED', `gons/reexec: namespace worker ${this.pid} ended: its target process ${target!.pid} exited`, {
        action: '',
      }));
    };
    let targetGone: () => void = () => {};
    let targetHasExited = false;
    const targetExited = new Promise<void>((resolve) => (targetGone = resolve));
    // The watch fd is ours until handed to the addon's watch, which closes it once it fired or is stopped.
    let owned = target !== undefined;
    let watching = false;
    if (target) follows.set(this, () => {
      const onExit = () => {
        watching = false;
        targetHasExited = true;
        targetGone();
        if (!child.running) return;
        log('worker %d: its target %d exited', this.pid, target.pid);
        targetEnded();
        void child.kill();
      };
      if (!child.running) return;
      owned = false;
      const err = addon.watchPidfd(target.fd, onExit);
      watching = err === 0;
      /* c8 ignore next 4 -- every kernel with pidfd_open (5.3) polls pidfds; should one not, the worker is not left unwatched */
      if (!watching) {
        log('worker %d: cannot watch its target %d: %s', this.pid, target.pid, addon.strerror(err));
        onExit();
      }
    });
    // A child in the target's pid namespace is killed by the kernel as that namespace's init exits, which shows on
    // the pidfd only once the child is reaped: a SIGKILL we did not send waits a moment for the target's word, and
    // the calls in flight learn why (the child fails them only after this).
    const judged = child.ended.then(async ({ signal }) => {
      if (!target || this.#endReason || child.ending || signal !== 'SIGKILL' || owned) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([targetExited, new Promise<void>((resolve) => (timer = setTimeout(resolve, TARGET_WORD_MS)))]);
      clearTimeout(timer);
      if (targetHasExited && !this.#endReason) targetEnded();
    });
    child.judgeEndBy(judged);
    void judged.then(() => child.ended).then(({ code, signal }) => {
      if (watching) addon.unwatchPidfd(target!.fd);
      else if (owned) addon.closeFd(target!.fd);
      log('worker %d ended: code %s, signal %s', this.pid, code, signal);
      // A third argument only when gons knows why: listeners of (code, signal) see what they always saw.
      if (this.#endReason) this.emit('exit', code, signal, this.#endReason);
      else this.emit('exit', code, signal);
    });
  }

  /** Why the worker ended, when gons knows better than its exit status: `'target-exited'`. */
  get endReason(): WorkerEndReason | undefined {
    return this.#endReason;
  }

  /**
   * Runs the registered action `action` in this worker's namespaces and
   * resolves to its result. Concurrent calls are fine.
   */
  run<H extends ActionHandle>(action: H, ...args: ParamArgs<ActionParam<H>, [opts?: RunOptions]>): Promise<ActionResult<H>>;
  run<R = unknown>(action: string, param?: unknown, opts?: RunOptions): Promise<R>;
  run(handleOrName: string | ActionHandle, param?: unknown, opts: RunOptions = {}): Promise<unknown> {
    const action = actionName(handleOrName) as string;
    try {
      checkRegistered(action, 'NamespaceWorker.run');
      checkRunOptions('NamespaceWorker.run', action, opts);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#child.call(action, param, opts);
  }

  /**
   * Lets calls in flight finish, then ends the worker: it exits once its
   * channel is closed, or is killed after a grace period. Idempotent.
   */
  close(): Promise<void> {
    return this.#child.close();
  }

  /**
   * Ends the worker at once (SIGKILL), for an action that will never settle:
   * calls in flight reject with `ERR_GONS_CHILD_DIED`. Resolves once it is gone.
   */
  kill(): Promise<void> {
    return this.#child.kill();
  }

  /**
   * Lets this process exit while the worker is idle and open. A call or a
   * `close()` in flight still keeps it alive until it settles.
   */
  unref(): this {
    this.#child.ref(false);
    return this;
  }

  /** Keeps this process alive while the worker is open (the default). */
  ref(): this {
    this.#child.ref(true);
    return this;
  }

  /** `await using worker = await openNamespaceWorker(...)` closes it at scope end. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Why a worker ended, beyond its exit status: its target process exited (the worker was killed). */
export type WorkerEndReason = 'target-exited';

/** A dup of a target's pidfd that the worker watches, and the target's pid. */
interface TargetWatch {
  fd: number;
  pid: number;
}

/** How long a worker killed by SIGKILL it did not get from us waits for its target's pidfd to say the target exited. */
const TARGET_WORD_MS = 1000;

/** Starts a worker's watch of its target: once its start succeeded, so that a target gone before is the switch's error. */
const follows = new WeakMap<NamespaceWorker, () => void>();

/** A watchable copy of the plan's pidfd (the plan closes its own once spawned), with the pid it refers to. */
function targetWatch(plan: Plan): TargetWatch | undefined {
  if (plan.pidfd === undefined) return undefined;
  const pid = Number(/^Pid:\s*(-?\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${plan.pidfd}`, 'utf8'))?.[1]);
  const fd = addon.dupFd(plan.pidfd);
  /* c8 ignore next -- only fd exhaustion makes a dup fail */
  if (typeof fd !== 'number') throw systemError(`gons/reexec: cannot watch the target: ${addon.strerror(fd.errno)}`, fd);
  return { fd, pid };
}

/**
 * Starts the worker of a plan and waits until its namespace switch is known
 * to have succeeded. @internal Tests start workers of plans they changed.
 */
export async function startWorker(plan: Plan): Promise<NamespaceWorker> {
  let target: TargetWatch | undefined;
  let child: Child;
  try {
    target = targetWatch(plan);
    child = await Child.start(plan, (pid) => `namespace worker ${pid}`);
  } catch (err) {
    plan.release();
    if (target) addon.closeFd(target.fd);
    throw err;
  }
  const worker = new Worker(child, target);
  try {
    await child.ready(plan);
  } catch (err) {
    await worker.close();
    throw err;
  }
  follows.get(worker)?.();
  log('worker %d ready', worker.pid);
  return worker;
}

/**
 * Starts a worker: a re-executed copy of this program, switched into the
 * given namespaces once, that runs actions on request until `close()`.
 * Resolves once the child is up and its namespace switch succeeded; rejects
 * with the `NamespaceSwitchError` otherwise.
 */
export async function openNamespaceWorker(options: NamespaceWorkerOptions = {}): Promise<NamespaceWorker> {
  checkCallable('', 'openNamespaceWorker');
  return startWorker(await planFor('openNamespaceWorker', '', options));
}

/**
 * `planReexec`, with a container target first resolved to its init's pid
 * through its engine (async), pinned until the plan holds its own pidfd.
 */
async function planFor(where: 'runReexecAction' | 'openNamespaceWorker', action: string, options: ReexecOptions): Promise<Plan> {
  const plan = await planJoins(where, action, options);
  try {
    // With entry, the plan runs it (the last argument); else the main script.
    checkReadableByJoinedRoot(plan, `gons/reexec: ${action ? `action ${JSON.stringify(action)}` : where}`, action, options?.entry !== undefined ? plan.args.at(-1)! : process.argv[1]);
  } catch (err) {
    plan.release();
    throw err;
  }
  return plan;
}

async function planJoins(where: 'runReexecAction' | 'openNamespaceWorker', action: string, options: ReexecOptions): Promise<Plan> {
  const target = options?.target;
  if (!isContainerTarget(target)) return planReexec(where, action, options);
  throwIfAborted(options.signal);
  const pinned = await resolveContainer(`gons/reexec: ${where}`, target, options.signal instanceof AbortSignal ? options.signal : undefined);
  try {
    const plan = planReexec(where, action, { ...options, target: pinned.target });
    try {
      pinned.stillPinned(); // the plan's pidfd was opened while the container's init still held its pid
    } catch (err) {
      plan.release();
      throw err;
    }
    return plan;
  } finally {
    pinned.close();
  }
}

/**
 * Runs the action of `register()`'s handle as `runReexecAction(name)` does:
 * `options.param` is checked against the action's parameter type (and
 * required when it needs one), and the call resolves to its awaited result type.
 */
export function runReexecAction<H extends ActionHandle>(action: H, ...options: OptionsArgs<ActionParam<H>>): Promise<ActionResult<H>>;
/**
 * Runs the registered action `name` in a re-spawned copy of this program,
 * inside `options.namespaces` (or the namespaces of a running process,
 * `options.target`), and resolves to its result. Rejects with a
 * `NamespaceSwitchError` when a switch fails (the action never runs), else a
 * `ReexecError` or an `AbortError`.
 */
export function runReexecAction<R = unknown>(name: string, options?: ReexecOptions): Promise<R>;
export async function runReexecAction(action: string | ActionHandle, options: ReexecOptions = {}): Promise<unknown> {
  const name = actionName(action) as string;
  checkActionName(name, 'runReexecAction');
  checkCallable(name, 'runReexecAction');
  checkRegistered(name, 'runReexecAction');
  const plan = await planFor('runReexecAction', name, options);
  const child = await Child.start(plan, (pid) => `child ${pid} of action ${JSON.stringify(name)}`);
  return child.once(name, plan.request!, plan);
}
