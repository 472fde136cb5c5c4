/**
 * The parent's calls: a one-shot `runReexecAction` and a warm
 * `NamespaceWorker` are the same thing — a re-executed child switched once
 * (process.ts) that serves calls over its channel (calls.ts) until the
 * channel is closed. A one-shot call is a worker with one call: start → call
 * → close, as gons's `RunReexecAction` (the result counts as soon as it
 * arrives; a child that lingers a second after it is killed).
 */
import { EventEmitter } from 'node:events';
import createDebug from 'debug';
import { Calls, isDeadline } from './calls';
import { ReexecError } from './errors';
import { type NamespaceWorkerOptions, type Plan, type ReexecOptions, type RunOptions, checkRunOptions, planReexec } from './plan';
import { type ReexecProcess, startProcess } from './process';
import { READY_ACTION } from './protocol';
import { checkActionName, checkRegistered } from './registry';
import { checkCallable } from './role';

const log = createDebug('gons:worker');

/** Each worker's process, for the tests (`internal.ts`): the class itself shows only what users need. */
const processes = new WeakMap<NamespaceWorker, ReexecProcess>();

/** @internal The process behind a worker. */
export function processOf(worker: NamespaceWorker): ReexecProcess {
  return processes.get(worker)!;
}

/**
 * A re-executed child that stays in its namespaces and runs actions on
 * request. Emits `'exit'` (code, signal) when the child has ended.
 */
export class NamespaceWorker extends EventEmitter {
  /** Pid of the spawned child. */
  readonly pid: number;
  readonly #proc: ReexecProcess;
  readonly #calls: Calls;
  #closing: Promise<void> | undefined;

  /** @internal Use `openNamespaceWorker`. */
  constructor(proc: ReexecProcess, calls: Calls) {
    super();
    this.pid = proc.pid;
    this.#proc = proc;
    this.#calls = calls;
    processes.set(this, proc);
    void proc.ended.then(({ code, signal }) => {
      log('worker %d ended: code %s, signal %s', this.pid, code, signal);
      this.emit('exit', code, signal);
    });
  }

  /**
   * Runs the registered action `action` in this worker's namespaces and
   * resolves to its result. Concurrent calls are fine.
   */
  run<R = unknown>(action: string, param?: unknown, opts: RunOptions = {}): Promise<R> {
    try {
      checkRegistered(action, 'NamespaceWorker.run');
      checkRunOptions('NamespaceWorker.run', action, opts);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#closing) return Promise.reject(new ReexecError(`gons/reexec: namespace worker ${this.pid} is closed`, { action, code: 'ERR_GONS_WORKER_CLOSED' }));
    return this.#calls.call(action, param, opts) as Promise<R>;
  }

  /**
   * Lets calls in flight finish, then ends the worker: it exits once its
   * channel is closed, or is killed after a grace period. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#proc.channel.end(); // no more requests: the child exits once it has answered those it has
      await this.#calls.idle();
      this.#proc.killAfterGrace();
      await this.#proc.ended;
    })();
    return this.#closing;
  }

  /**
   * Ends the worker at once (SIGKILL), for an action that will never settle:
   * calls in flight reject with `ERR_GONS_CHILD_DIED`. Resolves once it is gone.
   */
  async kill(): Promise<void> {
    this.#proc.kill();
    await this.#proc.ended;
  }

  /** Lets this process exit while the worker is idle and open. */
  unref(): this {
    this.#proc.ref(false);
    return this;
  }

  /** Keeps this process alive while the worker is open (the default). */
  ref(): this {
    this.#proc.ref(true);
    return this;
  }

  /** `await using worker = await openNamespaceWorker(...)` closes it at scope end. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Spawns the child of `plan`, its calls named by `label`. */
async function start(plan: Plan, label: (pid: number) => string): Promise<{ proc: ReexecProcess; calls: Calls }> {
  const proc = await startProcess(plan);
  return { proc, calls: new Calls(proc, label(proc.pid), plan.maxMessageBytes) };
}

/**
 * Starts the worker of a plan and waits until its namespace switch is known
 * to have succeeded. @internal Tests start workers of plans they changed.
 */
export async function startWorker(plan: Plan): Promise<NamespaceWorker> {
  const { proc, calls } = await start(plan, (pid) => `namespace worker ${pid}`);
  const worker = new NamespaceWorker(proc, calls);
  try {
    await calls.call(READY_ACTION, undefined, plan);
  } catch (err) {
    await worker.close();
    throw err;
  }
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
  return startWorker(planReexec('openNamespaceWorker', '', options));
}

/**
 * Runs the registered action `name` in a re-spawned copy of this program,
 * inside `options.namespaces` (or the namespaces of a running process,
 * `options.target`), and resolves to its result. Rejects with a
 * `NamespaceSwitchError` when a switch fails (the action never runs), else a
 * `ReexecError` or an `AbortError`.
 */
export async function runReexecAction<R = unknown>(name: string, options: ReexecOptions = {}): Promise<R> {
  checkActionName(name, 'runReexecAction');
  checkCallable(name, 'runReexecAction');
  checkRegistered(name, 'runReexecAction');
  const plan = planReexec('runReexecAction', name, options);
  const { proc, calls } = await start(plan, (pid) => `child ${pid} of action ${JSON.stringify(name)}`);
  const worker = new NamespaceWorker(proc, calls);
  const result = calls.send(name, plan.request!, plan);
  void worker.close(); // the request is all the child gets; Node reaps it
  try {
    return (await result) as R;
  } catch (err) {
    // A timeout or an abort ends the child: the call settles once it is gone, saying how it ended.
    if (isDeadline(err)) {
      proc.terminate();
      const { code, signal } = await proc.ended;
      Object.assign(err as ReexecError, { exitCode: code, signal, stderr: proc.stderr() });
    }
    throw err;
  }
}
