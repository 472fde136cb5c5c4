/**
 * The calls over a child's channel: request ids, the calls in flight, their
 * deadlines, and each reply — or the child's end — turned into the call's
 * result or error. One lifecycle serves a one-shot call and a worker's many.
 *
 * The child sits in an untrusted container: whatever it sends is checked,
 * and the first malformed frame (bad bytes, too large, not a reply, handles
 * that do not add up) kills it and fails its calls with `ERR_GONS_PROTOCOL`.
 */
import createDebug from 'debug';
import { NamespaceSwitchError, actionError, gonsError } from '../lib/errors';
import { addon } from '../lib/native';
import { FrameReader, ProtocolError, writeFrame } from './channel';
import { AbortError, ReexecError, type WireError, fromWire } from './errors';
import { checkSlots, receiveFds, restoreHandles } from './handles';
import type { RunOptions } from './options';
import { type ReexecProcess, describeEnd } from './process';
import { READY_ACTION, type Reply, asReply, encodeRequest } from './protocol';

const log = createDebug('gons:reexec');

interface Pending {
  action: string;
  resolve(value: unknown): void;
  reject(err: Error): void;
}

/** The calls of one child; see the top of this file. */
export class Calls {
  private readonly pending = new Map<number, Pending>();
  /** Ids of calls that timed out or were aborted: their late replies are dropped (and their fds closed), once. */
  private readonly abandoned = new Set<number>();
  /** Calls sent and not yet settled, however they will settle. */
  private active = 0;
  /** Told once no call is in flight (`idle()`). */
  private idleWaiters: Array<() => void> = [];
  private nextId = 1;
  /** Told when the first call starts and when the last one settles: a worker keeps the event loop alive in between. */
  onBusy: (busy: boolean) => void = () => {};
  /** Settles once the owner has judged the child's end (a worker whose target exited fails the calls with that first). */
  endJudged: Promise<void> = Promise.resolve();
  /** Set once the child broke the protocol or ended: what every call rejects with from then on. */
  private gone: ReexecError | undefined;

  /** `label` names the child in messages: `child 123 of action "x"`, `namespace worker 123`. */
  constructor(private readonly proc: ReexecProcess, private readonly label: string, maxMessageBytes: number) {
    const reader = new FrameReader(maxMessageBytes);
    const onData = (chunk: Buffer) => {
      try {
        for (const msg of reader.push(chunk)) this.settle(msg);
      } catch (err) {
        // Nothing more from this child counts; keep draining until it is gone.
        proc.channel.off('data', onData);
        proc.channel.resume();
        log('%s broke the protocol: %s', label, (err as Error).message);
        proc.kill();
        this.fail(gonsError('ERR_GONS_PROTOCOL', `gons/reexec: ${label} broke the protocol: ${(err as Error).message}`, { action: '', cause: err }));
      }
    };
    proc.channel.on('data', onData);
    void proc.ended.then(async (end) => {
      await this.endJudged;
      const tail = proc.stderr();
      this.fail(gonsError('ERR_GONS_CHILD_DIED', `gons/reexec: ${label} ${describeEnd(end, tail)}`, {
        action: '', exitCode: end.code, signal: end.signal, stderr: tail,
      }));
    });
  }

