/**
 * Which side of a re-execution this process is on. A re-executed child is
 * marked by `gons_reexec` in its environment (the parent sets it, this module
 * takes it out at load so the action's own children never see it); a parent
 * may re-execute only once `checkAction()` (or `runAction()`) enabled it, as
 * in Go's gons/reexec.
 */
import { gonsError } from '../lib/errors';

/** Marks a re-executed child. */
export const CHILD_ENV = 'gons_reexec';

const child = process.env[CHILD_ENV] !== undefined;
delete process.env[CHILD_ENV];

let enabled = false;

/** True in a re-executed child. */
export function isReexecChild(): boolean {
  return child;
}

/** Called by `runAction()` in a parent: from now on it may re-execute. */
export function enableReexec(): void {
  enabled = true;
}

/** Throws unless this process may re-execute: a parent that called `checkAction()`, never a child. */
export function checkCallable(action: string, where: string): void {
  if (child) throw gonsError('ERR_GONS_RECURSIVE_REEXEC', `gons/reexec: ${where}: tried to re-execute in already re-executing child process`, { action });
  if (!enabled) throw gonsError('ERR_GONS_NOT_ENABLED', `gons/reexec: ${where}: application does not support forking and restarting, needs to call checkAction() first`, { action });
}

/**
 * A coverage run writes files at exit that must land on the original root:
 * Node's own (`NODE_V8_COVERAGE`: c8, tap) and tap's process info.
 */
export function coverageRun(): boolean {
  return process.env.NODE_V8_COVERAGE !== undefined || process.env._TAPJS_PROCESSINFO_COVERAGE_ === '1';
}
