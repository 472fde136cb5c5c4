/**
 * gons's errors: the classes, the one table of codes, and the one way to
 * build each kind of error.
 *
 * Every condition gons makes has a code from `errorCodes` (its class and a
 * one-line meaning); `gonsError(code, message, fields)` builds it with the
 * class the table names, so a code never appears with two classes. A
 * system call's failure is `systemError` (its errno's name as the code); a
 * failed namespace switch is a `NamespaceSwitchError`; an action's failure,
 * as the parent sees it, is `actionError`.
 *
 * Messages start with the entry point the user called and the function:
 * `gons: listNamespaces: …`, `gons/reexec: createNamespacePool: …`,
 * `gons/testing: createNamespaces: …` (`where` in the checks). A failed
 * namespace switch keeps gons's own wording, `package gons: …`, as the hook
 * writes it. A system error reads as Node's own (`ENOENT: no such file or
 * directory, open '/x'`), or says what gons was doing, then the errno's text.
 */
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

/** Fields of a `ReexecError` beyond its message. */
export interface ReexecErrorOptions {
  action: string;
  code: ReexecErrorCode;
  exitCode?: number | null;
  signal?: NodeJS.Signals | null;
  stderr?: string;
  cause?: unknown;
}

/**
 * A re-executed action failed, or could not be run. Shaped like execa's
 * errors: what Node users expect of a failed child process (`exitCode`,
 * `signal`, `stderr`, `cause`).
 */
export class ReexecError extends Error {
  /** The action's name. */
  readonly action: string;
  /** Always `ERR_GONS_*`: what went wrong (the action's own error, and its code, is the `cause`). */
  readonly code: ReexecErrorCode;
  /** The child's exit code, when it exited; null when it was killed or still running. */
  readonly exitCode: number | null;
  /** The signal that ended the child, if any. */
  readonly signal: NodeJS.Signals | null;
  /** The tail (at most 64 KiB) of the child's stderr. */
  readonly stderr: string;

  constructor(message: string, options: ReexecErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ReexecError';
    this.action = options.action;
    this.code = options.code;
    this.exitCode = options.exitCode ?? null;
    this.signal = options.signal ?? null;
    this.stderr = options.stderr ?? '';
  }
}

/**
 * Rejection for an aborted call, as Node's own APIs make it (`code`
 * `ABORT_ERR`); an aborted one-shot call also says how its child ended.
 */
export class AbortError extends Error {
  /** Always `ABORT_ERR`, as Node's own aborted calls. */
  readonly code = 'ABORT_ERR';
  /** A one-shot call's child: its exit code; null when a signal ended it, or for a worker's call (the worker runs on). */
  exitCode: number | null = null;
  /** A one-shot call's child: the signal that ended it. */
  signal: NodeJS.Signals | null = null;
  /** A one-shot call's child: the tail of its stderr. */
  stderr = '';
  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}

/** Fields of a `ContainerError` beyond its message. */
export interface ContainerErrorDetails {
  code: ContainerErrorCode;
  container: string;
  socketPath: string;
  statusCode?: number;
  cause?: unknown;
}

/** Conditions of a container engine; `code` says which. */
export class ContainerError extends Error {
  /** `ERR_GONS_ENGINE_UNAVAILABLE`, `ERR_GONS_ENGINE_PERMISSION`, `ERR_GONS_NO_SUCH_CONTAINER`, `ERR_GONS_CONTAINER_NOT_RUNNING` or `ERR_GONS_ENGINE_API`. */
  readonly code: ContainerErrorCode;
  /** The container as it was asked for. */
  readonly container: string;
  /** The engine's API socket. */
  readonly socketPath: string;
  /** The engine's HTTP status, when it answered. */
  readonly statusCode?: number;

  constructor(message: string, details: ContainerErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'ContainerError';
    this.code = details.code;
    this.container = details.container;
    this.socketPath = details.socketPath;
    if (details.statusCode !== undefined) this.statusCode = details.statusCode;
  }
}

/** The classes a code is made with, by name. */
const classes = { Error, TypeError, RangeError, ReexecError, ContainerError, AbortError };

/** One code: the class gons makes it with, what it means, and whether a re-executed child may send it. */
interface CodeEntry {
  readonly kind: keyof typeof classes;
  readonly meaning: string;
  /** Made inside the child (not by the action): the parent keeps the code on its `ReexecError`. */
  readonly child?: true;
}

/**
 * Every code gons makes, with its class and meaning. Codes named after
 * Node's (`ERR_INVALID_ARG_VALUE`, `ABORT_ERR`, …) mean what Node's do; a
 * system call's failure is its errno's name (`systemError`).
 */
