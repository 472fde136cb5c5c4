/**
 * A bounded pool of namespace workers, for programs that visit many
 * namespaces (every container of a host): at most `max` warm workers live at
 * once; a worker is reused while the same namespaces (by identity: device and
 * inode) are asked for again; the least recently used idle one makes room for
 * new namespaces; idle ones end after `idleTimeout`. Calls beyond capacity
 * wait in a FIFO queue. The pool only schedules: it opens workers through
 * the worker API, and hands each call to a worker's child (`childOf`), which
 * also says how the worker stands.
 */
import { EventEmitter } from 'node:events';
import { statSync } from 'node:fs';
import createDebug from 'debug';
import { NamespaceSwitchError, gonsError } from '../lib/errors';
import { addon } from '../lib/native';
import { type Namespace, type NamespaceType, envVarOf, namespaceKinds, namespaceTypes, parseNamespaceType } from '../lib/namespaces';
import { checkKeys } from '../lib/options';
import { type CgroupsOption, cgroupKey, checkCgroupsOption } from '../lib/cgroup';
import { type Target, checkTarget, kernelTypes } from '../lib/target';
import { type ContainerTarget, isContainerTarget, resolveContainer } from '../lib/container';
import { validateNamespaces } from '../lib/validate';
import { armDeadline } from './calls';
import { ReexecError } from './errors';
import { MAX_TIMEOUT_MS, type NamespaceWorkerOptions, type RunOptions, checkChildOptions, checkRunOptions, throwIfAborted } from './plan';
import { type ActionHandle, type ActionParam, type ActionResult, type ParamArgs, actionName, checkRegistered } from './registry';
import type { Child } from './lifecycle';
import { type NamespaceWorker, childOf, openNamespaceWorker } from './worker';

const log = createDebug('gons:pool');

/** Options of `createNamespacePool`. */
export interface NamespacePoolOptions {
  /** Most workers alive at once (default 4); each holds ~50 MiB. */
  max?: number;
  /** Milliseconds an idle worker stays before it ends (default 30,000). */
  idleTimeout?: number;
  /** Module the workers re-execute instead of the main script (see `runReexecAction`). */
  entry?: string | URL;
  /** Extra environment for the workers. */
  env?: Record<string, string>;
  /** Where the workers' stdout and stderr go (see `runReexecAction`). */
  output?: 'stderr' | 'ignore';
}

/** Where a pool call runs: namespaces by path (gons's shape), or those of a process, or of a container by name. */
export type PoolWhere = { namespaces: Namespace[]; cgroups?: CgroupsOption } | { target: Target | ContainerTarget; cgroups?: CgroupsOption };

/** Options of one pool call (`timeout`, `signal`); both apply while the call waits in the queue too. */
export type PoolRunOptions = RunOptions;

/** Why a worker of the pool ended. */
export type PoolWorkerEndReason = 'idle' | 'evicted' | 'crashed' | 'abandoned' | 'closed' | 'target-exited';

/** Payload of the pool's `'workerStart'` event. */
export interface PoolWorkerStart {
  /** The worker child's pid. */
  pid: number;
  /** The identities of the worker's namespaces, e.g. `net=4:4026532281,uts=4:4026532280`. */
  key: string;
}

/** Payload of the pool's `'workerExit'` event. */
export interface PoolWorkerExit extends PoolWorkerStart {
  /** Why it ended: see `PoolWorkerEndReason`. */
  reason: PoolWorkerEndReason;
  /** Its exit code, or null when a signal ended it. */
  code: number | null;
  /** The signal that ended it, or null. */
  signal: NodeJS.Signals | null;
}

const WHERE = 'gons/reexec: NamespacePool.run';

/**
 * One worker of the pool, from its start to its exit: what the pool
 * schedules by. Whether the worker is up, ending, or still runs a call given
 * up on is its child's to say (`up`), not a copy kept here.
 */
interface Slot {
  key: string;
  /** Set once started; until then the slot is starting. */
  worker?: NamespaceWorker;
  /** The worker, once started; rejects when the start failed. */
  ready: Promise<NamespaceWorker>;
  /** Aborts the start when every call waiting for it has left. */
  start: AbortController;
  /** The call whose `where` the worker was started with. */
  opener: Request;
  /** Pool calls dispatched to it and not yet settled. */
  calls: number;
  lastUsed: number;
  idleTimer?: NodeJS.Timeout;
  /** Why the pool ended it (`end`); none for a worker that ended by itself. */
  endReason?: PoolWorkerEndReason;
  /** Calls put back at the queue's head after a failed start, to keep their order. */
  requeued: number;
}

