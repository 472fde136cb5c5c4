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
 */
export class NamespaceSwitchError extends Error {
  readonly envVar: string;
  readonly path: string;
  readonly syscall: string;
  readonly code: string;
  readonly errno: number;

  constructor(message: string, details: NamespaceSwitchErrorDetails) {
    super(message);
    this.name = 'NamespaceSwitchError';
    this.envVar = details.envVar;
    this.path = details.path;
    this.syscall = details.syscall;
    this.errno = -Math.abs(details.errno);
    this.code = errnoName(details.errno);
  }
}

/** `ENOENT` for 2; `EUNKNOWN` for numbers libuv does not know. */
export function errnoName(errno: number): string {
  const name = getSystemErrorName(-Math.abs(errno));
  return /^E[A-Z0-9]+$/.test(name) ? name : 'EUNKNOWN';
}
