/**
 * The parent's side: build the child's environment, re-spawn this program
 * with the pre-init hook preloaded, send the request over the channel and turn
 * the reply (or the child's death) into the call's result.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, openSync, statSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Duplex, Readable } from 'node:stream';
import createDebug from 'debug';
import { NamespaceSwitchError } from '../lib/errors';
import { addon, preinitPath } from '../lib/native';
import { type Namespace, type NamespaceType, namespaceEnv } from '../lib/namespaces';
import { type Target, resolveTarget } from '../lib/target';
import { CONFINE_ENV, confineValue } from '../lib/confine';
import { checkKeys } from '../lib/options';
import { validateNamespaces } from '../lib/validate';
import { CHILD_FD, FrameReader, ProtocolError, checkMaxMessageBytes, encodeFrame, writeFrame } from './channel';
import { coverageRun, isReexecChild, reexecEnabled } from './child';
import { type CompileCacheOption, compileCacheEnv } from './compile-cache';
import { AbortError, ReexecError, fromWire } from './errors';
import { childExecArgv, sanitizeChildEnv } from './flags';
import { HANDLE_FD, checkSlots, receiveFds, restoreHandles } from './handles';
import { ACTION_ENV, type Reply, asReply } from './protocol';
import { checkActionName, lookup } from './registry';

const log = createDebug('gons:reexec');

/** Options of `runReexecAction`. */
export interface ReexecOptions {
  /** Namespaces to join, in this order; gons's shape, `!` allowed. */
  namespaces?: Namespace[];
  /** Or: the namespaces of a running process, joined atomically through a pidfd. */
  target?: Target;
  /**
   * With `target`: give the child the target process's uids, gids, groups,
   * capability sets and no_new_privs, and no fd back to the host's root,
   * before the first action (see the README's "Confinement").
   */
  confine?: boolean;
  /** Parameter for the action; any structured-cloneable value. */
  param?: unknown;
  /** Extra environment for the child. */
  env?: Record<string, string>;
  /** Module to re-execute instead of the current main script; it must register the action and call `checkAction()`. */
  entry?: string | URL;
  /** Milliseconds; then the child is killed and the call rejects with code `ETIMEDOUT`. */
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

/** Node's timers take at most 2^31-1 ms; a longer timeout would fire at once. */
export const MAX_TIMEOUT_MS = 0x7fffffff;
/** How long a child may linger after its reply before it is killed (gons parity). */
export const LINGER_MS = 1000;
/**
 * In a coverage run (NODE_V8_COVERAGE set, as tap and c8 do) a child writes
 * its coverage as it exits, which on a loaded machine can take longer than
 * the linger: it gets this long instead, or its coverage would be lost.
 */
export const COVERAGE_LINGER_MS = 20_000;
/** Grace between SIGTERM and SIGKILL when a call is timed out or aborted. */
export const KILL_GRACE_MS = 1000;
/** How much of the child's stderr an error keeps. */
export const STDERR_TAIL = 64 * 1024;
/**
 * After the child exited, its pipes are read to EOF; only a pipe that stays
 * silent this long without EOF (a grandchild holds it) is destroyed.
 */
const DRAIN_MS = 1000;

function fail(action: string, code: string, message: string, where = 'runReexecAction'): ReexecError {
  return new ReexecError(`gons/reexec: ${where}: ${message}`, { action, code });
}

/** Guards as in Go: enabled by `checkAction()`, never from a child. */
export function checkCallable(name: string, where: string): void {
  if (isReexecChild()) {
    throw fail(name, 'ERR_GONS_RECURSIVE_REEXEC', 'tried to re-execute in already re-executing child process', where);
  }
  if (!reexecEnabled()) {
    throw fail(name, 'ERR_GONS_NOT_ENABLED',
      'application does not support forking and restarting, needs to call checkAction() first', where);
  }
}

/** The keys of `runReexecAction`'s options; a worker's and a worker call's are subsets. */
export const reexecOptionKeys = ['namespaces', 'target', 'confine', 'param', 'env', 'entry', 'timeout', 'signal', 'output', 'maxMessageBytes', 'compileCache'] as const;

/**
 * Checks the options every re-execution shares. Unknown keys are refused
 * (fail closed: a misspelt `namespaces` must never run the action in the
 * host's namespaces), and so are those of `target` and of each namespace entry.
 */
export function checkReexecOptions(name: string, o: ReexecOptions, keys: readonly string[] = reexecOptionKeys, where = 'runReexecAction'): void {
  checkKeys(`gons/reexec: ${where}`, 'option', o, keys);
  checkKeys(`gons/reexec: ${where}`, 'target option', o.target, ['pid', 'types']);
  // Entries that are not objects at all are validateNamespaces' to reject.
  if (Array.isArray(o.namespaces)) for (const ns of o.namespaces) if (ns && typeof ns === 'object') checkKeys(`gons/reexec: ${where}`, 'namespace entry', ns, ['type', 'path']);
  if (o.timeout !== undefined && !(typeof o.timeout === 'number' && o.timeout > 0 && o.timeout <= MAX_TIMEOUT_MS)) {
    throw Object.assign(new RangeError(`gons/reexec: action "${name}": timeout must be a positive number of milliseconds, at most ${MAX_TIMEOUT_MS}`), {
      code: 'ERR_OUT_OF_RANGE',
    });
  }
  for (const [key, value] of Object.entries(o.env ?? {})) {
    if (typeof value !== 'string' || key === '' || key.includes('=') || key.includes('\0') || value.includes('\0')) {
      throw Object.assign(new TypeError(`gons/reexec: action "${name}": invalid env entry ${JSON.stringify(key)}`), {
        code: 'ERR_INVALID_ARG_VALUE',
      });
    }
  }
  if (o.output !== undefined && o.output !== 'stderr' && o.output !== 'ignore') {
    throw Object.assign(new TypeError(`gons/reexec: action "${name}": output must be 'stderr' or 'ignore'`), { code: 'ERR_INVALID_ARG_VALUE' });
  }
  checkMaxMessageBytes(`action "${name}"`, (o as ReexecOptions).maxMessageBytes);
  if (o.confine !== undefined && typeof o.confine !== 'boolean') {
    throw Object.assign(new TypeError(`gons/reexec: action "${name}": confine must be a boolean`), { code: 'ERR_INVALID_ARG_TYPE' });
  }
  if (o.confine && o.target === undefined) {
    throw Object.assign(new TypeError(`gons/reexec: action "${name}": confine needs target: { pid }, a process whose credentials to take${
      o.namespaces !== undefined ? '; namespaces have none' : ''}`), { code: 'ERR_INVALID_ARG_VALUE' });
  }
  if (o.namespaces !== undefined && o.target !== undefined) {
    throw Object.assign(new TypeError(`gons/reexec: action "${name}": namespaces and target cannot be combined`), {
      code: 'ERR_INVALID_ARG_VALUE',
    });
  }
  if (o.entry !== undefined) checkEntry(name, o.entry);
}

/** The namespace part of a child's start: its gons_* variables and, for a target, the pidfd to pass. */
export interface PreparedReexec {
  env: Record<string, string>;
  pidfd?: number;
  /** Releases what preparing opened (the parent's copy of the pidfd). */
  close(): void;
}

/** fd of the target's pidfd in the child. */
const TARGET_FD = 4;

/** Validates the namespaces (or opens the target's pidfd) and builds the gons_* variables. */
export function prepareNamespaces(o: Pick<ReexecOptions, 'namespaces' | 'target' | 'confine'>): PreparedReexec {
  if (o.target === undefined) {
    validateNamespaces(o.namespaces ?? []);
    return { env: namespaceEnv(o.namespaces ?? []), close: () => {} };
  }
  const target = resolveTarget(o.target);
  const prepared: PreparedReexec = 'namespaces' in target
    ? { env: namespaceEnv(target.namespaces), close: target.close }
    : { env: { gons_target_pidfd: String(TARGET_FD), gons_target_types: target.types.join(',') }, pidfd: target.pidfd, close: target.close };
  if (o.confine) {
    const joined = 'namespaces' in target ? target.namespaces.map((ns) => ns.type.replace('!', '') as NamespaceType) : target.types;
    try {
      prepared.env[CONFINE_ENV] = confineValue(o.target.pid, joined);
    } catch (err) {
      target.close();
      throw err;
    }
  }
  return prepared;
}

/** An `entry` as the absolute path the child runs: a file: URL or a path, relative ones against the cwd. */
function entryPath(entry: string | URL): string {
  return entry instanceof URL || entry.startsWith('file:') ? fileURLToPath(entry) : resolvePath(entry);
}

/** Fails before anything is spawned on an `entry` that is not a file we can run (`ENOENT` with the path, …). */
function checkEntry(name: string, entry: unknown): void {
  if (typeof entry !== 'string' && !(entry instanceof URL)) {
    throw Object.assign(new TypeError(`gons/reexec: action "${name}": entry must be a path or a file: URL`), { code: 'ERR_INVALID_ARG_TYPE' });
  }
  let path: string;
  try {
    path = entryPath(entry);
  } catch (err) {
    throw Object.assign(new TypeError(`gons/reexec: action "${name}": entry ${JSON.stringify(String(entry))}: ${(err as Error).message}`), {
      code: 'ERR_INVALID_ARG_VALUE',
    });
  }
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch (err) {
    const { code, errno } = err as NodeJS.ErrnoException;
    throw Object.assign(new Error(`gons/reexec: action "${name}": cannot run entry ${JSON.stringify(path)}: ${code}`), { code, errno, syscall: 'stat', path });
  }
  if (!isFile) {
    throw Object.assign(new Error(`gons/reexec: action "${name}": cannot run entry ${JSON.stringify(path)}: not a file`), {
      code: 'ERR_INVALID_ARG_VALUE', path,
    });
  }
}

/** The command line that re-executes this program: same Node, same flags (only the safe ones, see flags.ts), same main and args. */
export function reexecCommand(entry?: string | URL): string[] {
  const flags = childExecArgv();
  if (entry !== undefined) return [...flags, entryPath(entry)];
  if (process.argv[1] === undefined) {
    throw new TypeError('gons/reexec: this program has no main script to re-execute; pass options.entry');
  }
  return [...flags, ...process.argv.slice(1)];
}

/**
 * LD_PRELOAD cannot spell a path with white space or ":" (a checkout in
 * "My Projects"): then the child inherits the hook on this fd and LD_PRELOAD
 * names it as /proc/self/fd/6. The hook closes it first thing (gons_keep_fds
 * does not list it) and scrubs the name from LD_PRELOAD.
 */
const HOOK_FD = 6;
const preloadByFd = /[\s:]/.test(preinitPath);

/**
 * The child's environment: ours without any `gons_*` variable, the caller's
 * extra variables, the namespace variables, the hook prepended to LD_PRELOAD.
 */
export function reexecEnv(action: string, nsEnv: Record<string, string>, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('gons_')) env[k] = v;
  Object.assign(env, extra, nsEnv);
  env[ACTION_ENV] = action;
  env.gons_parent_pid = String(process.pid);
  // The hook closes every other inherited fd above 2: the channel (3), a target's pidfd (4) and the handle channel (5) stay.
  env.gons_keep_fds = [String(CHILD_FD), nsEnv.gons_target_pidfd, String(HANDLE_FD)].filter(Boolean).join(',');
  env.LD_PRELOAD = [preloadByFd ? `/proc/self/fd/${HOOK_FD}` : preinitPath, env.LD_PRELOAD].filter(Boolean).join(' ');
  return env;
}