/** Where a call runs: its key, and the key's `type=dev:ino` parts. */
interface Identity {
  key: string;
  namespaces: string[];
}

/** One pool call. */
interface Request {
  key: string;
  /** The `type=dev:ino` parts of its key: the namespaces a worker started for it is in. */
  namespaces: string[];
  where: PoolWhere;
  action: string;
  param: unknown;
  settled: boolean;
  /** Whether it was handed to the worker (then a timeout leaves it running there). */
  sent: boolean;
  /** Tells the worker to drop the call when it times out or is aborted. */
  cancel: AbortController;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/** Starts a worker for `where`; gives it up when `signal` aborts. @internal Tests give fake workers. */
export type WorkerOpener = (where: PoolWhere, signal: AbortSignal) => Promise<NamespaceWorker>;

/** The child of a started worker that is still running and not ending: one the pool may use or end. */
function up(slot: Slot): Child | undefined {
  const child = slot.worker && childOf(slot.worker);
  return child?.running && !child.ending ? child : undefined;
}

/** `dev:ino` of a namespace file; one we cannot stat is a `NamespaceSwitchError` naming it. */
function identity(path: string, envVar: string): string {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch (err) {
    const errno = -((err as NodeJS.ErrnoException).errno as number);
    throw new NamespaceSwitchError(`package gons: cannot inspect namespace ${JSON.stringify(path)}: ${addon.strerror(errno)}`, {
      envVar, path, syscall: 'stat', errno,
    });
  }
}

/**
 * Our own namespaces' identities (pid: the one our children get), to skip the
 * shared ones as the hook does. Looked up once: this process never switches
 * its own namespaces (the design: only re-executed children do), so a warm
 * call stats only the namespaces it names.
 */
const own = new Map<NamespaceType, string>();
function ownIdentity(type: NamespaceType): string {
  let id = own.get(type);
  if (id === undefined) own.set(type, (id = identity(`/proc/self/ns/${namespaceKinds[type].procname}`, envVarOf(type))));
  return id;
}

/**
 * The identity of where a call runs: `type=dev:ino` of each namespace not
 * shared with us, sorted, so that other paths to the same namespaces (or a
 * process in them) map to the same worker. A path that resolves only inside
 * the target (no `!`, after a mount namespace) counts by its text. A
 * namespace that `pinned(part)` says a live worker is in is known to be of
 * its type: only stat'ed, not opened and asked again.
 */
export function whereKey(where: PoolWhere): string {
  return whereIdentity(where).key;
}

/** `whereKey`, and the key's `type=dev:ino` parts: the namespaces a worker started for it is in, once it is ready. */
function whereIdentity(where: PoolWhere, pinned?: (part: string) => boolean): Identity {
  checkKeys(WHERE, 'where', where, ['namespaces', 'target', 'cgroups']);
  const w = (where ?? {}) as { namespaces?: Namespace[]; target?: Target; cgroups?: CgroupsOption };
  /* c8 ignore next -- run() resolves a container to its pid first */
  if (isContainerTarget(w.target)) throw gonsError('ERR_INVALID_ARG_VALUE', `${WHERE}: a container target is resolved before its key`);
  if ((w.namespaces === undefined) === (w.target === undefined)) {
    throw gonsError('ERR_INVALID_ARG_VALUE', `${WHERE}: where must be { namespaces } or { target }`);
  }
  const parts: string[] = [];
  const namespaces: string[] = [];
  if (w.namespaces !== undefined) {
    /** Identities stat'ed while validating: a path that cannot be stat'ed is left to the validation's own error. */
    const ids = new Map<string, string>();
    validateNamespaces(w.namespaces, pinned && ((type, path) => {
      let id: string;
      try {
        id = identity(path, envVarOf(type));
      } catch {
        return false;
      }
      ids.set(path, id);
      return pinned(`${type}=${id}`);
    }));
    let afterMnt = false;
    for (const ns of w.namespaces) {
      const { type, early } = parseNamespaceType(ns.type);
      if (!early && afterMnt) {
        parts.push(`${type}@${ns.path}`);
      } else {
        const id = ids.get(ns.path) ?? identity(ns.path, envVarOf(type));
        if (id !== ownIdentity(type)) namespaces.push(`${type}=${id}`);
      }
      if (type === 'mnt') afterMnt = true;
    }
  } else {
    checkKeys(WHERE, 'target', w.target, ['pid', 'types', 'allow']);
    const { pid, types, allow } = checkTarget(WHERE, w.target!);
    // A worker started with risks accepted serves only calls that accept the same.
    if (allow.length > 0) parts.push(`allow=${[...allow].sort().join('+')}`);
    for (const type of types === 'all' ? kernelTypes() : namespaceTypes.filter((t) => types.includes(t))) {
      const id = identity(`/proc/${pid}/ns/${type}`, 'gons_target_pidfd');
      if (id !== ownIdentity(type)) namespaces.push(`${type}=${id}`);
    }
  }
  // Workers in other cgroups are other workers: the joined directories count (a target's own by default).
  checkCgroupsOption(WHERE, w.cgroups, w.target !== undefined);
  const cgroups = cgroupKey(w.cgroups, w.target?.pid);
  if (cgroups !== undefined) parts.push(`cgroups=${cgroups}`);
  return { key: [...parts, ...namespaces].sort().join(','), namespaces };
}

/**
 * The key of a container: its init is pinned while its namespaces are
 * looked at, so that they are the container's (the worker started for it
 * resolves the container again, as `openNamespaceWorker` does).
 */
async function containerKey(target: ContainerTarget, signal?: AbortSignal): Promise<Identity> {
  const pinned = await resolveContainer(WHERE, target, signal);
  try {
    const key = whereIdentity({ target: pinned.target });
    pinned.stillPinned();
    return key;
  } finally {
    pinned.close();
  }
}

/**
 * A bounded pool of warm namespace workers; made by `createNamespacePool`.
 * Emits `'workerStart'` ({@link PoolWorkerStart}) once a worker is ready and
 * `'workerExit'` ({@link PoolWorkerExit}) once one has ended.
 */
export interface NamespacePool extends EventEmitter {
  /** Workers alive now (starting, ready or ending). */
  readonly size: number;
  /** Calls waiting in the queue. */
  readonly queued: number;
  /**
   * Runs the action of `register()`'s handle in the namespaces `where` names, as `run(where, name)` does:
   * `param` is checked against the action's parameter type, and the call resolves to its awaited result type.
   */
  run<H extends ActionHandle>(where: PoolWhere, action: H, ...args: ParamArgs<ActionParam<H>, [opts?: PoolRunOptions]>): Promise<ActionResult<H>>;
  /**
   * Runs the registered action in the namespaces `where` names, in a warm
   * worker there (started if need be), and resolves to its result. Rejects
   * with the action's error, the worker's (`ERR_GONS_CHILD_DIED`, a
   * `NamespaceSwitchError` from its start), `ERR_GONS_TIMEOUT`, an `AbortError`,
   * or `ERR_GONS_POOL_CLOSED`.
   */
  run<R = unknown>(where: PoolWhere, action: string, param?: unknown, opts?: PoolRunOptions): Promise<R>;
  /**
   * Ends the pool: queued calls reject with `ERR_GONS_POOL_CLOSED`, new ones
   * are refused, calls already in a worker finish, then every worker ends.
   * Resolves once all of them have exited. Idempotent.
   */
  close(): Promise<void>;
  /** Listens for workers made ready: `'workerStart'` with a {@link PoolWorkerStart}. */
  on(event: 'workerStart', listener: (start: PoolWorkerStart) => void): this;
  /** Listens for workers ended: `'workerExit'` with a {@link PoolWorkerExit}. */
  on(event: 'workerExit', listener: (exit: PoolWorkerExit) => void): this;
  /** Listens once for a worker made ready; see `on('workerStart')`. */
  once(event: 'workerStart', listener: (start: PoolWorkerStart) => void): this;
  /** Listens once for a worker ended; see `on('workerExit')`. */
  once(event: 'workerExit', listener: (exit: PoolWorkerExit) => void): this;
  /** `await using pool = createNamespacePool(...)` closes it at scope end. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** The pool behind `NamespacePool`; made by `createNamespacePool` only. */
class Pool extends EventEmitter implements NamespacePool {
  private readonly max: number;
  private readonly idleTimeout: number;
  private readonly open: WorkerOpener;
  /** Every worker whose process may be alive: starting, ready or ending. */
  private readonly live = new Set<Slot>();
  /** The usable (starting or ready) worker of each identity. */
  private readonly byKey = new Map<string, Slot>();
  private queue: Request[] = [];
  private pumpScheduled = false;
  private closed: Promise<void> | undefined;
  private allGone: (() => void) | undefined;