  /** Fails every call in flight, and every later one, with `err` (the first such error sticks). */
  fail(err: ReexecError): void {
    this.gone ??= err;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(this.goneFor(p.action));
    }
  }

  private goneFor(action: string): ReexecError {
    const gone = this.gone!;
    return new ReexecError(gone.message, { ...gone, action, cause: gone.cause });
  }

  /**
   * One reply: its fds are taken off the handle channel in order, as it is
   * read — even for a call that has already settled — so that replies and fd
   * messages stay in step. Throws a `ProtocolError` when it is malformed.
   */
  private settle(msg: unknown): void {
    const reply = asReply(msg);
    if (!reply) throw new ProtocolError('malformed reply');
    const fds = takeFds(this.proc.handleSocket, reply);
    const p = this.pending.get(reply.id);
    if (!p || (p.action === READY_ACTION && !('error' in reply) && (fds || !Number.isSafeInteger(reply.result)))) {
      fds?.forEach((fd) => addon.closeFd(fd));
      if (p) throw new ProtocolError('a ready reply that is not a pid');
      if (!this.abandoned.delete(reply.id)) throw new ProtocolError(`reply for unknown or settled call ${reply.id}`);
      return; // the late reply of a call that timed out or was aborted
    }
    // Built before the call leaves `pending`: should it throw, the call fails with the protocol error.
    if ('error' in reply) {
      const error = replyError(p.action, reply.error);
      this.pending.delete(reply.id);
      return p.reject(error);
    }
    this.pending.delete(reply.id);
    if (!fds) return p.resolve(reply.result);
    restoreHandles(reply.result, reply.handles!, fds).then(p.resolve, (err: Error) => {
      // Fds that are not what the reply says they are break the protocol.
      this.proc.kill();
      p.reject(gonsError('ERR_GONS_PROTOCOL', `gons/reexec: ${this.label} broke the protocol: ${err.message}`, { action: p.action, cause: err }));
    });
  }

  /** Runs `action` with `param` in the child; rejects at once for a param that cannot be cloned. */
  call(action: string, param: unknown, opts: RunOptions = {}): Promise<unknown> {
    const id = this.nextId;
    let frame: Buffer[];
    try {
      frame = encodeRequest(this.label, id, action, param);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.send(action, frame, opts);
  }

  /**
   * Sends an encoded request (its id must be the next one) and resolves
   * with the reply's value. `timeout` and `signal` settle only this call.
   */
  send(action: string, frame: Buffer[], { timeout, signal }: RunOptions = {}): Promise<unknown> {
    const id = this.nextId++;
    if (this.gone) return Promise.reject(this.goneFor(action));
    if (signal?.aborted) return Promise.reject(new AbortError(undefined, { cause: signal.reason }));
    const started = log.enabled ? performance.now() : 0;
    const call = new Promise<unknown>((resolve, reject) => {
      // Counted here rather than by promises chained on each call: a warm call is a few dozen microseconds.
      const finish = (err?: Error & { code?: string }) => {
        disarm();
        if (--this.active === 0) {
          this.onBusy(false);
          for (const wake of this.idleWaiters.splice(0)) wake();
        }
        if (log.enabled) log('%s: call %d (%s) settled after %d ms: %s', this.label, id, action, Math.round(performance.now() - started), err ? err.code ?? 'error' : 'ok');
      };
      const disarm = timeout === undefined && signal === undefined ? noDeadline : armDeadline(action, { timeout, signal }, (err) => {
        if (!this.pending.delete(id)) return;
        this.abandoned.add(id);
        finish(err);
        reject(err);
      });
      this.pending.set(id, {
        action,
        resolve: (v) => (finish(), resolve(v)),
        reject: (e) => (finish(e), reject(e)),
      });
      if (++this.active === 1) this.onBusy(true);
      writeFrame(this.proc.channel, frame).catch((err: Error) => log('%s: cannot send request %d: %s', this.label, id, err.message));
    });
    // A call that fails before its caller awaits it (the child died meanwhile) is not an unhandled rejection.
    call.catch(() => {});
    return call;
  }

  /** Whether a call we gave up on (timed out, aborted) may still run in the child: its reply has not come yet. */
  get abandonedRunning(): boolean {
    return this.abandoned.size > 0;
  }

  /** Whether a call is in flight. */
  get busy(): boolean {
    return this.active > 0;
  }

  /** Resolves once no call is in flight (the owner sends no more first: `Child.close`). */
  idle(): Promise<void> {
    return this.active === 0 ? Promise.resolve() : new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

const noDeadline = (): void => {};

/** The errors armDeadline made: a deadline of ours, whatever code a child's error may claim. */
const deadlineErrors = new WeakSet<Error>();

/** Whether `err` is a timeout or an abort of ours (not an error a child sent). */
export function isDeadline(err: unknown): boolean {
  return deadlineErrors.has(err as Error);
}

/**
 * Arms a call's `timeout` and `signal`: `onExpire` gets the
 * `ERR_GONS_TIMEOUT` `ReexecError` or the `AbortError`, at most once.
 * Returns the disarm.
 */
export function armDeadline(action: string, { timeout, signal }: RunOptions, onExpire: (err: Error) => void): () => void {
  const disarm = () => {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  };
  const expire = (err: Error) => {
    disarm();
    deadlineErrors.add(err);
    onExpire(err);
  };
  const onAbort = () => expire(new AbortError(undefined, { cause: signal?.reason }));
  signal?.addEventListener('abort', onAbort, { once: true });
  const timer = timeout === undefined ? undefined : setTimeout(() => expire(gonsError(
    'ERR_GONS_TIMEOUT', `gons/reexec: action ${JSON.stringify(action)} timed out after ${timeout} ms`, { action })), timeout);
  return disarm;
}

/** Takes the fds a reply announces off the handle channel. */
function takeFds(handleSocket: number, reply: Reply): number[] | undefined {
  if (!('result' in reply) || reply.handles === undefined) return undefined;
  if (!checkSlots(reply.handles)) throw new ProtocolError('a malformed handle list');
  try {
    return receiveFds(handleSocket, reply.handles.length);
  } catch (err) {
    throw new ProtocolError((err as Error).message);
  }
}

/**
 * The error a reply carries, rebuilt: a failed namespace switch is a
 * `NamespaceSwitchError`; a condition gons made in the child keeps its
 * `ERR_GONS_*` code; anything the action threw is `ERR_GONS_ACTION_FAILED`,
 * with the action's own error (and its code) on `.cause`.
 */
function replyError(action: string, wire: WireError): Error {
  if (wire.name === 'NamespaceSwitchError') {
    const err = new NamespaceSwitchError(wire.message, {
      envVar: wire.envVar as string, path: wire.path as string, syscall: wire.syscall as string, errno: wire.errno as number,
    });
    err.message = wire.message; // the child's wording, its hint included
    return err;
  }
  return actionError(action, fromWire(wire));
}