export const errorCodes = {
  ERR_INVALID_ARG_VALUE: { kind: 'TypeError', meaning: 'an argument or option has a value gons refuses (an unknown key, a malformed name, path or flag)' },
  ERR_INVALID_ARG_TYPE: { kind: 'TypeError', meaning: 'an argument or option has the wrong type (a pid as a string, options that are no object)' },
  ERR_OUT_OF_RANGE: { kind: 'RangeError', meaning: 'a number is out of its range (timeout, maxMessageBytes)' },
  ERR_SOCKET_BAD_PORT: { kind: 'RangeError', meaning: 'a port is no integer from 0 to 65535' },
  ABORT_ERR: { kind: 'AbortError', meaning: 'the call\'s signal was aborted' },
  ERR_GONS_ACTION_FAILED: { kind: 'ReexecError', meaning: 'the action threw or rejected; its error, with its own code, is the cause' },
  ERR_GONS_CHILD_DIED: { kind: 'ReexecError', meaning: 'the child died without a result (crash, exit, signal, kill()); exitCode, signal, stderr say how' },
  ERR_GONS_ACTION_UNSETTLED: { kind: 'ReexecError', meaning: 'the action\'s promise could never settle: the child\'s event loop ran empty', child: true },
  ERR_GONS_TIMEOUT: { kind: 'ReexecError', meaning: 'the call\'s timeout passed' },
  ERR_GONS_NOT_CLONEABLE: { kind: 'ReexecError', meaning: 'a param or result cannot be cloned', child: true },
  ERR_GONS_UNREGISTERED_ACTION: { kind: 'ReexecError', meaning: 'the action is not registered, in the parent or in the child', child: true },
  ERR_GONS_DUPLICATE_ACTION: { kind: 'ReexecError', meaning: 'register() was given a name already registered' },
  ERR_GONS_NOT_ENABLED: { kind: 'ReexecError', meaning: 'checkAction() was not called before a call' },
  ERR_GONS_RECURSIVE_REEXEC: { kind: 'ReexecError', meaning: 'a re-executed child tried to re-execute', child: true },
  ERR_GONS_PROTOCOL: { kind: 'ReexecError', meaning: 'the child broke the channel\'s protocol (it is killed)' },
  ERR_GONS_NOT_TRANSFERABLE: { kind: 'ReexecError', meaning: 'the result holds a handle that cannot move to the parent', child: true },
  ERR_GONS_PROGRAM_UNREADABLE: { kind: 'ReexecError', meaning: 'the root of a joined user namespace cannot read the program or gons (path, uid, gid)' },
  ERR_GONS_TARGET_EXITED: { kind: 'ReexecError', meaning: 'a worker\'s target process exited: the worker was killed' },
  ERR_GONS_WORKER_CLOSED: { kind: 'ReexecError', meaning: 'a call on a worker that is closed' },
  ERR_GONS_POOL_CLOSED: { kind: 'ReexecError', meaning: 'the pool was closed with the call not yet run' },
  ERR_GONS_LOAD_REFUSED: { kind: 'Error', meaning: 'a non-builtin module was loaded while on the target\'s root (specifier)', child: true },
  ERR_GONS_NOT_REGULAR_FILE: { kind: 'Error', meaning: 'openIn found a device, FIFO, socket or directory; nothing was opened (path, type)', child: true },
  ERR_GONS_NOT_A_SOCKET: { kind: 'Error', meaning: 'connectIn({ path }) found a FIFO, device, regular file or directory, not a unix socket; nothing was connected to (path, type)', child: true },
  ERR_GONS_UNSAFE_TARGET: { kind: 'Error', meaning: 'the target could turn the child against the host and target.allow does not accept it (pid, risk)' },
  ERR_GONS_CONFINE_UNMAPPED: { kind: 'Error', meaning: 'confine: the target\'s ids are not mapped in its user namespace' },
  ERR_GONS_CGROUP_UNRESOLVED: { kind: 'Error', meaning: 'a cgroup of the target cannot be joined from here (path)' },
  ERR_GONS_NO_MAIN_SCRIPT: { kind: 'TypeError', meaning: 'no entry and no main script to re-execute (node -e, a REPL)' },
  ERR_GONS_NOT_BUILT: { kind: 'Error', meaning: 'no native build or prebuild for this platform and Node ABI, or an addon without its hook' },
  ERR_GONS_ABI_MISMATCH: { kind: 'Error', meaning: 'the native build was made for another Node ABI' },
  ERR_GONS_NATIVE_LOAD_FAILED: { kind: 'Error', meaning: 'the loader refused the addon otherwise (e.g. a C library too old)' },
  ERR_GONS_UNSHARE_FAILED: { kind: 'Error', meaning: 'gons/testing: unshare failed (exitCode, stderr)' },
  ERR_GONS_ENGINE_UNAVAILABLE: { kind: 'ContainerError', meaning: 'no container engine listens on the socket' },
  ERR_GONS_ENGINE_PERMISSION: { kind: 'ContainerError', meaning: 'the engine\'s socket refused us' },
  ERR_GONS_NO_SUCH_CONTAINER: { kind: 'ContainerError', meaning: 'the engine knows no such container' },
  ERR_GONS_CONTAINER_NOT_RUNNING: { kind: 'ContainerError', meaning: 'the container is not running' },
  ERR_GONS_ENGINE_API: { kind: 'ContainerError', meaning: 'any other answer of the engine (HTTP status, malformed, too large, none in time)' },
} as const satisfies Record<string, CodeEntry>;

