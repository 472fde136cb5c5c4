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
import { ProtocolError, writeFrame } from './channel';
import { AbortError, ReexecError } from './errors';
import {
  type ReexecOptions, armDeadline, checkCallable, checkReexecOptions, childEnded, collectOutput, describeEnd, encodeRequest,
  prepareNamespaces, readReplies, restoreReply, settleReply, spawnReexec, dropFds, type Received,
} from './parent';
import { READY_ACTION } from './protocol';
import { checkActionName, lookup } from './registry';

const log = createDebug('gons:worker');

/**
 * Options of `openNamespaceWorker`; `timeout` and `signal` bound the start
 * (an entry that never calls `checkAction()` would never answer).
 */
export type NamespaceWorkerOptions = Pick<ReexecOptions, 'namespaces' | 'target' | 'env' | 'entry' | 'output' | 'timeout' | 'signal' | 'maxMessageBytes' | 'confine' | 'compileCache'>;

const workerOptionKeys = ['namespaces', 'target', 'confine', 'env', 'entry', 'output', 'timeout', 'signal', 'maxMessageBytes', 'compileCache'] as const;

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
  /** Ids of calls that timed out or were aborted: their late replies are dropped, once. */
  private readonly abandoned = new Set<number>();
  private ended: ReexecError | undefined;
  /** Set once the child broke the protocol: what its calls reject with. */
  private broken: ReexecError | undefined;
  private closing: Promise<void> | undefined;
  private readonly exited: Promise<void>;

  /** @internal Use `openNamespaceWorker`. */
  constructor(child: ChildProcess, output?: ReexecOptions['output'], maxMessageBytes?: number) {
    super();
    this.child = child;
    this.pid = child.pid!;
    this.channel = child.stdio[3] as Duplex;
    this.stderr = collectOutput(child, output);
    readReplies(child, `namespace worker ${this.pid}`, maxMessageBytes, (reply) => this.settle(reply), (err) => {
      this.broken = err;
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        p.reject(new ReexecError(err.message, { ...err, action: p.action, cause: err.cause }));
      }
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

  private settle(reply: Received): void {
    const p = this.pending.get(reply.id);
    if (!p) {
      if (!this.abandoned.delete(reply.id)) throw new ProtocolError(`reply for unknown or settled call ${reply.id}`);
      // The late reply of a call that timed out or was aborted: its handles are closed here.
      dropFds(reply);
      return;
    }
    this.pending.delete(reply.id);
    restoreReply(this.child, `namespace worker ${this.pid}`, reply).then((r) => settleReply(p.action, r)).then(p.resolve, p.reject);
  }

  /** Sends a request; resolves with the reply's value. @internal */
  call(action: string, param: unknown, opts: RunOptions = {}): Promise<unknown> {
    if (this.closing) {
      return Promise.reject(new ReexecError(`gons/reexec: namespace worker ${this.pid} is closed`, { action, code: 'ERR_GONS_WORKER_CLOSED' }));
    }
    const gone = this.broken ?? this.ended;
    if (gone) return Promise.reject(new ReexecError(gone.message, { ...gone, action, cause: gone.cause }));
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
          this.abandoned.add(id);
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
    const started = performance.now();
    const settled = call.then(() => 'ok', (err: { code?: string }) => err?.code ?? 'error');
    void settled.then((how) => log('worker %d: call %d (%s) settled after %d ms: %s', this.pid, id, action, Math.round(performance.now() - started), how));
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
      checkReexecOptions(action, opts, ['timeout', 'signal'], 'NamespaceWorker.run');
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
  checkReexecOptions('', options, workerOptionKeys, 'openNamespaceWorker');
  const child = spawnReexec(WORKER, options, prepareNamespaces(options));
  if (child.pid === undefined) throw (await childEnded(child)).error; // e.g. EMFILE: no stdio either
  const worker = new NamespaceWorker(child, options.output, options.maxMessageBytes);
  try {
    await worker.call(READY_ACTION, undefined, { timeout: options.timeout, signal: options.signal });
  } catch (err) {
    await worker.close();
    throw err;
  }
  log('worker %d ready', worker.pid);
  return worker;
}
