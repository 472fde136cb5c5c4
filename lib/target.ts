/**
 * Entering the namespaces of a running process: the parent opens a pidfd, so
 * the process is pinned from the call on, and the hook joins the chosen
 * namespaces with one atomic `setns(pidfd, mask)`.
 */
import { constants, release } from 'node:os';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { NamespaceSwitchError } from './errors';
import { addon } from './native';
import { type Namespace, type NamespaceType, isNamespaceType, namespaceKinds, namespaceTypes } from './namespaces';

/** A process whose namespaces to join. */
export interface Target {
  /** The process whose namespaces to join, e.g. a container's init; a live process, checked through a pidfd. */
  pid: number;
  /** Which of its namespaces; `'all'` (the default) means every one that differs from ours, like `nsenter --all`. */
  types?: NamespaceType[] | 'all';
}

/** What the hook needs: a pidfd and the types to join, or (before Linux 5.8) plain namespace paths. */
export type ResolvedTarget =
  | { pidfd: number; types: NamespaceType[]; close(): void }
  | { namespaces: Namespace[]; close(): void };

/** Linux 5.8 brought setns(pidfd, mask). */
export function kernelHasPidfdSetns(osRelease = release()): boolean {
  const [major, minor] = osRelease.split('.').map((n) => parseInt(n, 10));
  return major > 5 || (major === 5 && minor >= 8);
}

/**
 * The namespace's inode; a namespace we may not inspect is an error naming
 * the process. Our own is the one a join changes (the table's procname, e.g.
 * pid_for_children), which the hook compares too.
 */
function inode(pid: number | 'self', type: NamespaceType): number {
  const path = `/proc/${pid}/ns/${pid === 'self' ? namespaceKinds[type].procname : type}`;
  try {
    return statSync(path).ino;
  } catch (err) {
    const errno = -((err as NodeJS.ErrnoException).errno as number);
    throw new NamespaceSwitchError(`package gons: cannot inspect the ${type} namespace of process ${pid}: ${addon.strerror(errno)}`, {
      envVar: 'gons_target_pidfd', path, syscall: 'stat', errno,
    });
  }
}

/**
 * True while the process behind `pidfd` has not been reaped: the kernel
 * shows its pid in the pidfd's fdinfo, and -1 once it is gone (Linux >= 5.12;
 * earlier kernels keep showing the pid, and the hook's setns on the pidfd
 * then fails with ESRCH instead).
 */
function pidfdAlive(pidfd: number, pid: number): boolean {
  return readFileSync(`/proc/self/fdinfo/${pidfd}`, 'utf8').match(/^Pid:\s*(-?\d+)$/m)?.[1] === String(pid);
}

/** Checks a target's shape (`where` starts the messages); its `types` default to `'all'`. */
export function checkTarget(where: string, target: Target): Required<Target> {
  const { pid, types = 'all' } = target ?? {};
  const invalid = (message: string) => Object.assign(new TypeError(`${where}: ${message}`), { code: 'ERR_INVALID_ARG_VALUE' });
  // A pid read from a command's output is a string ("17638\n"): say so, not that 17638 is no positive integer.
  if (typeof pid === 'string') throw Object.assign(invalid(`target.pid must be a number, not the string ${JSON.stringify(pid)} (convert it with Number())`), { code: 'ERR_INVALID_ARG_TYPE' });
  if (!Number.isSafeInteger(pid) || pid <= 0) throw invalid(`target.pid must be a positive integer, not ${String(pid)}`);
  if (types !== 'all' && (!Array.isArray(types) || types.length === 0 || !types.every(isNamespaceType) || new Set(types).size !== types.length)) {
    throw invalid(`target.types must be 'all' or a list of distinct namespace types, not ${JSON.stringify(types)}`);
  }
  return { pid, types };
}

/**
 * Opens a pidfd for `target.pid` and picks the types to join, skipping
 * namespaces this process already shares with the target. Throws a
 * `NamespaceSwitchError` for a process that does not exist.
 */
export function resolveTarget(target: Target, pidfdSetns = kernelHasPidfdSetns(), inspect: (pid: number, type: NamespaceType) => number = inode): ResolvedTarget {
  const { pid, types } = checkTarget('gons', target);
  const opened = addon.pidfdOpen(pid);
  if ('errno' in opened) {
    throw new NamespaceSwitchError(`package gons: cannot open process ${pid}: ${addon.strerror(opened.errno)}`, {
      envVar: 'gons_target_pidfd', path: `/proc/${pid}`, syscall: opened.syscall, errno: opened.errno,
    });
  }
  const close = () => addon.closeFd(opened.fd);
  // 'all' means all this kernel has (time namespaces came with Linux 5.6).
  const wanted = types === 'all' ? namespaceTypes.filter((t) => existsSync(`/proc/self/ns/${t}`)) : namespaceTypes.filter((t) => types.includes(t));
  let chosen: NamespaceType[];
  try {
    // Already shared namespaces are skipped, as the hook does for paths.
    chosen = wanted.filter((t) => inspect(pid, t) !== inode('self', t));
  } catch (err) {
    close();
    throw err;
  }
  // The reads went by pid: if the process died and its pid was reused in
  // between, they described another process. Never run with what they chose.
  if (!pidfdAlive(opened.fd, pid)) {
    close();
    throw new NamespaceSwitchError(`package gons: process ${pid} exited while its namespaces were inspected: ${addon.strerror(constants.errno.ESRCH)}`, {
      envVar: 'gons_target_pidfd', path: `/proc/${pid}`, syscall: 'pidfd_open', errno: constants.errno.ESRCH,
    });
  }
  if (pidfdSetns && chosen.length > 0) return { pidfd: opened.fd, types: chosen, close };
  close();
  return { namespaces: chosen.map((t) => ({ type: `!${t}`, path: `/proc/${pid}/ns/${t}` })), close: () => {} };
}