  /** @internal Use `createNamespacePool`; `open` is the tests' (`internal.ts`), default `openNamespaceWorker`. */
  constructor(options: NamespacePoolOptions = {}, open?: WorkerOpener) {
    super();
    checkKeys('gons/reexec: createNamespacePool', 'option', options, ['max', 'idleTimeout', 'entry', 'env', 'output']);
    const { max = 4, idleTimeout = 30_000, entry, env, output } = options;
    if (!Number.isSafeInteger(max) || max < 1) throw gonsError('ERR_INVALID_ARG_VALUE', `gons/reexec: createNamespacePool: max must be a positive integer, not ${String(max)}`);
    if (!(typeof idleTimeout === 'number' && idleTimeout > 0 && idleTimeout <= MAX_TIMEOUT_MS)) {
      throw gonsError('ERR_INVALID_ARG_VALUE', `gons/reexec: createNamespacePool: idleTimeout must be a positive number of milliseconds, at most ${MAX_TIMEOUT_MS}`);
    }
    checkChildOptions('gons/reexec: createNamespacePool', { entry, env, output });
    this.max = max;
    this.idleTimeout = idleTimeout;
    const workerOptions: Pick<NamespaceWorkerOptions, 'entry' | 'env' | 'output'> = { entry, env, output };
    this.open = open ?? ((where, signal) => openNamespaceWorker({ ...where, ...workerOptions, signal }));
  }

