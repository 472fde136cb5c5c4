/**
 * The parent's side: build the child's environment, re-spawn this program
 * with the pre-init hook preloaded, send the request over the channel and turn
 * the reply (or the child's death) into the call's result.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Duplex, Readable } from 'node:stream';
import createDebug from 'debug';
import { NamespaceSwitchError } from '../lib/errors';
import { preinitPath } from '../lib/native';
import { type Namespace, namespaceEnv } from '../lib/namespaces';
import { type Target, resolveTarget } from '../lib/target';
import { validateNamespaces } from '../lib/validate';
import { FrameReader, encodeFrame, writeFrame } from './channel';
import { isReexecChild, reexecEnabled } from './child';
import { type CompileCacheOption, compileCacheEnv } from './compile-cache';
import { AbortError, ReexecError, fromWire } from './errors';
import { ACTION_ENV, type Reply } from './protocol';
import { checkActionName, lookup } from './registry';

const log = createDebug('gons:reexec');

/** Options of `runReexecAction`. */
export interface ReexecOptions {
  /** Namespaces to join, in this order; gons's shape, `!` allowed. */
  namespaces?: Namespace[];
  /** Or: the namespaces of a running process, joined atomically through a pidfd. */
  target?: Target;
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
  /** The child's compile cache (Node ≥ 22.10): on by default, `false` turns it off, `{ directory }` chooses where. */
  compileCache?: CompileCacheOption;
}

/** Node's timers take at most 2^31-1 ms; a longer timeout would fire at once. */
export const MAX_TIMEOUT_MS = 0x7fffffff;
/** How long a child may linger after its reply before it is killed (gons parity). */
export const LINGER_MS = 1000;
/** Grace between SIGTERM and SIGKILL when a call is timed out or aborted. */
export const KILL_GRACE_MS = 1000;
/** How much of the child's stderr an error keeps. */
export const STDERR_TAIL = 64 * 1024;
/** How long to wait for the child's pipes to drain after it exited (a grandchild may hold them). */
const DRAIN_MS = 250;

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

/** Checks the options every re-execution shares. */
export function checkReexecOptions(name: string, o: ReexecOptions): void {
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
  if (o.namespaces !== undefined && o.target !== undefined) {
    throw Object.assign(new TypeError(`gons/reexec: action "${name}": namespaces and target cannot be combined`), {
      code: 'ERR_INVALID_ARG_VALUE',
    });
  }
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
export function prepareNamespaces(o: Pick<ReexecOptions, 'namespaces' | 'target'>): PreparedReexec {
  if (o.target === undefined) {
    validateNamespaces(o.namespaces ?? []);
    return { env: namespaceEnv(o.namespaces ?? []), close: () => {} };
  }
  const target = resolveTarget(o.target);
  if ('namespaces' in target) return { env: namespaceEnv(target.namespaces), close: target.close };
  return {
    env: { gons_target_pidfd: String(TARGET_FD), gons_target_types: target.types.join(',') },
    pidfd: target.pidfd,
    close: target.close,
  };
}

/** The command line that re-executes this program: same Node, same flags (minus inspectors), same main and args. */
export function reexecCommand(entry?: string | URL): string[] {
  const flags = process.execArgv.filter((a) => !/^--(inspect|debug)/.test(a));
  if (entry !== undefined) {
    const file = entry instanceof URL || entry.startsWith('file:') ? fileURLToPath(entry) : resolvePath(entry);
    return [...flags, file];
  }
  if (process.argv[1] === undefined) {
    throw new TypeError('gons/reexec: this program has no main script to re-execute; pass options.entry');
  }
  return [...flags, ...process.argv.slice(1)];
}

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
  /* c8 ignore start -- needs an installation under such a path */
  if (/[\s:]/.test(preinitPath)) {
    // LD_PRELOAD cannot name such a path: the child would run unswitched.
    throw Object.assign(new Error(`gons: cannot preload the hook from ${JSON.stringify(preinitPath)}: LD_PRELOAD paths cannot contain white space or ":"`), {
      code: 'ERR_GONS_HOOK_PATH',
    });
  }
  /* c8 ignore stop */
  env.LD_PRELOAD = [preinitPath, env.LD_PRELOAD].filter(Boolean).join(' ');
  return env;
}

/** Spawns the re-executed child with the channel on fd 3 (and a target's pidfd on fd 4). */
export function spawnReexec(action: string, o: Pick<ReexecOptions, 'env' | 'entry' | 'compileCache'>, prepared: PreparedReexec): ChildProcess {
  try {
    const args = reexecCommand(o.entry);
    log('re-executing %s for action %s with %o', args.at(-1), action, prepared.env);
    const stdio: StdioOptions = ['ignore', 'pipe', 'pipe', 'pipe'];
    if (prepared.pidfd !== undefined) stdio[TARGET_FD] = prepared.pidfd;
    return spawn(process.execPath, args, { env: compileCacheEnv(reexecEnv(action, prepared.env, o.env), o), stdio });
  } finally {
    prepared.close();
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
    child.once('exit', () => setTimeout(() => child.stdio.forEach((s) => s?.destroy()), DRAIN_MS).unref());
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal }));
  });
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

/** "was killed by SIGKILL; stderr: …": how a child ended, for error messages. */
export function describeEnd({ code, signal }: ChildEnd, stderrTail: string): string {
  const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
  return `${how}${stderrTail ? `; stderr: ${stderrTail.slice(-1024).trim()}` : ''}`;
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
 * inside `options.namespaces`, and resolves to its result.
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

  const child = spawnReexec(name, options, prepareNamespaces(options));
  if (child.pid === undefined) throw (await childEnded(child)).error; // e.g. EMFILE: no stdio either
  const stderr = collectOutput(child, options.output);
  const channel = child.stdio[3] as Duplex;
  let reply: Reply | undefined;
  let stopped: Error | undefined;
  const disarm = armDeadline(name, options, (err) => {
    stopped ??= err;
    terminate(child);
  });

  const reader = new FrameReader();
  const replied = new Promise<Reply>((resolve) => {
    channel.on('data', (chunk: Buffer) => {
      for (const msg of reader.push(chunk) as Reply[]) {
        if (reply) continue;
        reply = msg;
        // The result counts from now on; a child that lingers is killed (gons parity).
        disarm();
        setTimeout(() => child.kill('SIGKILL'), LINGER_MS).unref();
        resolve(msg);
      }
    });
  });
  channel.on('error', (err) => log('channel error: %s', err.message));
  writeFrame(channel, frame).then(() => channel.end(), (err) => log('cannot send request: %s', err.message));

  // The call settles with the reply; the child's exit (reaped by Node) need not be awaited.
  const ended = childEnded(child);
  const first = await Promise.race([replied.then((r) => ({ reply: r })), ended.then((e) => ({ end: e }))]).finally(disarm);
  if ('reply' in first && !stopped) return settleReply(name, first.reply) as R;
  const end = await ended;
  if (end.error) throw end.error;
  log('child %d of action %s ended: code %s, signal %s', child.pid, name, end.code, end.signal);

  if (stopped) throw stopped;
  const tail = stderr();
  throw new ReexecError(`gons/reexec: child of action ${JSON.stringify(name)} ${describeEnd(end, tail)} without a result`, {
    action: name, code: 'ERR_GONS_CHILD_DIED', exitCode: end.code, signal: end.signal, stderr: tail,
  });
}
