/**
 * The re-executed child's side: serve requests from the parent on the
 * channel, one registered action each, inside the namespaces the pre-init hook
 * joined, and exit when the parent closes the channel.
 */
import { Socket } from 'node:net';
import { constants } from 'node:os';
import createDebug from 'debug';
import { NamespaceSwitchError, gonsError } from '../lib/errors';
import { addon } from '../lib/native';
import { enterTargetRoot, hasTargetRoot, isTargetRootSealed, leaveTargetRoot, sealTargetRoot } from '../lib/root';
import { hookState, joinedTypes, status } from '../lib/status';
import { confineChild, confineError } from '../lib/confine';
import { joinPidNamespace } from '../lib/pid';
import { isNamespaceType } from '../lib/namespaces';
import { FrameReader, encodeFrame, writeFrame } from './channel';
import { settleCompileCache } from './compile-cache';
import { ReexecError, toWire } from './errors';
import { FD } from './fds';
import { type Extracted, extractHandles, sendHandles } from './handles';
import { READY_ACTION, type Reply, type Request } from './protocol';
import { lookup } from './registry';
import { coverageRun, enableReexec, isReexecChild } from './role';

const log = createDebug('gons:child');

/**
 * In a child, stdout and stderr write synchronously: on Node >= 22 a pipe
 * write still queued when an action calls `process.exit()` is lost, and
 * with it the tail of the output that explains why the child died.
 */
if (isReexecChild()) {
  for (const stream of [process.stdout, process.stderr]) {
    (stream as unknown as { _handle?: { setBlocking?(on: boolean): void } })._handle?.setBlocking?.(true);
  }
}

let serving: Promise<void> | undefined;

/**
 * Lower level than `checkAction()`, as in Go: in a re-executed child, serves
 * the requests and resolves true once the parent closed the channel (without
 * exiting); in a parent, enables re-execution and resolves false.
 */
export async function runAction(): Promise<boolean> {
  if (!isReexecChild()) {
    enableReexec();
    return false;
  }
  serving ??= serve();
  await serving;
  return true;
}

/**
 * Call early in the program's main module, after registering actions. In a
 * re-executed child it runs the requested action, reports, and exits: it
 * never resolves. In the parent it enables re-execution and resolves.
 */
export async function checkAction(): Promise<void> {
  if (await runAction()) {
    process.exit(0);
  }
}

/**
 * The gons_* variables the hook would have consumed: still there means it
 * never ran (not preloaded, secure execution), so nothing was switched.
 */
const unswitched = Object.keys(process.env).find((k) => k === 'gons_target_pidfd' || k === 'gons_confine' || k === 'gons_cgroup_dirs' || k === 'gons_seccomp' || (k.startsWith('gons_') && isNamespaceType(k.slice(5)) && process.env[k]));

/** Why this child must not run actions: its namespace switch (or confinement) failed, or never happened. */
function switchFailure(): NamespaceSwitchError | null {
  if (unswitched !== undefined && !hookState()) {
    return new NamespaceSwitchError(`package gons: the pre-init hook did not run, so ${unswitched} was not switched`, {
      envVar: unswitched, path: process.env[unswitched] ?? '', syscall: '', errno: constants.errno.ENOSYS /* as for the root handoff */,
    });
  }
  return status() ?? confineError();
}

/**
 * Runs one request and answers it: at once when the action returns a plain
 * value (a warm call is a few dozen microseconds), else once its promise
 * settles.
 */
function handle(req: Request, answer: (r: Reply) => void): void {
  const failed = switchFailure();
  if (failed) return answer({ id: req.id, error: toWire(failed) });
  if (req.action === READY_ACTION) return answer({ id: req.id, result: process.pid });
  const action = lookup(req.action);
  if (!action) {
    const err = gonsError('ERR_GONS_UNREGISTERED_ACTION', `unregistered gons/reexec re-execution action ${JSON.stringify(req.action)}: register actions at the top level of the main module, before checkAction()`, {
      action: req.action,
    });
    return answer({ id: req.id, error: toWire(err) });
  }
  if (log.enabled) log('running action %s', req.action);
  const failedWith = (err: unknown) => answer({ id: req.id, error: toWire(err) });
  try {
    const result: unknown = action(req.param);
    const then = (result as { then?: unknown } | null)?.then; // as `await` does, a getter that throws included
    if (typeof then !== 'function') return answer({ id: req.id, result });
    Promise.resolve(result).then((value) => answer({ id: req.id, result: value }), failedWith);
  } catch (err) {
    failedWith(err);
  }
}

/**
 * Sends a reply; a result that cannot be cloned or transferred becomes an
 * error reply. Handles in the result go first, on the handle channel. A
 * failed write goes to `onError`.
 */
