/**
 * The late pid namespace join. The hook does not join a pid namespace before
 * Node starts: it keeps the namespace as an fd. A process is visible only in
 * its own and ancestor pid namespaces' procfs, so the child never shows up in
 * the container's `/proc` — not while it still sits on the host's root during
 * Node's start-up, and not later. As in gons, the pid namespace is the one
 * for *children*: once the child is ready to serve, its main thread makes the
 * target's its namespace for children, so what an action spawns runs in the
 * target pid namespace. A thread whose namespace for children differs from
 * its own may not create threads (the kernel refuses CLONE_THREAD), so
 * libuv's thread pool, which starts all its threads on first use, is started
 * first, and so is the loader thread of lib/loads.ts where Node needs one.
 */
import { randomFill } from 'node:crypto';
import { addon } from './native';
import { hookState, refreshHookState } from './status';
import { prepareLoadGuard } from './loads';
import { namespaceKinds } from './namespaces';

/** True when the hook kept a pid namespace for the late join. */
export function hasPendingPidNamespace(): boolean {
  return hookState()?.pidPending === true;
}

/** Starts libuv's thread pool (all its threads at once): a crypto job always runs there, never on io_uring. */
function startThreadPool(): Promise<void> {
  return new Promise((resolve, reject) => randomFill(new Uint8Array(1), (err) => (err ? reject(err) : resolve())));
}

/**
 * Joins the kept pid namespace on the main thread; the hook closes its fd to
 * it. Afterwards the main thread cannot start threads (`worker_threads`, the
 * inspector); the thread pool already runs. A failure is in the hook's
 * record, which is read again: `status()` reports it, and no action runs.
 */
export async function joinPidNamespace(): Promise<void> {
  if (!hasPendingPidNamespace()) return;
  // Every thread the child will need must exist first: the pool, and the loader thread that guards module loads on
  // the target's root (Node < 22.15; only for a child that joined a mount namespace).
  if ((hookState()!.joined & namespaceKinds.mnt.flag) !== 0) prepareLoadGuard();
  await startThreadPool();
  addon.joinPid();
  refreshHookState();
}