/** Our end of each child's handle channel, until the child has ended. */
const handleSockets = new WeakMap<ChildProcess, number>();

/**
 * Spawns the re-executed child with the channel on fd 3, a target's pidfd on
 * fd 4, the handle channel on fd 5 and, where LD_PRELOAD needs it, the hook on fd 6.
 */
export function spawnReexec(action: string, o: Pick<ReexecOptions, 'env' | 'entry' | 'compileCache'>, prepared: PreparedReexec): ChildProcess {
  let pair: number[] | undefined;
  let hookFd: number | undefined;
  try {
    const args = reexecCommand(o.entry);
    log('re-executing %s for action %s with %o', args.at(-1), action, prepared.env);
    const env = compileCacheEnv(sanitizeChildEnv(reexecEnv(action, prepared.env, o.env)), o);
    const made = addon.socketPair();
    /* c8 ignore next -- only fd exhaustion makes socketpair fail */
    if (!Array.isArray(made)) throw Object.assign(new Error(`gons/reexec: cannot make the handle channel: ${addon.strerror(made.errno)}`), { errno: -made.errno, syscall: made.syscall });
    pair = made;
    const stdio: StdioOptions = ['ignore', 'pipe', 'pipe', 'pipe', prepared.pidfd ?? 'ignore', pair[1]];
    if (preloadByFd) {
      hookFd = openSync(preinitPath, 'r');
      stdio.push(hookFd);
    }
    const child = spawn(process.execPath, args, { env, stdio });
    const parentEnd = pair[0];
    let open = true;
    const closeEnd = () => {
      if (open) addon.closeFd(parentEnd);
      open = false;
    };
    handleSockets.set(child, parentEnd);
    child.once('close', closeEnd);
    child.once('error', () => child.pid === undefined && closeEnd());
    pair = [pair[1]];
    return child;
  } finally {
    pair?.forEach((fd) => addon.closeFd(fd));
    if (hookFd !== undefined) closeSync(hookFd);
    prepared.close();
  }
}

