/**
 * Options → plan. Every options object is parsed and checked once, here, at
 * the entrance of a call; everything after works on the plan: the command
 * line, the child's whole environment (the `gons_*` variables the hook reads
 * included), the target's pidfd, and the call's bounds.
 *
 * Options fail closed: a misspelt key must never run an action in the host's
 * namespaces, so unknown keys are refused at every level.
 */
import { statSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gonsError, systemError } from '../lib/errors';
import { preinitPath } from '../lib/native';
import type { NamespaceType } from '../lib/namespaces';
import { type Target, resolveTarget } from '../lib/target';
import { CONFINE_ENV, SECCOMP_ENV, confineValue, seccompValue } from '../lib/confine';
import { cgroupEnv, checkCgroupsOption } from '../lib/cgroup';
import { checkKeys } from '../lib/options';
import { namespaceEnv, validateNamespaces } from '../lib/validate';
import { checkMaxMessageBytes } from './channel';
import { checkCompileCacheOption, compileCacheEnv } from './compile-cache';
import { AbortError } from './errors';
import { childExecArgv, sanitizeChildEnv } from './flags';
import { FD, keepFds, preloadByFd } from './fds';
import type { Plan, ReexecOptions, RunOptions } from './options';
import { encodeRequest } from './protocol';
import { CHILD_ENV } from './role';

// The option types live below every layer that names them (options.ts); importable from here as before.
export type { NamespaceWorkerOptions, Plan, ReexecOptions, RunOptions } from './options';

/** Node's timers take at most 2^31-1 ms; a longer timeout would fire at once. */
export const MAX_TIMEOUT_MS = 0x7fffffff;

const workerKeys = ['namespaces', 'target', 'confine', 'cgroups', 'env', 'entry', 'timeout', 'signal', 'output', 'maxMessageBytes', 'compileCache'] as const;
const optionKeys = {
  runReexecAction: [...workerKeys, 'param'],
  openNamespaceWorker: workerKeys,
};

/**
 * Checks the options of one call (`timeout`, `signal`), for runs on a worker
 * or a pool and as part of every plan. `where` names the API in messages.
 */
export function checkRunOptions(where: string, action: string, o: RunOptions, keys: readonly string[] = ['timeout', 'signal']): void {
  checkKeys(`gons/reexec: ${where}`, 'option', o, keys);
  if (o?.timeout !== undefined && !(typeof o.timeout === 'number' && o.timeout > 0 && o.timeout <= MAX_TIMEOUT_MS)) {
    throw gonsError('ERR_OUT_OF_RANGE', `${label(where, action)}: timeout must be a positive number of milliseconds, at most ${MAX_TIMEOUT_MS}`);
  }
  if (o?.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw gonsError('ERR_INVALID_ARG_TYPE', `${label(where, action)}: signal must be an AbortSignal`);
  }
}

/** How messages name a call: by its action, or (a worker's start) by the API. */
function label(where: string, action: string): string {
  return `gons/reexec: ${subject(where, action)}`;
}

function subject(where: string, action: string): string {
  return action ? `action ${JSON.stringify(action)}` : where;
}

/** Throws the `AbortError` of an already aborted signal. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason });
}

/**
 * Parses and checks `options` of `where` for action `action` (empty for a
 * worker) into a plan: unknown keys and bad values are refused, the
 * namespaces checked (or the target's pidfd opened), the environment built.
 * Nothing is opened before the last check passed; an already aborted
 * `signal` rejects before anything is opened either. With `child` false
 * (the native handle paths, which start no child) only the checks and the
 * joins are made: `env` holds just the joins' `gons_*` variables, without the
 * target's own cgroups (nothing joins them; named `cgroups` are still read).
 */
export function planReexec(where: keyof typeof optionKeys, action: string, options: ReexecOptions = {}, child = true): Plan {
  const o = options;
  checkRunOptions(where, action, o, optionKeys[where]);
  checkKeys(`gons/reexec: ${where}`, 'target option', o.target, ['pid', 'types', 'allow']);
  // Entries that are not objects at all are namespaceEnv's to reject.
  if (Array.isArray(o.namespaces)) for (const ns of o.namespaces) if (ns && typeof ns === 'object') checkKeys(`gons/reexec: ${where}`, 'namespace entry', ns, ['type', 'path']);
  const what = label(where, action);
  const entry = checkChildOptions(what, o);
  const maxMessageBytes = checkMaxMessageBytes(subject(where, action), o.maxMessageBytes);
  if (o.confine !== undefined && typeof o.confine !== 'boolean') throw gonsError('ERR_INVALID_ARG_TYPE', `${what}: confine must be a boolean`);
  if (o.confine && o.target === undefined) {
    throw gonsError('ERR_INVALID_ARG_VALUE', `${what}: confine needs target: { pid }, a process whose credentials to take${o.namespaces !== undefined ? '; namespaces have none' : ''}`);
  }
  if (o.namespaces !== undefined && o.target !== undefined) throw gonsError('ERR_INVALID_ARG_VALUE', `${what}: namespaces and target cannot be combined`);
  checkCgroupsOption(what, o.cgroups, o.target !== undefined);
  checkCompileCacheOption(o.compileCache);
  const args = child ? [...childExecArgv(), ...(entry === undefined ? mainScript() : [entry])] : [];
  const request = child && where === 'runReexecAction' ? encodeRequest(where, 1, action, o.param) : undefined;
  throwIfAborted(o.signal);

  const joins = joinEnv(o, child);
  try {
    const env = child ? compileCacheEnv(sanitizeChildEnv(childEnv(joins.env, o.env)), o) : joins.env;
    const plan: Plan = { args, env, pidfd: joins.pidfd, output: o.output ?? 'stderr', maxMessageBytes, timeout: o.timeout, signal: o.signal, request, release: () => {
      plan.pidfd = undefined;
      joins.release();
      plan.release = () => {};
    } };
    return plan;
  } catch (err) {
    joins.release();
    throw err;
  }
}

