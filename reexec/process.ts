/**
 * The re-executed child as a process: spawned from a plan with its fds in
 * place, its output forwarded (never to our stdout) and its stderr's tail
 * kept, and its end — one lifecycle for a one-shot call and a worker alike.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import createDebug from 'debug';
import { systemError } from '../lib/errors';
import { addon, preinitPath } from '../lib/native';
import { FD, preloadByFd, stdioByFd } from './fds';
import type { Plan } from './options';
import { coverageRun } from './role';

const log = createDebug('gons:reexec');

/**
 * How long a child may take to end on its own before SIGKILL: after its last
 * reply (gons's linger), after a worker's close, and between SIGTERM and
 * SIGKILL when a call is timed out or aborted.
 */
const GRACE_MS = 1000;
/**
 * In a coverage run (NODE_V8_COVERAGE set, as tap and c8 do) a child writes
 * its coverage as it exits, which on a loaded machine can take longer than
 * the grace: it gets this long instead, or its coverage would be lost.
 */
const COVERAGE_GRACE_MS = 20_000;
/** How much of the child's stderr an error keeps. */
const STDERR_TAIL = 64 * 1024;

/** How a child ended; `error` when it could not be spawned at all. */
export interface ChildEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** A spawned child: its channel, our end of its handle channel (fds.ts), its output and its end. */
export class ReexecProcess {
  readonly pid: number;
  /** Requests go out and replies come in here. */
  readonly channel: Duplex;
  /** Our end of the handle channel: fds the child sends with a reply. */
  readonly handleSocket: number;
  /** Resolves once the child has exited and its pipes are closed (a grandchild holding them is not waited for); never rejects. */
  readonly ended: Promise<ChildEnd>;
  private tail = '';

  constructor(readonly child: ChildProcess, handleSocket: number, ended: Promise<ChildEnd>, output: Plan['output']) {
    this.pid = child.pid!;
    this.channel = child.stdio[FD.channel] as Duplex;
    this.handleSocket = handleSocket;
    this.ended = ended;
    this.channel.on('error', (err) => log('child %d: channel error: %s', this.pid, err.message));
    const forward = (stream: Readable | null, keep: boolean) => stream?.on('data', (chunk: Buffer) => {
      if (output === 'stderr') process.stderr.write(chunk);
      if (keep) this.tail = (this.tail + chunk.toString('utf8')).slice(-STDERR_TAIL);
    });
    forward(child.stdout, false);
    forward(child.stderr, true);
  }

  /** The tail of what the child wrote to its stderr so far. */
  stderr(): string {
    return this.tail;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGKILL now. */
  kill(): void {
    this.child.kill('SIGKILL');
  }

  /**
   * SIGTERM, then SIGKILL after the grace. In a coverage run the child's
   * SIGTERM handler (tap's, c8's) writes its coverage before it dies: the
   * longer grace, or a loaded machine turns a SIGTERM into a SIGKILL.
   */
  terminate(): void {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    this.killAfterGrace();
  }

  /** SIGKILL unless the child has ended within the grace (by default longer in a coverage run, for its coverage). */
  killAfterGrace(ms = coverageRun() ? COVERAGE_GRACE_MS : GRACE_MS): void {
    const t = setTimeout(() => this.kill(), ms);
    t.unref();
    void this.ended.then(() => clearTimeout(t));
  }

  /** Lets this process exit, or keeps it alive, while the child runs. */
  ref(on: boolean): void {
    for (const it of [this.child, ...this.child.stdio] as Array<Socket | ChildProcess | null>) {
      if (on) it?.ref?.();
      else it?.unref?.();
    }
  }
}

/**
 * Spawns the re-executed child of `plan` with its fds where the fd table
 * (fds.ts) puts them: the channel, a target's pidfd, the handle channel and,
 * where LD_PRELOAD needs it, the hook. Releases the plan whatever happens; rejects with the
 * spawn's error (`EMFILE`, ...).
 */
export async function startProcess(plan: Plan): Promise<ReexecProcess> {
  let child: ChildProcess;
  let hookFd: number | undefined;
  let pair: number[] | undefined;
  try {
    log('re-executing %s with %o', plan.args.at(-1), Object.fromEntries(Object.entries(plan.env).filter(([k]) => k.startsWith('gons_'))));
    const made = addon.socketPair();
    /* c8 ignore next -- only fd exhaustion makes socketpair fail */
    if (!Array.isArray(made)) throw systemError(`gons/reexec: cannot make the handle channel: ${addon.strerror(made.errno)}`, made);
    pair = made;
    if (preloadByFd) hookFd = openSync(preinitPath, 'r');
    const stdio: StdioOptions = stdioByFd<'ignore' | 'pipe' | number>(['ignore', 'pipe', 'pipe'], {
      channel: 'pipe', targetPidfd: plan.pidfd ?? 'ignore', handles: pair[1], hook: hookFd,
    });
    child = spawn(process.execPath, plan.args, { env: plan.env, stdio });
  } catch (err) {
    /* c8 ignore next 2 -- spawn throws at once only for arguments we never pass; its failures (EMFILE, ...) come as events */
    pair?.forEach((fd) => addon.closeFd(fd));
    throw err;
  } finally {
    if (hookFd !== undefined) closeSync(hookFd);
    plan.release();
  }
  addon.closeFd(pair[1]);
  const ended = childEnded(child);
  // Our end of the handle channel lives as long as the child.
  void ended.then(() => addon.closeFd(pair![0]));
  if (child.pid === undefined) throw (await ended).error; // e.g. EMFILE: no stdio either
  return new ReexecProcess(child, pair[0], ended, plan.output);
}

/**
 * After the child exited, its pipes are read to EOF; only a pipe that stays
 * silent this long without EOF (a grandchild holds it) is destroyed.
 */
const DRAIN_MS = 1000;

function childEnded(child: ChildProcess): Promise<ChildEnd> {
  return new Promise((resolve) => {
    child.on('error', (error) => {
      if (child.pid === undefined) resolve({ code: null, signal: null, error });
      else log('child %d: %s', child.pid, error.message); // a failed kill of a child that is gone
    });
    child.once('exit', () => child.stdio.forEach((s) => s && drainThenDestroy(s as Readable)));
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal }));
  });
}

/**
 * Destroys a pipe of an exited child once it has been silent for DRAIN_MS.
 * The check runs in a setImmediate: after a stalled event loop the timer
 * fires before the poll phase has read what is waiting in the pipe, and the
 * tail of a dying child's output would be lost.
 */
function drainThenDestroy(stream: Readable): void {
  let last = Date.now();
  stream.on('data', () => (last = Date.now()));
  const check = () => {
    if (stream.destroyed || stream.readableEnded) return;
    if (Date.now() - last >= DRAIN_MS) stream.destroy();
    else setTimeout(() => setImmediate(check), DRAIN_MS).unref();
  };
  setTimeout(() => setImmediate(check), DRAIN_MS).unref();
}

/**
 * "was killed by SIGKILL": how a child ended, for error messages. They stay
 * one line: what the child printed is the error's `stderr`.
 */
export function describeEnd({ code, signal }: ChildEnd, stderrTail: string): string {
  const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
  return `${how} without a result${stderrTail.trim() ? ' (its stderr is in .stderr)' : ''}`;
}