/** Every code in the table. */
export type ErrorCode = keyof typeof errorCodes;
/** The codes gons makes itself (`ERR_GONS_*`). */
export type GonsErrorCode = Extract<ErrorCode, `ERR_GONS_${string}`>;
type KindOf<C extends ErrorCode> = (typeof errorCodes)[C]['kind'];
type CodesOf<K extends CodeEntry['kind']> = { [C in ErrorCode]: KindOf<C> extends K ? C : never }[ErrorCode];
/** The codes a re-executed child may send: conditions gons made there, not the action's own. */
export type ChildErrorCode = { [C in ErrorCode]: (typeof errorCodes)[C] extends { child: true } ? C : never }[ErrorCode];
/** The codes of a `ReexecError`: its own, and those a child sent. */
export type ReexecErrorCode = CodesOf<'ReexecError'> | ChildErrorCode;
/** The codes of a `ContainerError`. */
export type ContainerErrorCode = CodesOf<'ContainerError'>;

/** The child's allowlist: any other code a child sends is the action's own, on `.cause`. */
export const childErrorCodes: ReadonlySet<string> = new Set(
  (Object.keys(errorCodes) as ErrorCode[]).filter((c) => (errorCodes[c] as CodeEntry).child),
);

/** Fields an error carries beyond its code and message (`path`, `pid`, …); `cause` is the standard one. */
type Extra = { readonly cause?: unknown; readonly [field: string]: unknown };
/** The fields `gonsError` takes for a code: a class's own, or any for a plain error. */
export type ErrorFields<C extends ErrorCode> =
  KindOf<C> extends 'ReexecError' ? Omit<ReexecErrorOptions, 'code'> & Extra
    : KindOf<C> extends 'ContainerError' ? Omit<ContainerErrorDetails, 'code'>
      : Extra;
/** The error `gonsError` builds for a code. */
export type ErrorOf<C extends ErrorCode> = InstanceType<(typeof classes)[KindOf<C>]> & { readonly code: C };

const reexecOptions = new Set(['action', 'exitCode', 'signal', 'stderr', 'cause']);

/**
 * The one way to build an error of the table: the class the table names,
 * `code`, `cause` as the standard option, and the other fields as own
 * properties (after `code`, in their order).
 */
export function gonsError<C extends ErrorCode>(
  code: C, message: string, ...[fields]: Record<string, never> extends ErrorFields<C> ? [ErrorFields<C>?] : [ErrorFields<C>]
): ErrorOf<C> {
  const kind: CodeEntry['kind'] = errorCodes[code].kind;
  const all: Extra = fields ?? {};
  let err: Error;
  if (kind === 'ReexecError') {
    err = new ReexecError(message, { ...all, code } as ReexecErrorOptions);
    Object.assign(err, Object.fromEntries(Object.entries(all).filter(([k]) => !reexecOptions.has(k))));
  } else if (kind === 'ContainerError') {
    err = new ContainerError(message, { ...all, code } as ContainerErrorDetails);
  } else if (kind === 'AbortError') {
    err = new AbortError(message, all.cause === undefined ? undefined : { cause: all.cause });
  } else {
    const { cause, ...rest } = all;
    err = new classes[kind](message, cause === undefined ? undefined : { cause });
    Object.assign(err, { code }, rest);
  }
  return err as ErrorOf<C>;
}

/** A failed system call, as Node's own: `code` is the errno's name, `errno` negative. */
export interface SystemErrorFields {
  /** The errno, either sign. */
  errno: number;
  /** The failing call. */
  syscall: string;
  /** The file at fault, if any. */
  path?: string;
  /** Further fields (`address`, `port`, …). */
  readonly [field: string]: unknown;
}

/** The one way to build a system call's failure: `code` (the errno's name), `errno` (negative), `syscall`, then `path` and the rest. */
export function systemError(message: string, fields: SystemErrorFields): NodeJS.ErrnoException {
  const { errno, syscall, ...rest } = fields;
  return Object.assign(new Error(message), { code: errnoName(errno), errno: -Math.abs(errno), syscall }, rest);
}

/**
 * What the parent rejects with when a child's action failed: the child's
 * own conditions (`childErrorCodes`) keep their code; anything the action
 * threw is `ERR_GONS_ACTION_FAILED`; the error itself is the `cause`.
 */
export function actionError(action: string, cause: Error): ReexecError {
  const sent = (cause as { code?: unknown }).code;
  const code = typeof sent === 'string' && childErrorCodes.has(sent) ? sent as ChildErrorCode : 'ERR_GONS_ACTION_FAILED';
  return new ReexecError(`gons/reexec: action ${JSON.stringify(action)} failed: ${cause.message}`, { action, code, cause });
}