/** A reply as read off the channel, with the fds it announced already taken off the handle channel. */
export type Received = Reply & { fds?: number[] };

/**
 * Takes the fds a reply announces off the child's handle channel. It runs for
 * every reply that has them, in order, as the reply is read — even for one
 * whose call has already settled — so that replies and fd messages stay in
 * step. Throws a `ProtocolError` when they do not add up.
 */
function takeFds(child: ChildProcess, reply: Reply): number[] | undefined {
  if (!('result' in reply) || reply.handles === undefined) return undefined;
  if (!checkSlots(reply.handles)) throw new ProtocolError('a malformed handle list');
  try {
    return receiveFds(handleSockets.get(child) ?? -1, reply.handles.length);
  } catch (err) {
    throw new ProtocolError((err as Error).message);
  }
}

/** Closes the fds of a reply nobody will take. */
export function dropFds(reply: Received): void {
  reply.fds?.forEach((fd) => addon.closeFd(fd));
}

/**
 * The reply with its handles in place, as Node objects. Fds that are not what
 * the reply says they are break the protocol: the child is killed and every
 * fd closed.
 */
export async function restoreReply(child: ChildProcess, action: string, reply: Received): Promise<Reply> {
  if (!reply.fds || !('result' in reply)) return reply;
  try {
    return { id: reply.id, result: await restoreHandles(reply.result, reply.handles!, reply.fds) };
  } catch (err) {
    child.kill('SIGKILL');
    log('child %d broke the protocol: %s', child.pid, (err as Error).message);
    throw new ReexecError(`gons/reexec: child of ${action} broke the protocol: ${(err as Error).message}`, { action, code: 'ERR_GONS_PROTOCOL', cause: err });
  }
}

