/**
 * `openIn`: a regular file of a target's filesystem, and nothing else.
 *
 * A container owns every path inside its root: it plants device nodes, FIFOs,
 * sockets, symlinks into `/proc/<pid>/root`, `..` chains, and swaps them
 * between any check and any open. Both paths below therefore go through the
 * addon's `openInRoot`: one walk with `openat2(RESOLVE_IN_ROOT |
 * RESOLVE_NO_MAGICLINKS)` that opens nothing (`O_PATH`), a type check on the
 * pinned inode, and only for a regular file the open with effects, as a
 * re-open of that inode.
 *
 * - The native path (a target by pid whose mount namespace is joined, no
 *   `confine`): this process opens the target's root (`/proc/<pid>/root`,
 *   checked against the pidfd) and resolves in it. No child, no Node start-up.
 * - Namespace paths: the same, below the root of their mount namespace, which
 *   the netns helper joins and hands over (`openInNamespaces`).
 * - The child path (a worker, `confine`, a target whose mount namespace is
 *   ours, a join the helper may not make): the action below, in the child, resolves against the
 *   root it entered, and hands the fd over for the parent to wrap.
 */
import { isContainerTarget } from '../lib/container';
import { constants, promises as fsp } from 'node:fs';
import createDebug from 'debug';
import { type GonsErrorCode, actionError, errnoName, gonsError, systemError } from '../lib/errors';
import { addon } from '../lib/native';
import { armDeadline } from './calls';
import { TransferredFd, fileHandle } from './handles';
import type { ReexecOptions, RunOptions } from './plan';
import { planReexec } from './plan';
import { type Target, checkTarget, kernelHasPidfdSetns, pidfdAlive } from '../lib/target';
import type { NamespaceType } from '../lib/namespaces';
import { checkCallable } from './role';
import { openInNamespaces } from './native-handles';

const log = createDebug('gons:handles');

/** The action of the child path. */
export const OPEN = 'gons:openIn';
/** The code of a refused file type. */
export const NOT_REGULAR = 'ERR_GONS_NOT_REGULAR_FILE' satisfies GonsErrorCode;

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_SYNC } = constants;
/** Node's string flags (as `fs.open` takes them), as numbers. */
const stringFlags: Record<string, number> = {
  r: O_RDONLY, rs: O_RDONLY | O_SYNC, sr: O_RDONLY | O_SYNC,
  'r+': O_RDWR, 'rs+': O_RDWR | O_SYNC, 'sr+': O_RDWR | O_SYNC,
  w: O_TRUNC | O_CREAT | O_WRONLY, wx: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL, xw: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL,
  'w+': O_TRUNC | O_CREAT | O_RDWR, 'wx+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL, 'xw+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL,
  a: O_APPEND | O_CREAT | O_WRONLY, ax: O_APPEND | O_CREAT | O_WRONLY | O_EXCL, xa: O_APPEND | O_CREAT | O_WRONLY | O_EXCL,
  as: O_APPEND | O_CREAT | O_WRONLY | O_SYNC, sa: O_APPEND | O_CREAT | O_WRONLY | O_SYNC,
  'a+': O_APPEND | O_CREAT | O_RDWR, 'ax+': O_APPEND | O_CREAT | O_RDWR | O_EXCL, 'xa+': O_APPEND | O_CREAT | O_RDWR | O_EXCL,
  'as+': O_APPEND | O_CREAT | O_RDWR | O_SYNC, 'sa+': O_APPEND | O_CREAT | O_RDWR | O_SYNC,
};

/** `flags` as a number, or undefined when it is neither a known string nor a 32-bit integer. */
export function numericFlags(flags: unknown): number | undefined {
  if (typeof flags === 'string') return Object.hasOwn(stringFlags, flags) ? stringFlags[flags] : undefined;
  return Number.isInteger(flags) && (flags as number) >= 0 && (flags as number) <= 0x7fffffff ? flags as number : undefined;
}

/** The refusal of a file that is not regular, naming path and type. */
export function notRegular(path: string, type: string): Error {
  return gonsError(NOT_REGULAR, `gons: openIn ${JSON.stringify(path)}: refused a ${type}: only a regular file is opened (a device, FIFO or socket has effects of its own when opened)`, {
    path, type,
  });
}

/**
 * Opens `path` below `root` (an O_PATH directory fd; -1: this process's own
 * root) as a regular file; resolves to its fd (close-on-exec, O_NOCTTY).
 * Rejects with `ERR_GONS_NOT_REGULAR_FILE`, or a system error (`code`,
 * `errno`, `syscall`, `path`): `ELOOP` for a magic link on the way.
 */
export function openRegular(root: number, path: string, flags: number, mode = 0o666): Promise<number> {
  return new Promise((resolve, reject) => {
    addon.openInRoot(root, path, flags, mode, (r) => {
      if ('fd' in r) return resolve(r.fd);
      if ('refused' in r) return reject(notRegular(path, r.refused));
      reject(systemError(`${errnoName(r.errno)}: ${addon.strerror(r.errno)}, ${r.syscall} '${path}'`, { errno: r.errno, syscall: r.syscall, path }));
    });
  });
}