  /** Workers alive now (starting, ready or ending). */
  get size(): number {
    return this.live.size;
  }

  /** Calls waiting in the queue. */
  get queued(): number {
    return this.queue.length;
  }

  /**
   * Runs the registered action in the namespaces `where` names, in a warm
   * worker there (started if need be), and resolves to its result. Rejects
   * with the action's error, the worker's (`ERR_GONS_CHILD_DIED`, a
   * `NamespaceSwitchError` from its start), `ERR_GONS_TIMEOUT`, an `AbortError`,
   * or `ERR_GONS_POOL_CLOSED`.
   */
  run<H extends ActionHandle>(where: PoolWhere, action: H, ...args: ParamArgs<ActionParam<H>, [opts?: PoolRunOptions]>): Promise<ActionResult<H>>;
  run<R = unknown>(where: PoolWhere, action: string, param?: unknown, opts?: PoolRunOptions): Promise<R>;
  run(where: PoolWhere, handleOrName: string | ActionHandle, param?: unknown, opts: PoolRunOptions = {}): Promise<unknown> {
    const action = actionName(handleOrName) as string;
    let keyed: Identity | Promise<Identity>;
    try {
      if (this.closed) throw gonsError('ERR_GONS_POOL_CLOSED', `${WHERE}: the pool is closed`, { action });
      checkRegistered(action, 'NamespacePool.run');
      checkRunOptions('NamespacePool.run', action, opts);
      const target = (where as { target?: unknown } | undefined)?.target;
      if (isContainerTarget(target)) checkKeys(WHERE, 'where', where, ['target']);
      keyed = isContainerTarget(target) ? containerKey(target, opts.signal) : whereIdentity(where, (part) => this.holds(part));
      throwIfAborted(opts.signal);
    } catch (err) {
      return Promise.reject(err);
    }
    // A container is resolved through its engine first: its call joins the queue once its key is known.
    if (keyed instanceof Promise) keyed.catch(() => {});
    return new Promise<unknown>((resolve, reject) => {
      const disarm = armDeadline(action, opts, (err) => expire(err));
      const done = () => {
        req.settled = true;
        disarm();
      };
      const req: Request = {
        key: '', namespaces: [], where, action, param, settled: false, sent: false, cancel: new AbortController(),
        resolve: (v) => {
          if (req.settled) return;
          done();
          resolve(v);
        },
        reject: (e) => {
          if (req.settled) return;
          done();
          reject(e);
        },
      };
      const expire = (err: Error) => {
        req.reject(err);
        const queued = this.queue.indexOf(req);
        if (queued >= 0) this.queue.splice(queued, 1);
        req.cancel.abort(); // a dispatched call: the worker drops it (and a start nobody waits for is aborted)
      };
      const enqueue = ({ key, namespaces }: Identity) => {
        if (req.settled) return;
        if (this.closed) return req.reject(this.closedError(req));
        req.key = key;
        req.namespaces = namespaces;
        this.queue.push(req);
        this.schedulePump();
      };
      if (!(keyed instanceof Promise)) enqueue(keyed);
      else keyed.then(enqueue, (err: unknown) => req.reject(err));
    });
  }