/** Forwards a child's output to our stderr (never our stdout), unless ignored, and keeps the tail of its stderr. */
export function collectOutput(child: ChildProcess, output: ReexecOptions['output'] = 'stderr'): () => string {
  let tail = '';
  const forward = (stream: Readable | null, keep: boolean) => {
    stream?.on('data', (chunk: Buffer) => {
      if (output === 'stderr') process.stderr.write(chunk);
      if (keep) tail = (tail + chunk.toString('utf8')).slice(-STDERR_TAIL);
    });
  };
  forward(child.stdout, false);
  forward(child.stderr, true);
  return () => tail;
}

/** How a child ended; `error` when it could not be spawned at all. */
export interface ChildEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/**
 * Resolves once the child has exited and its pipes are closed; a grandchild
 * that still holds the pipes is not waited for. Never rejects.
 */
export function childEnded(child: ChildProcess): Promise<ChildEnd> {
  return new Promise((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
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

/** Ends a child: SIGTERM, then SIGKILL after a grace period. */
export function terminate(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
  t.unref();
  child.once('exit', () => clearTimeout(t));
}

/** A request as a frame; a param that cannot be cloned is a `ReexecError` before anything is sent. */
export function encodeRequest(where: string, id: number, action: string, param: unknown): Buffer[] {
  try {
    return encodeFrame({ id, action, param });
  } catch (err) {
    throw new ReexecError(`gons/reexec: ${where}: param of action ${JSON.stringify(action)} cannot be cloned: ${(err as Error).message}`, {
      action, code: 'ERR_GONS_NOT_CLONEABLE', cause: err,
    });
  }
}

/**
 * Arms a call's `timeout` and `signal`: `onExpire` gets the `ETIMEDOUT`
 * `ReexecError` or the `AbortError`, at most once. Returns the disarm.
 */
export function armDeadline(action: string, { timeout, signal }: { timeout?: number; signal?: AbortSignal }, onExpire: (err: Error) => void): () => void {
  const onAbort = () => onExpire(new AbortError(undefined, { cause: signal?.reason }));
  signal?.addEventListener('abort', onAbort, { once: true });
  const timer = timeout === undefined ? undefined : setTimeout(() => {
    signal?.removeEventListener('abort', onAbort);
    onExpire(new ReexecError(`gons/reexec: action ${JSON.stringify(action)} timed out after ${timeout} ms`, { action, code: 'ETIMEDOUT' }));
  }, timeout);
  return () => {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  };
}

/**
 * "was killed by SIGKILL": how a child ended, for error messages. They stay
 * one line: what the child printed is the error's `stderr`.
 */
export function describeEnd({ code, signal }: ChildEnd, stderrTail: string, what = ''): string {
  const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
  return `${how}${what}${stderrTail.trim() ? ' (its stderr is in .stderr)' : ''}`;
}

/**
 * Reads replies off a child's channel, which the child (inside an untrusted
 * container) may fill with anything: each well-formed reply goes to
 * `onReply`; the first malformed frame (bad bytes, too large, not a reply)
 * SIGKILLs the child and goes to `onBroken` as an `ERR_GONS_PROTOCOL`
 * `ReexecError`. Nothing throws out of the event handler.
 */
export function readReplies(child: ChildProcess, action: string, maxMessageBytes: number | undefined,
  onReply: (reply: Received) => void, onBroken: (err: ReexecError) => void): void {
  const reader = new FrameReader(maxMessageBytes);
  const channel = child.stdio[3] as Duplex;
  const onData = (chunk: Buffer) => {
    let taken: number[] | undefined;
    try {
      for (const msg of reader.push(chunk)) {
        const reply = asReply(msg);
        if (!reply) throw new ProtocolError('malformed reply');
        taken = takeFds(child, reply);
        onReply(taken ? { ...reply, fds: taken } : reply);
        taken = undefined;
      }
    } catch (err) {
      taken?.forEach((fd) => addon.closeFd(fd));
      // Nothing more from this child counts; keep draining until it is gone.
      channel.off('data', onData);
      channel.resume();
      log('child %d broke the protocol: %s', child.pid, (err as Error).message);
      child.kill('SIGKILL');
      onBroken(new ReexecError(`gons/reexec: child of ${action} broke the protocol: ${(err as Error).message}`, {
        action, code: 'ERR_GONS_PROTOCOL', cause: err,
      }));
    }
  };
  channel.on('data', onData);
}

/** Turns a reply into the call's value, or throws the error it carries. */
export function settleReply(action: string, reply: Reply): unknown {
  if ('result' in reply) return reply.result;
  if ('switchError' in reply) throw new NamespaceSwitchError(reply.switchError.message, reply.switchError);
  const cause = fromWire(reply.error);
  const code = (cause as { code?: unknown }).code;
  throw new ReexecError(`gons/reexec: action ${JSON.stringify(action)} failed: ${cause.message}`, {
    action,
    code: typeof code === 'string' ? code : 'ERR_GONS_ACTION_FAILED',
    cause,
  });
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
  if (!lookup(name)) {
    throw fail(name, 'ERR_GONS_UNREGISTERED_ACTION', `attempting to re-execute into unregistered action ${JSON.stringify(name)}`);
  }
  checkReexecOptions(name, options);
  const frame = encodeRequest('runReexecAction', 1, name, options.param);
  if (options.signal?.aborted) throw new AbortError(undefined, { cause: options.signal.reason });

  const started = performance.now();
  const child = spawnReexec(name, options, prepareNamespaces(options));
  if (child.pid === undefined) throw (await childEnded(child)).error; // e.g. EMFILE: no stdio either
  try {
    return await callChild<R>(name, options, child, frame);
  } finally {
    log('action %s in child %d: settled after %d ms', name, child.pid, Math.round(performance.now() - started));
  }
}

/** The one call of a one-shot child: send the request, read the reply or the child's end. */
async function callChild<R>(name: string, options: ReexecOptions, child: ChildProcess, frame: Buffer[]): Promise<R> {
  const stderr = collectOutput(child, options.output);
  const channel = child.stdio[3] as Duplex;
  let reply: Received | undefined;
  let stopped: Error | undefined;
  const disarm = armDeadline(name, options, (err) => {
    stopped ??= err;
    terminate(child);
  });

  const replied = new Promise<Received | ReexecError>((resolve) => {
    readReplies(child, JSON.stringify(name), options.maxMessageBytes, (msg) => {
      if (reply) throw new ProtocolError(`duplicate reply for call ${msg.id}`);
      if (msg.id !== 1) throw new ProtocolError(`reply for unknown call ${msg.id}`);
      reply = msg;
      // The result counts from now on; a child that lingers is killed (gons parity).
      disarm();
      setTimeout(() => child.kill('SIGKILL'), coverageRun() ? COVERAGE_LINGER_MS : LINGER_MS).unref();
      resolve(msg);
    }, resolve);
  });
  channel.on('error', (err) => log('channel error: %s', err.message));
  writeFrame(channel, frame).then(() => channel.end(), (err) => log('cannot send request: %s', err.message));

  // The call settles with the reply; the child's exit (reaped by Node) need not be awaited.
  const ended = childEnded(child);
  const first = await Promise.race([replied.then((r) => ({ reply: r })), ended.then((e) => ({ end: e }))]).finally(disarm);
  if ('reply' in first && !stopped) {
    if (first.reply instanceof ReexecError) throw first.reply;
    return settleReply(name, await restoreReply(child, JSON.stringify(name), first.reply)) as R;
  }
  if (reply) dropFds(reply);
  const end = await ended;
  if (end.error) throw end.error;
  log('child %d of action %s ended: code %s, signal %s', child.pid, name, end.code, end.signal);

  if (stopped) throw stopped;
  const tail = stderr();
  throw new ReexecError(`gons/reexec: child of action ${JSON.stringify(name)} ${describeEnd(end, tail, ' without a result')}`, {
    action: name, code: 'ERR_GONS_CHILD_DIED', exitCode: end.code, signal: end.signal, stderr: tail,
  });
}
