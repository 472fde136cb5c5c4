/**
 * The re-executed child's fd table: which inherited fd carries what. The
 * spawn (process.ts) places each entry at its number, the child (child.ts,
 * handles.ts) finds it there, and the hook's keep list (`gons_keep_fds`,
 * read by native/preinit.c) is derived from it. Nothing else names these
 * numbers.
 */
import { preinitPath } from '../lib/native';

/** The fds above stdio that the child inherits, by name. */
export const FD = {
  /**
   * The channel (channel.ts): requests in, replies out. A socket of its own,
   * never stdout, which an action may write to.
   */
  channel: 3,
  /**
   * A target's pidfd, joined by the hook through setns(pidfd) so that the
   * target's namespaces are taken atomically (`gons_target_pidfd` names it).
   * Only with `target`.
   */
  targetPidfd: 4,
  /**
   * The handle channel (handles.ts): a unix socket the child sends fds over
   * (SCM_RIGHTS). Not the channel: Node reads its pipes with plain read(2),
   * which would drop them.
   */
  handles: 5,
  /**
   * The hook itself, when LD_PRELOAD cannot spell its path (white space or
   * ":", a checkout in "My Projects"): LD_PRELOAD names it as
   * /proc/self/fd/6. The hook closes it first thing (it is not kept) and
   * scrubs the name from LD_PRELOAD.
   */
  hook: 6,
} as const;

/** The name of an entry of the table. */
export type FdName = keyof typeof FD;

/** Whether the child gets the hook on `FD.hook` because its path cannot be spelt in LD_PRELOAD. */
export const preloadByFd = /[\s:]/.test(preinitPath);

/**
 * The value of `gons_keep_fds`: the hook closes every other inherited fd
 * above 2 before anything else. The channel and the handle channel stay, and
 * a target's pidfd when there is one; the hook's own fd does not.
 */
export function keepFds(withTargetPidfd: boolean): string {
  return [FD.channel, ...(withTargetPidfd ? [FD.targetPidfd] : []), FD.handles].join(',');
}

/**
 * Node's `stdio` array of a spawn: `base` for fds 0-2, then each entry of
 * `at` at its number in the table; a gap below the highest one is `'ignore'`.
 */
export function stdioByFd<T>(base: [T, T, T], at: Partial<Record<FdName, T | 'ignore'>>): Array<T | 'ignore'> {
  const stdio: Array<T | 'ignore'> = [...base];
  for (const [name, value] of Object.entries(at) as Array<[FdName, T | 'ignore' | undefined]>) if (value !== undefined) stdio[FD[name]] = value;
  return Array.from(stdio, (v) => v ?? 'ignore');
}