  /** Pumps once the caller's synchronous code has run, so that several run() calls queue in order first. */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Hands queued calls to workers in FIFO order; the first that must wait for capacity holds the rest. */
  private pump(): void {
    while (this.queue.length > 0) {
      const req = this.queue[0];
      let slot = this.byKey.get(req.key);
      if (!slot) {
        if (this.live.size >= this.max) {
          this.makeRoom();
          return;
        }
        slot = this.startSlot(req);
      }
      this.queue.shift();
      this.dispatch(req, slot);
    }
  }

  /**
   * Whether a ready worker of the pool is in namespace `part` (`type=dev:ino`):
   * it holds it, so while it lives that inode stays that namespace's, and a
   * warm call naming it needs only its stat.
   */
  private holds(part: string): boolean {
    for (const slot of this.live) if (slot.worker && slot.opener.namespaces.includes(part)) return true;
    return false;
  }

  /** At capacity: end the least recently used idle worker, unless one is already ending or gone (its exit frees a place). */
  private makeRoom(): void {
    let lru: Slot | undefined;
    for (const slot of this.live) {
      if (slot.worker && !up(slot)) return;
      if (slot.worker && slot.calls === 0 && (!lru || slot.lastUsed < lru.lastUsed)) lru = slot;
    }
    if (lru) this.end(lru, 'evicted');
  }

  private startSlot(opener: Request): Slot {
    const start = new AbortController();
    const where = {
      ...('namespaces' in opener.where ? { namespaces: opener.where.namespaces } : { target: opener.where.target }),
      ...(opener.where.cgroups !== undefined ? { cgroups: opener.where.cgroups } : {}),
    };
    const slot: Slot = {
      key: opener.key, start, opener, calls: 0, lastUsed: performance.now(), requeued: 0,
      ready: this.open(where, start.signal),
    };
    this.live.add(slot);
    this.byKey.set(slot.key, slot);
    log('starting a worker for %s', slot.key);
    slot.ready.then((worker) => {
      slot.worker = worker;
      worker.once('exit', (code, signal, why) => this.exited(slot, code, signal, why ?? null));
      log('worker %d ready for %s', worker.pid, slot.key);
      this.emit('workerStart', { pid: worker.pid, key: slot.key } satisfies PoolWorkerStart);
      if (slot.calls === 0) this.idle(slot);
    }, () => {
      // openNamespaceWorker has ended the child: its place is free.
      this.forget(slot);
    });
    return slot;
  }

  private dispatch(req: Request, slot: Slot): void {
    slot.calls++;
    slot.lastUsed = performance.now();
    clearTimeout(slot.idleTimer);
    slot.worker?.ref();
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      slot.calls--;
      slot.lastUsed = performance.now();
      if (slot.calls === 0) {
        if (!slot.worker) slot.start.abort(); // still starting: nobody waits for it any more
        else this.idle(slot);
      }
      this.schedulePump();
    };
    req.cancel.signal.addEventListener('abort', () => {
      // Timed out or aborted before the worker has it: the call just leaves. After, the worker's call rejects
      // (then leaves) and its child knows the call still runs there (see idle()).
      if (!req.sent) leave();
    }, { once: true });
    slot.ready.then((worker) => {
      if (req.settled) return;
      req.sent = true;
      // Straight to the worker's child: run() checked the action and the options once already.
      childOf(worker).call(req.action, req.param, { signal: req.cancel.signal }).then(req.resolve, req.reject).finally(leave);
    }, (err) => {
      leave();
      if (req.settled) return;
      if (req === slot.opener) {
        req.reject(err);
      } else if (this.closed) {
        req.reject(this.closedError(req));
      } else {
        // The start failed for the `where` of another call with the same identity: this one tries its own.
        this.queue.splice(slot.requeued++, 0, req);
      }
    });
  }