/** The main script and arguments this program was started with. */
function mainScript(): string[] {
  if (process.argv[1] === undefined) {
    throw gonsError('ERR_GONS_NO_MAIN_SCRIPT', 'gons/reexec: this program has no main script to re-execute; pass options.entry');
  }
  return process.argv.slice(1);
}

/**
 * Checks what shapes the child's process, for a call or a pool: `env`,
 * `output`, and `entry`, returned as the absolute path to run.
 */
export function checkChildOptions(what: string, o: Pick<ReexecOptions, 'env' | 'output' | 'entry'>): string | undefined {
  checkKeys(what, 'env', o.env, Object.keys(o.env ?? {}));
  for (const [key, value] of Object.entries(o.env ?? {})) {
    if (typeof value !== 'string' || key === '' || key.includes('=') || key.includes('\0') || value.includes('\0')) {
      throw gonsError('ERR_INVALID_ARG_VALUE', `${what}: invalid env entry ${JSON.stringify(key)}`);
    }
  }
  if (o.output !== undefined && o.output !== 'stderr' && o.output !== 'ignore') throw gonsError('ERR_INVALID_ARG_VALUE', `${what}: output must be 'stderr' or 'ignore'`);
  return o.entry === undefined ? undefined : checkEntry(what, o.entry);
}

/** An `entry` as the absolute path of a file the child can run: a file: URL or a path, relative ones against the cwd. */
function checkEntry(what: string, entry: unknown): string {
  if (typeof entry !== 'string' && !(entry instanceof URL)) throw gonsError('ERR_INVALID_ARG_TYPE', `${what}: entry must be a path or a file: URL`);
  let path: string;
  try {
    path = entry instanceof URL || entry.startsWith('file:') ? fileURLToPath(entry) : resolvePath(entry);
  } catch (err) {
    throw gonsError('ERR_INVALID_ARG_VALUE', `${what}: entry ${JSON.stringify(String(entry))}: ${(err as Error).message}`);
  }
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch (err) {
    const { code, errno } = err as NodeJS.ErrnoException;
    throw systemError(`${what}: cannot run entry ${JSON.stringify(path)}: ${code}`, { errno: errno!, syscall: 'stat', path });
  }
  if (!isFile) throw gonsError('ERR_INVALID_ARG_VALUE', `${what}: cannot run entry ${JSON.stringify(path)}: not a file`, { path });
  return path;
}

/** The `gons_*` variables of the joins: checked namespaces, or a target's pidfd (opened here) and types; with `confine`, its credentials. */
function joinEnv(o: ReexecOptions, child: boolean): { env: Record<string, string>; pidfd?: number; release(): void } {
  if (o.target === undefined) return { env: { ...validateNamespaces(o.namespaces ?? []), ...cgroupEnv(o.cgroups, undefined) }, release: () => {} };
  // A container target was resolved to its pid by the async callers (planFor); one left here fails the key check above.
  const target = resolveTarget(o.target as Target, undefined, undefined, o.confine === true);
  try {
    const joined: { env: Record<string, string>; types: NamespaceType[]; pidfd?: number; release(): void } = 'namespaces' in target
      ? { env: namespaceEnv(target.namespaces), types: target.namespaces.map((ns) => ns.type.replace('!', '') as NamespaceType), release: target.close }
      : { env: { gons_target_pidfd: String(FD.targetPidfd), gons_target_types: target.types.join(',') }, types: target.types, pidfd: target.pidfd, release: target.close };
    const pid = (o.target as Target).pid;
    if (o.confine) {
      joined.env[CONFINE_ENV] = confineValue(pid, joined.types);
      const filters = seccompValue(pid, joined.pidfd);
      if (filters !== undefined) joined.env[SECCOMP_ENV] = filters;
    }
    // No child, no cgroups to join: the native paths read the target's (default) cgroups for nothing; named ones are still checked.
    if (child || o.cgroups !== undefined) Object.assign(joined.env, cgroupEnv(o.cgroups, pid));
    return joined;
  } catch (err) {
    target.close();
    throw err;
  }
}

/**
 * The child's environment: ours without any `gons_*` variable, the caller's
 * extra variables, the joins' variables, the child marker, and the hook
 * prepended to LD_PRELOAD.
 */
function childEnv(joins: Record<string, string>, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('gons_')) env[k] = v;
  Object.assign(env, extra, joins);
  env[CHILD_ENV] = '1';
  env.gons_parent_pid = String(process.pid);
  env.gons_keep_fds = keepFds(joins.gons_target_pidfd !== undefined);
  env.LD_PRELOAD = [preloadByFd ? `/proc/self/fd/${FD.hook}` : preinitPath, env.LD_PRELOAD].filter(Boolean).join(' ');
  return env;
}