function reply(sock: Socket, action: string, message: Reply, onError: (err: Error) => void): void {
  let frame: Buffer[];
  let handles: Extracted | undefined;
  try {
    if ('result' in message) {
      handles = extractHandles(action, message.result, handleChannel);
      frame = encodeFrame(handles.fds.length ? { ...message, result: handles.value, handles: handles.slots } : message);
      if (handles.fds.length) sendHandles(action, handles);
    } else {
      frame = encodeFrame(message);
    }
  } catch (err) {
    handles?.release();
    const wrapped = err instanceof ReexecError ? err : gonsError('ERR_GONS_NOT_CLONEABLE', `gons/reexec: result of action ${JSON.stringify(action)} cannot be cloned: ${(err as Error).message}`, {
      action,
    });
    frame = encodeFrame({ id: message.id, error: toWire(wrapped) });
  }
  writeFrame(sock, frame).catch(onError);
}

/**
 * Back to the original root, or a logged failure: an action that dropped
 * privileges (`process.setuid`) can no longer `chroot`. Its results stand,
 * the process stays on the target's root (module loads stay refused) and
 * ends normally; an exception here would come after the replies were sent.
 * At exit (`code` given) a child still on the target's root ends at once:
 * what Node or a tool writes at exit (coverage, say) would land in the
 * container's filesystem.
 */
function leaveRoot(code?: unknown): void {
  try {
    leaveTargetRoot();
  } catch (err) {
    log('staying on the target\'s root: %s', (err as Error).message);
    /* c8 ignore next -- the process ends here, before it could write its coverage */
    if (typeof code === 'number') addon.exitNow(code);
  }
}

/** Whether `FD.handles` is the handle channel (`serve()` claims it). */
let handleChannel = false;


/** Serves every request until the parent closes its end, on the target root when a mount namespace was joined. */
async function serve(): Promise<void> {
  const bad = addon.claimChannel(FD.channel);
  if (bad !== 0) throw new Error(`gons/reexec: re-executed child has no channel on fd ${FD.channel}: ${addon.strerror(bad)}`);
  // Without it (a child started by hand) results cannot carry handles; everything else works.
  handleChannel = addon.claimChannel(FD.handles) === 0;
  // First the pid namespace (for children): it needs the thread pool started and, when confined, capabilities
  // that the confinement drops; it closes the hook's last fd to a namespace before anything else happens.
  if (!status()) await joinPidNamespace();
  log('child %d serving; the hook joined: %s', process.pid, joinedTypes().join(',') || 'nothing');
  const sock = new Socket({ fd: FD.channel, readable: true, writable: true, allowHalfOpen: true });
  // Confined: on the target root for good, with no way back (nothing to leave at exit).
  const confined = !status() && confineChild();
  if (!confined && !status() && hasTargetRoot()) {
    settleCompileCache();
    if (coverageRun()) {
      // Keep the way back, to write the coverage at exit on the original root.
      process.prependListener('exit', leaveRoot);
      enterTargetRoot();
    } else {
      // No way back to the host's filesystem is left for an action to be tricked into. Whatever Node or a
      // tool would write at exit would land in the container's filesystem: end without exit handlers.
      sealTargetRoot();
      process.prependListener('exit', (code) => addon.exitNow(code));
    }
  }
  const reader = new FrameReader();
  /** The requests being answered, each with how to answer it at once. */
  const running = new Set<{ id: number; action: string; answer: (r: Reply) => void }>();
  let drained: (() => void) | undefined;
  // Node is about to exit with actions still running: their promises can never settle (nothing is left that could
  // settle them). Say so, rather than leave the parent with a bare exit code (13 under a top-level await, else 0).
  const onBeforeExit = () => {
    for (const { id, action, answer } of running) {
      answer({ id, error: toWire(gonsError('ERR_GONS_ACTION_UNSETTLED', `gons/reexec: action ${JSON.stringify(action)} returned a promise that never settled: ` +
        'nothing kept the child\'s event loop alive', { action })) });
    }
  };
  process.on('beforeExit', onBeforeExit);
  try {
    await new Promise<void>((resolve, reject) => {
      sock.on('data', (chunk: Buffer) => {
        for (const req of reader.push(chunk) as Request[]) {
          // Answered once: by the action, or at exit by onBeforeExit. The writes go out in order, before end().
          const call = {
            id: req.id, action: req.action, answer: (r: Reply) => {
              if (!running.delete(call)) return;
              reply(sock, req.action, r, reject);
              if (running.size === 0) drained?.();
            },
          };
          running.add(call);
          handle(req, call.answer);
        }
      });
      sock.on('end', resolve);
      sock.on('error', reject);
    });
    if (running.size > 0) await new Promise<void>((resolve) => (drained = resolve));
  } finally {
    process.off('beforeExit', onBeforeExit);
    if (!isTargetRootSealed()) leaveRoot();
  }
  await new Promise<void>((resolve) => sock.end(resolve));
  log('served; parent closed the channel');
}