  /**
   * A worker with no calls: ends it if it must, else lets it wait (not
   * keeping this process alive) for idleTimeout. One whose child still runs a
   * call we gave up on is killed: that call may never end.
   */
  private idle(slot: Slot): void {
    const child = up(slot);
    if (!child) return;
    if (child.abandoned) return this.end(slot, 'abandoned');
    if (this.closed) return this.end(slot, 'closed');
    slot.worker!.unref();
    clearTimeout(slot.idleTimer);
    slot.idleTimer = setTimeout(() => this.end(slot, 'idle'), this.idleTimeout);
    slot.idleTimer.unref();
  }

  private end(slot: Slot, reason: PoolWorkerEndReason): void {
    if (!up(slot)) return;
    slot.endReason = reason;
    clearTimeout(slot.idleTimer);
    if (this.byKey.get(slot.key) === slot) this.byKey.delete(slot.key);
    log('ending worker %d (%s)', slot.worker!.pid, reason);
    slot.worker!.ref(); // an idle worker was unref'd: whoever awaits close() must see it exit
    // An abandoned call may never settle: no waiting for it.
    void (reason === 'abandoned' ? slot.worker!.kill() : slot.worker!.close());
  }

  private exited(slot: Slot, code: number | null, signal: NodeJS.Signals | null, why: string | null): void {
    // A worker whose target exited ended with it, whatever the pool had planned for it.
    const reason = why === 'target-exited' ? why : slot.endReason ?? 'crashed';
    log('worker %d exited (%s)', slot.worker!.pid, reason);
    this.forget(slot);
    this.emit('workerExit', { pid: slot.worker!.pid, key: slot.key, reason, code, signal } satisfies PoolWorkerExit);
  }

  private forget(slot: Slot): void {
    clearTimeout(slot.idleTimer);
    this.live.delete(slot);
    if (this.byKey.get(slot.key) === slot) this.byKey.delete(slot.key);
    if (this.live.size === 0) this.allGone?.();
    this.schedulePump();
  }

  private closedError(req: Request): ReexecError {
    return gonsError('ERR_GONS_POOL_CLOSED', `${WHERE}: the pool was closed`, { action: req.action });
  }

  /**
   * Ends the pool: queued calls reject with `ERR_GONS_POOL_CLOSED`, new ones
   * are refused, calls already in a worker finish, then every worker ends.
   * Resolves once all of them have exited. Idempotent.
   */
  close(): Promise<void> {
    this.closed ??= (async () => {
      const queued = this.queue;
      this.queue = [];
      for (const req of queued) req.reject(this.closedError(req));
      const gone = new Promise<void>((resolve) => (this.allGone = resolve));
      for (const slot of this.live) {
        if (slot.calls === 0) this.end(slot, 'closed');
        // Busy ones end when their calls are done; starting ones once started and done (see idle()).
      }
      if (this.live.size > 0) await gone;
    })();
    return this.closed;
  }

  /** `await using pool = createNamespacePool(...)` closes it at scope end. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Creates a pool of at most `max` warm namespace workers. `pool.run(where,
 * action, param, opts)` runs a registered action in the namespaces `where`
 * names, reusing a worker already there. Workers are re-executed copies of
 * this program (or of `entry`), as for `openNamespaceWorker`.
 */
export function createNamespacePool(options?: NamespacePoolOptions): NamespacePool {
  return new Pool(options);
}

/** @internal A pool whose workers `open` starts: the scheduling tests give fake ones (`internal.ts`). */
export function createPoolWith(options: NamespacePoolOptions, open: WorkerOpener): NamespacePool {
  return new Pool(options, open);
}
