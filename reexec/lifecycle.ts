/**
 * One re-executed child's whole life, behind every kind of call: spawned
 * from a plan (process.ts), its calls served over its channel (calls.ts) with
 * one deadline each, closed (no more requests, calls in flight answered, a
 * kill after the grace) or killed, and ended. A one-shot `runReexecAction`
 * is `once()`; a `NamespaceWorker` holds one `Child` for its many calls.
 */
import { gonsError } from '../lib/errors';
import { Calls, isDeadline } from './calls';
import type { ReexecError } from './errors';
import type { Plan, RunOptions } from './options';
import { type ChildEnd, type ReexecProcess, startProcess } from './process';
import { READY_ACTION } from './protocol';

/** A spawned child and its calls; made by `Child.start`. */
export class Child {
  /** Pid of the spawned child. */
  readonly pid: number;
  /** Resolves once the child has exited and its pipes are closed; never rejects. */
  readonly ended: Promise<ChildEnd>;
  readonly #proc: ReexecProcess;
  readonly #calls: Calls;
  /** Names the child in messages: `child 123 of action "x"`, `namespace worker 123`. */
  readonly #label: string;
  #closing: Promise<void> | undefined;
  #ending = false;
  /** What the owner wants of `ref`; a call or a close in flight keeps the process alive regardless. */
  #refWanted = true;
  /** What was last applied to the process (a spawned child starts refed). */
  #refApplied = true;

  /** Spawns the child of `plan` (which it releases whatever happens), its calls named by `label(pid)`. */
  static async start(plan: Plan, label: (pid: number) => string): Promise<Child> {
    const proc = await startProcess(plan);
    return new Child(proc, label(proc.pid), plan.maxMessageBytes);
  }

  private constructor(proc: ReexecProcess, label: string, maxMessageBytes: number) {
    this.#proc = proc;
    this.#label = label;
    this.#calls = new Calls(proc, label, maxMessageBytes);
    this.pid = proc.pid;
    this.ended = proc.ended;
    this.#calls.onBusy = () => this.#applyRef();
  }

  /** The process, for the tests that drive it by hand (`processOf`). */
  get process(): ReexecProcess {
    return this.#proc;
  }

  /** Whether the child has not exited yet. */
  get running(): boolean {
    return this.#proc.running;
  }

  /** Whether `close()`, `kill()` or `terminate()` was asked for: an end the owner wanted. */
  get ending(): boolean {
    return this.#ending;
  }

  /** Whether `close()` was called: no more requests are taken. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Whether a call that timed out or was aborted still runs in the child (no
   * late reply yet): an owner that reuses the child kills it once idle, as a
   * stuck action would otherwise hold it forever.
   */
  get abandoned(): boolean {
    return this.#calls.abandonedRunning;
  }

  /** Resolves once the child's namespace switch is known to have succeeded (the child answers with its pid). */
  ready(opts: RunOptions = {}): Promise<unknown> {
    return this.#calls.call(READY_ACTION, undefined, opts);
  }

  /** Runs `action` with `param` in the child; `opts.timeout`/`opts.signal` settle only this call. */
  call(action: string, param: unknown, opts: RunOptions = {}): Promise<unknown> {
    return this.#closed(action) ?? this.#calls.call(action, param, opts);
  }

  /** Sends an encoded request (`encodeRequest` with id 1 for a fresh child) and resolves with its reply's value. */
  send(action: string, frame: Buffer[], opts: RunOptions = {}): Promise<unknown> {
    return this.#closed(action) ?? this.#calls.send(action, frame, opts);
  }

  #closed(action: string): Promise<never> | undefined {
    if (!this.#closing) return undefined;
    return Promise.reject(gonsError('ERR_GONS_WORKER_CLOSED', `gons/reexec: ${this.#label} is closed`, { action }));
  }

  /**
   * The one call of a one-shot child: sends it, then closes (the request is
   * all the child gets). On a timeout or an abort the child is terminated and
   * the call settles once it is gone, its error saying how it ended
   * (`exitCode`, `signal`, `stderr`).
   */
  async once(action: string, frame: Buffer[], opts: RunOptions = {}): Promise<unknown> {
    const result = this.send(action, frame, opts);
    void this.close();
    try {
      return await result;
    } catch (err) {
      if (isDeadline(err)) {
        this.terminate();
        const { code, signal } = await this.ended;
        Object.assign(err as ReexecError, { exitCode: code, signal, stderr: this.stderr() });
      }
      throw err;
    }
  }

  /**
   * Takes no more requests, lets the calls in flight settle, then ends the
   * child: it exits once its channel is closed, or is killed after the grace.
   * Resolves once it has ended. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#ending = true;
    this.#closing = (async () => {
      this.#proc.channel.end(); // no more requests: the child exits once it has answered those it has
      await this.#calls.idle();
      this.#proc.killAfterGrace();
      await this.#proc.ended;
    })();
    this.#applyRef(); // an unref'd child's close() must still see it exit
    return this.#closing;
  }

  /** SIGKILL now: calls in flight reject with `ERR_GONS_CHILD_DIED`. Resolves once it is gone. */
  async kill(): Promise<void> {
    this.#ending = true;
    this.#proc.kill();
    await this.#proc.ended;
  }

  /** SIGTERM, then SIGKILL after the grace. */
  terminate(): void {
    this.#ending = true;
    this.#proc.terminate();
  }

  /** Fails every call in flight, and every later one, with `err` (the first such error sticks). */
  fail(err: ReexecError): void {
    this.#calls.fail(err);
  }

  /**
   * Calls in flight fail with `ERR_GONS_CHILD_DIED` only once `judged` has
   * settled: an owner that may know better why the child ended (a worker
   * whose target exited) says so first, through `fail`.
   */
  judgeEndBy(judged: Promise<void>): void {
    this.#calls.endJudged = judged;
  }

  /** Refs the child while `wanted`, or while a call or a close is in flight; unrefs it otherwise. */
  ref(wanted: boolean): void {
    this.#refWanted = wanted;
    this.#applyRef();
  }

  #applyRef(): void {
    const on = this.#refWanted || this.#calls.busy || this.#closing !== undefined;
    if (on === this.#refApplied) return; // warm calls go busy and idle twice each: most find nothing to change
    this.#refApplied = on;
    this.#proc.ref(on);
  }

  /** The tail of what the child wrote to its stderr so far. */
  stderr(): string {
    return this.#proc.stderr();
  }
}
