import { getSystemErrorName } from 'node:util';

/** What the hook (or a parent-side check) found wrong with one namespace entry. */
export interface NamespaceSwitchErrorDetails {
  /** The variable at fault, e.g. `gons_net` or `gons_order`. */
  envVar: string;
  /** The namespace path (or the `gons_order` value) at fault. */
  path: string;
  /** The failing call: `open`, `setns`, `ioctl`, `setresuid`, ...; empty for parse errors. */
  syscall: string;
  /** The positive errno of the failure. */
  errno: number;
}

/**
 * A failure to switch into a namespace, with gons's message wording, e.g.
 * `package gons: invalid gons_net reference "/foo": No such file or directory`.
 * `errno` is negative, as in Node's own system errors; `code` is its name.
 * Not running as root, an EPERM or EACCES message ends with what to do about it.
 */
export class NamespaceSwitchError extends Error {
  /** The variable at fault, e.g. `gons_net`, `gons_order`, `gons_target_pidfd`. */
  readonly envVar: string;
  /** The namespace path (or the variable's value) at fault. */
  readonly path: string;
  /** The failing call (`open`, `setns`, …); empty for parse errors. */
  readonly syscall: string;
  /** The errno's name, e.g. `ENOENT`, `EPERM`. */
  readonly code: string;
  /** The negative errno, as in Node's system errors. */
  readonly errno: number;

  constructor(message: string, details: NamespaceSwitchErrorDetails) {
    super(message + notRootHint(details.errno));
    this.name = 'NamespaceSwitchError';
    this.envVar = details.envVar;
    this.path = details.path;
    this.syscall = details.syscall;
    this.errno = -Math.abs(details.errno);
    this.code = errnoName(details.errno);
  }
}

/**
 * What a user who is not root can do about EPERM or EACCES, the usual
 * failure of a first try without privileges.
 */
function notRootHint(errno: number): string {
  const code = errnoName(errno);
  if ((code !== 'EPERM' && code !== 'EACCES') || process.geteuid?.() === 0) return '';
  return ' (not running as root: run as root, or join the user namespace that owns the target as well — a container\'s: include \'user\' in target.types or namespaces; gons joins it first when another join needs it)';
}

/** `ENOENT` for 2; `EUNKNOWN` for numbers libuv does not know. */
export function errnoName(errno: number): string {
  const name = getSystemErrorName(-Math.abs(errno));
  return /^E[A-Z0-9]+$/.test(name) ? name : 'EUNKNOWN';
}
