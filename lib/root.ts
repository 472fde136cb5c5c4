/**
 * Root handoff. After joining a mount namespace the hook put the process back
 * on its original root so Node could load its code; these calls move the root
 * and cwd into the target mount namespace and back. Node caches its cwd, so
 * each move also tells Node the new one.
 */
import { constants } from 'node:os';
import { NamespaceSwitchError } from './errors';
import { addon } from './native';
import { hookState } from './status';
import { namespaceKinds } from './namespaces';
import { refuseLoads } from './loads';

let savedCwd: string | undefined;
let sealed = false;

/** True when the hook joined a mount namespace, so there is a target root to enter. */
export function hasTargetRoot(): boolean {
  const st = hookState();
  return !!st && (st.joined & namespaceKinds.mnt.flag) !== 0;
}

function rootError(op: string, errno: number): NamespaceSwitchError {
  return new NamespaceSwitchError(`package gons: cannot ${op}: ${errnoText(errno)}`, {
    envVar: 'gons_mnt',
    path: '/',
    syscall: 'chroot',
    errno,
  });
}

function errnoText(errno: number): string {
  return errno === constants.errno.ENOSYS ? 'the pre-init hook is not loaded' : addon.strerror(errno);
}

/**
 * What Node and ICU would read lazily from the current root, done while it
 * is still ours: the local time zone (ICU reads /etc/localtime and may scan
 * the zoneinfo tree; a FIFO there would hang the first log line with a
 * date). Cached for the life of the process.
 */
function settleLazyReads(): void {
  new Date().toString();
  Intl.DateTimeFormat().resolvedOptions();
}

/** Moves root and cwd to the root of the joined mount namespace. Idempotent. */
export function enterTargetRoot(): void {
  if (savedCwd !== undefined) return;
  const cwd = process.cwd();
  settleLazyReads();
  // Before the move: on older Node lines the guard starts a loader thread.
  refuseLoads(true);
  const err = addon.enterTargetRoot();
  if (err !== 0) {
    refuseLoads(false);
    throw rootError('enter the root of the joined mount namespace', err);
  }
  savedCwd = cwd;
  process.chdir('/');
}

/**
 * Moves root and cwd to the target's root for good: the hook closes every fd
 * back to the host's root, so no path — not even one through
 * `/proc/self/fd` that a container plants for an action to follow — reaches
 * the host's filesystem from this process any more. Idempotent.
 */
export function sealTargetRoot(): void {
  if (sealed) return;
  settleLazyReads();
  refuseLoads(true);
  const err = addon.sealTargetRoot();
  if (err !== 0) {
    if (savedCwd === undefined) refuseLoads(false);
    throw rootError('seal the root of the joined mount namespace', err);
  }
  sealed = true;
  savedCwd = undefined;
  process.chdir('/');
}

/** True once `sealTargetRoot()` closed the way back. */
export function isTargetRootSealed(): boolean {
  return sealed;
}

/** Moves root and cwd back to where Node started. Idempotent; after `sealTargetRoot()` there is no way back. */
export function leaveTargetRoot(): void {
  if (sealed) throw rootError('return to the original root', 2 /* ENOENT: sealed */);
  if (savedCwd === undefined) return;
  const err = addon.leaveTargetRoot();
  // Fails after an action dropped the privileges chroot needs.
  if (err !== 0) throw rootError('return to the original root', err);
  const cwd = savedCwd;
  savedCwd = undefined;
  process.chdir(cwd);
  refuseLoads(false);
}
