/**
 * Warm namespace workers: one re-executed child, switched once, serves many
 * calls over the same channel. Calls carry ids, so concurrent calls are
 * matched to their replies; a call's action error rejects only that call.
 */
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import createDebug from 'debug';
import { FrameReader, writeFrame } from './channel';
import { AbortError, ReexecError } from './errors';
import {
  type ReexecOptions, armDeadline, checkCallable, checkReexecOptions, childEnded, collectOutput, describeEnd, encodeRequest,
  prepareNamespaces, settleReply, spawnReexec,
} from './parent';
import { READY_ACTION, type Reply } from './protocol';
import { checkActionName, lookup } from './registry';

const log = createDebug('gons:worker');

/**
 * Options of `openNamespaceWorker`; `timeout` and `signal` bound the start
 * (an entry that never calls `checkAction()` would never answer).
 */
export type NamespaceWorkerOptions = Pick<ReexecOptions, 'namespaces' | 'target' | 'env' | 'entry' | 'output' | 'timeout' | 'signal' | 'compileCache'>;

/** Options of one worker call. */
export interface RunOptions {
  /** Milliseconds; then the call rejects with code `ETIMEDOUT` (the worker keeps running). */
  timeout?: number;
  /** Aborting rejects the call with an `AbortError` (the worker keeps running). */
  signal?: AbortSignal;
}

interface Pending {
  action: string;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/** What a worker's child is started for, in place of an action name. */
const WORKER = '(worker)';

/** How long a closing worker may take to exit before it is killed. */
const CLOSE_GRACE_MS = 1000;

/**
 * A re-executed child that stays in its namespaces and runs actions on
 * request. Emits `'exit'` (code, signal) when the child has ended.
 */
export class NamespaceWorker extends EventEmitter {
  /** Pid of the spawned child. */
  readonly pid: number;
  private readonly child: ChildProcess;
  private readonly channel: Duplex;
  private readonly stderr: () => string;
  private readonly pending = new Map<number, Pending>();
  /** Every call in flight, however it will settle (reply, timeout, abort, crash). */
  private readonly inFlight = new Set<Promise<unknown>>();
  private nextId = 1;
  private ended: ReexecError | undefined;
  private closing: Promise<void> | undefined;
  private readonly exited: Promise<void>;

  /** @internal Use `openNamespaceWorker`. */
  constructor(child: ChildProcess, output?: ReexecOptions['output']) {
    super();
    this.child = child;
    this.pid = child.pid!;
    this.channel = child.stdio[3] as Duplex;
    this.stderr = collectOutput(child, output);
    const reader = new FrameReader();
    this.channel.on('data', (chunk: Buffer) => {
      for (const reply of reader.push(chunk) as Reply[]) this.settle(reply);
    });
    this.channel.on('error', (err) => log('worker %d channel error: %s', this.pid, err.message));
    this.exited = childEnded(child).then((end) => {
      const { code, signal } = end;
      const tail = this.stderr();
      this.ended = new ReexecError(`gons/reexec: namespace worker ${this.pid} ${describeEnd(end, tail)}`, {
        action: '', code: 'ERR_GONS_WORKER_EXITED', exitCode: code, signal, stderr: tail,
      });
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        p.reject(new ReexecError(this.ended.message, { ...this.ended, action: p.action }));
      }
      log('worker %d ended: code %s, signal %s', this.pid, code, signal);
      this.emit('exit', code, signal);
    });
  }

  private settle(reply: Reply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    try {
      p.resolve(settleReply(p.action, reply));
    } catch (err) {
      p.reject(err);
    }
  }

  /** Sends a request; resolves with the reply's value. @internal */
  call(action: string, param: unknown, opts: RunOptions = {}): Promise<unknown> {
    if (this.closing) {
      return Promise.reject(new ReexecError(`gons/reexec: namespace worker ${this.pid} is closed`, { action, code: 'ERR_GONS_WORKER_CLOSED' }));
    }
    if (this.ended) return Promise.reject(new ReexecError(this.ended.message, { ...this.ended, action }));
    const id = this.nextId++;
    let frame: Buffer[];
    try {
      frame = encodeRequest('NamespaceWorker.run', id, action, param);
    } catch (err) {
      return Promise.reject(err);
    }
    if (opts.signal?.aborted) return Promise.reject(new AbortError(undefined, { cause: opts.signal.reason }));
    const call = new Promise((resolve, reject) => {
      const fail = (err: unknown) => {
        if (this.pending.delete(id)) {
          disarm();
          reject(err);
        }
      };
      const disarm = armDeadline(action, opts, fail);
      this.pending.set(id, {
        action,
        resolve: (v) => {
          disarm();
          resolve(v);
        },
        reject: (e) => {
          disarm();
          reject(e);
        },
      });
      writeFrame(this.channel, frame).catch(fail);
    });
    const settled = call.catch(() => undefined);
    this.inFlight.add(settled);
    void settled.then(() => this.inFlight.delete(settled));
    return call;
  }

  /**
   * Runs the registered action `action` in this worker's namespaces and
   * resolves to its result. Concurrent calls are fine.
   */
  run<R = unknown>(action: string, param?: unknown, opts: RunOptions = {}): Promise<R> {
    try {
      checkActionName(action, 'NamespaceWorker.run');
      checkReexecOptions(action, opts);
      if (!lookup(action)) {
        throw new ReexecError(`gons/reexec: NamespaceWorker.run: attempting to run unregistered action ${JSON.stringify(action)}`, {
          action, code: 'ERR_GONS_UNREGISTERED_ACTION',
        });
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return this.call(action, param, opts) as Promise<R>;
  }

  /**
   * Lets calls in flight finish, then ends the worker: it exits once its
   * channel closes, or is killed after a grace period. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all(this.inFlight);
      this.channel.end();
      const kill = setTimeout(() => this.child.kill('SIGKILL'), CLOSE_GRACE_MS);
      await this.exited;
      clearTimeout(kill);
    })();
    return this.closing;
  }

  /**
   * Ends the worker at once (SIGKILL), for an action that will never settle:
   * calls in flight reject with `ERR_GONS_WORKER_EXITED`. Resolves once it is gone.
   */
  async kill(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** Lets this process exit while the worker is idle and open. */
  unref(): this {
    this.child.unref();
    for (const stream of this.child.stdio) (stream as Socket | null)?.unref?.();
    return this;
  }

  /** Keeps this process alive while the worker is open (the default). */
  ref(): this {
    this.child.ref();
    for (const stream of this.child.stdio) (stream as Socket | null)?.ref?.();
    return this;
  }

  /** `await using worker = await openNamespaceWorker(...)` closes it at scope end. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Starts a worker: a re-executed copy of this program, switched into the
 * given namespaces once, that runs actions on request until `close()`.
 * Resolves once the child is up and its namespace switch succeeded; rejects
 * with the `NamespaceSwitchError` otherwise.
 */
export async function openNamespaceWorker(options: NamespaceWorkerOptions = {}): Promise<NamespaceWorker> {
  checkCallable('', 'openNamespaceWorker');
  checkReexecOptions('', options);
  const child = spawnReexec(WORKER, options, prepareNamespaces(options));
  if (child.pid === undefined) throw (await childEnded(child)).error; // e.g. EMFILE: no stdio either
  const worker = new NamespaceWorker(child, options.output);
  try {
    await worker.call(READY_ACTION, undefined, { timeout: options.timeout, signal: options.signal });
  } catch (err) {
    await worker.close();
    throw err;
  }
  log('worker %d ready', worker.pid);
  return worker;
}