/** The child path's action: the fd travels as a file, and the parent makes it a FileHandle. */
export async function openAction({ path, flags, mode }: { path: string; flags: string | number; mode?: number }): Promise<TransferredFd> {
  const n = numericFlags(flags);
  if (n === undefined) throw gonsError('ERR_INVALID_ARG_VALUE', `gons: openIn: invalid flags ${JSON.stringify(flags)}`);
  return new TransferredFd(await openRegular(-1, path, n, mode), 'file');
}

const NOT_JOINED = 'the target\'s mount namespace is not joined: the child\'s root is ours';

/**
 * The target to inspect for the native path: only the namespace types that
 * decide something there. The mount namespace (joined or not: native path or
 * child path) and the pid namespace (with the user namespace, which the
 * inspection always compares, the ERR_GONS_UNSAFE_TARGET refusals depend on
 * these two alone) — not the other six, whose stat(2)s were a third of the
 * call. Undefined when the mount namespace is not asked for (the child path
 * serves); an invalid target is passed on whole, for the plan to refuse.
 */
function narrowed(target: Target): Target | undefined {
  let checked: Required<Target>;
  try {
    checked = checkTarget('gons', target);
  } catch {
    return target;
  }
  const types = checked.types === 'all' ? ['mnt', 'pid'] as const : (['mnt', 'pid'] as const).filter((t) => (checked.types as NamespaceType[]).includes(t));
  // Spread from the caller's object: a misspelt key stays there for the plan to refuse.
  return types.includes('mnt') ? { ...target, types: [...types] } : undefined;
}

/**
 * The native path, when it can serve: resolves to the FileHandle, or to the
 * reason the child path must serve instead. Throws what the child path would
 * (bad options, a target that is gone or refused, the file's own errors).
 */
export async function openNative(where: Omit<ReexecOptions, 'param'>, path: string, flags: number, opts: RunOptions): Promise<fsp.FileHandle | string> {
  if (where.target === undefined) {
    // Namespace paths: the netns helper hands their mount namespace's root over (reexec/native-handles.ts).
    checkCallable(OPEN, 'runReexecAction');
    return openInNamespaces(where, path, flags, opts);
  }
  if (isContainerTarget(where.target)) return 'a container by name: the child path asks its engine';
  if (where.confine) return 'confine: the file is opened with the target\'s credentials';
  checkCallable(OPEN, 'runReexecAction');
  const target = narrowed(where.target);
  if (target === undefined) return NOT_JOINED;
  // The same checks, target inspection and refusals as a one-shot call's; nothing a child alone needs (its command line,
  // environment, request, the target's cgroups to join, the namespaces that decide nothing here).
  const plan = planReexec('runReexecAction', OPEN, { ...where, ...opts, target }, false);
  let rootFd: number;
  try {
    if (!kernelHasPidfdSetns()) return 'no pidfd to check the target\'s root against (Linux < 5.8)';
    if (!(plan.env.gons_target_types ?? '').split(',').includes('mnt')) return NOT_JOINED;
    /* c8 ignore next -- a joined mount namespace comes with the pidfd on Linux >= 5.8 */
    if (plan.pidfd === undefined) return 'no pidfd';
    const pid = where.target.pid;
    const opened = addon.openDirPath(`/proc/${pid}/root`);
    if ('errno' in opened) return `cannot open /proc/${pid}/root: ${addon.strerror(opened.errno)}`;
    // Opened by pid: it is the target's root only if the pidfd's process is still there.
    if (!pidfdAlive(plan.pidfd, pid)) {
      addon.closeFd(opened.fd);
      return `process ${pid} exited`;
    }
    rootFd = opened.fd;
  } finally {
    plan.release();
  }
  log('openIn %s: native path: resolved in /proc/%d/root, checked against the pidfd of %d', JSON.stringify(path), where.target.pid, where.target.pid);
  return openBelowRoot(rootFd, path, flags, opts);
}

/**
 * The native path's open, once it holds the root (which it closes): resolved
 * below it off the main thread, bounded by the call's timeout and signal (a
 * file opened after the call settled is closed), rejected as the child path
 * would reject.
 */
export function openBelowRoot(rootFd: number, path: string, flags: number, opts: RunOptions): Promise<fsp.FileHandle> {
  return new Promise<fsp.FileHandle>((resolve, reject) => {
    let settled = false;
    const disarm = armDeadline(OPEN, opts, (err) => {
      settled = true;
      reject(err);
    });
    const done = (fh?: fsp.FileHandle, err?: Error) => {
      disarm();
      if (settled) {
        // Too late: the call already rejected. Whatever was opened is closed.
        void fh?.close().catch(() => {});
        return;
      }
      settled = true;
      if (fh) resolve(fh);
      else reject(err);
    };
    openRegular(rootFd, path, flags).then(
      (fd) => fileHandle(fd).then((fh) => done(fh), (err: Error) => {
        /* c8 ignore next 2 -- the re-open of a regular file we hold failed: fd exhaustion */
        addon.closeFd(fd);
        done(undefined, err);
      }),
      (err: Error) => done(undefined, actionError(OPEN, err)),
    ).finally(() => addon.closeFd(rootFd));
  });
}

/** Logs that the child path serves an openIn, and why. */
export function logChildPath(path: string, why: string): void {
  log('openIn %s: child path: %s', JSON.stringify(path), why);
}
