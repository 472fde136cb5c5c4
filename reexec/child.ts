/**
 * The re-executed child's side: serve requests from the parent on the
 * channel, one registered action each, inside the namespaces the pre-init hook
 * joined, and exit when the parent closes the channel.
 */
import { Socket } from 'node:net';
import { constants } from 'node:os';
import createDebug from 'debug';
import { addon } from '../lib/native';
import { enterTargetRoot, hasTargetRoot, isTargetRootSealed, leaveTargetRoot, sealTargetRoot } from '../lib/root';
import { hookState, joinedTypes, status } from '../lib/status';
import { confineChild, confineError } from '../lib/confine';
import { isNamespaceType } from '../lib/namespaces';
import { CHILD_FD, FrameReader, encodeFrame, writeFrame } from './channel';
import { settleCompileCache } from './compile-cache';
import { ReexecError, toWire } from './errors';
import { HANDLE_FD, type Extracted, extractHandles, sendHandles } from './handles';
import { ACTION_ENV, READY_ACTION, type Reply, type Request } from './protocol';
import { lookup } from './registry';

const log = createDebug('gons:child');

/** The action this process was re-executed for; taken out of the environment so its own children do not see it. */
const startedFor: string | undefined = process.env[ACTION_ENV];
delete process.env[ACTION_ENV];

/**
 * In a child, stdout and stderr write synchronously: on Node >= 22 a pipe
 * write still queued when an action calls `process.exit()` is lost, and
 * with it the tail of the output that explains why the child died.
 */
if (startedFor !== undefined) {
  for (const stream of [process.stdout, process.stderr]) {
    (stream as unknown as { _handle?: { setBlocking?(on: boolean): void } })._handle?.setBlocking?.(true);
  }
}

let enabled = false;
let serving: Promise<void> | undefined;

/** True in a re-executed child. */
export function isReexecChild(): boolean {
  return startedFor !== undefined;
}

/** True in a parent that called `checkAction()` or `runAction()`. */
export function reexecEnabled(): boolean {
  return enabled;
}

/**
 * Lower level than `checkAction()`, as in Go: in a re-executed child, serves
 * the requested action and resolves true once it has replied (without
 * exiting); in a parent, enables re-execution and resolves false.
 */
export async function runAction(): Promise<boolean> {
  if (startedFor === undefined) {
    enabled = true;
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
const unswitched = Object.keys(process.env).find((k) => k === 'gons_target_pidfd' || k === 'gons_confine' || (k.startsWith('gons_') && isNamespaceType(k.slice(5)) && process.env[k]));

async function handle(req: Request): Promise<Reply> {
  if (unswitched !== undefined && !hookState()) {
    return { id: req.id, switchError: {
      message: `package gons: the pre-init hook did not run, so ${unswitched} was not switched`,
      envVar: unswitched, path: process.env[unswitched] ?? '', syscall: '', errno: constants.errno.ENOSYS /* as for the root handoff */,
    } };
  }
  const failed = status() ?? confineError();
  if (failed) {
    const { message, envVar, path, syscall, errno } = failed;
    return { id: req.id, switchError: { message, envVar, path, syscall, errno: -errno } };
  }
  if (req.action === READY_ACTION) return { id: req.id, result: process.pid };
  const action = lookup(req.action);
  if (!action) {
    const err = new ReexecError(`unregistered gons/reexec re-execution action ${JSON.stringify(req.action)}: register actions at the top level of the main module, before checkAction()`, {
      action: req.action,
      code: 'ERR_GONS_UNREGISTERED_ACTION',
    });
    return { id: req.id, error: toWire(err) };
  }
  log('running action %s', req.action);
  try {
    return { id: req.id, result: await action(req.param) };
  } catch (err) {
    return { id: req.id, error: toWire(err) };
  }
}

/**
 * Sends a reply; a result that cannot be cloned or transferred becomes an
 * error reply. Handles in the result go first, on the handle channel.
 */
async function reply(sock: Socket, action: string, message: Reply): Promise<void> {
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
    const wrapped = err instanceof ReexecError ? err : new ReexecError(`gons/reexec: result of action ${JSON.stringify(action)} cannot be cloned: ${(err as Error).message}`, {
      action,
      code: 'ERR_GONS_NOT_CLONEABLE',
    });
    frame = encodeFrame({ id: message.id, error: toWire(wrapped) });
  }
  await writeFrame(sock, frame);
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
function leaveRoot(code?: number): void {
  try {
    leaveTargetRoot();
  } catch (err) {
    log('staying on the target\'s root: %s', (err as Error).message);
    /* c8 ignore next -- the process ends here, before it could write its coverage */
    if (typeof code === 'number') addon.exitNow(code);
  }
}

/** Whether fd 5 is the handle channel (`serve()` claims it). */
let handleChannel = false;

/**
 * A coverage run writes files at exit that must land on the original root:
 * Node's own (`NODE_V8_COVERAGE`: c8, tap) and tap's process info.
 */
export function coverageRun(): boolean {
  return process.env.NODE_V8_COVERAGE !== undefined || process.env._TAPJS_PROCESSINFO_COVERAGE_ === '1';
}

/** Serves every request until the parent closes its end, on the target root when a mount namespace was joined. */
async function serve(): Promise<void> {
  const bad = addon.claimChannel(CHILD_FD);
  if (bad !== 0) throw new Error(`gons/reexec: re-executed child has no channel on fd ${CHILD_FD}: ${addon.strerror(bad)}`);
  // Without it (a child started by hand) results cannot carry handles; everything else works.
  handleChannel = addon.claimChannel(HANDLE_FD) === 0;
  log('child %d serving %s; the hook joined: %s', process.pid, startedFor, joinedTypes().join(',') || 'nothing');
  const sock = new Socket({ fd: CHILD_FD, readable: true, writable: true, allowHalfOpen: true });
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
  const pending = new Set<Promise<void>>();
  const running = new Map<number, { action: string; settle: (r: Reply) => void }>();
  // Node is about to exit with actions still running: their promises can never settle (nothing is left that could
  // settle them). Say so, rather than leave the parent with a bare exit code (13 under a top-level await, else 0).
  const onBeforeExit = () => {
    for (const [id, { action, settle }] of running) {
      settle({ id, error: toWire(new ReexecError(`gons/reexec: action ${JSON.stringify(action)} returned a promise that never settled: ` +
        'nothing kept the child\'s event loop alive', { action, code: 'ERR_GONS_ACTION_UNSETTLED' })) });
    }
  };
  process.on('beforeExit', onBeforeExit);
  try {
    await new Promise<void>((resolve, reject) => {
      sock.on('data', (chunk: Buffer) => {
        for (const req of reader.push(chunk) as Request[]) {
          const answered = new Promise<Reply>((settle) => {
            running.set(req.id, { action: req.action, settle });
            handle(req).then(settle);
          });
          const p = answered.then((r) => {
            running.delete(req.id);
            return reply(sock, req.action, r);
          });
          pending.add(p);
          p.then(() => pending.delete(p), reject);
        }
      });
      sock.on('end', resolve);
      sock.on('error', reject);
    });
    await Promise.all(pending);
  } finally {
    process.off('beforeExit', onBeforeExit);
    if (!isTargetRootSealed()) leaveRoot(undefined);
  }
  await new Promise<void>((resolve) => sock.end(resolve));
  log('served; parent closed the channel');
}
