/**
 * Errors of gons/reexec, shaped like execa's: what Node users expect of a
 * failed child process (`exitCode`, `signal`, `stderr`, `cause`).
 */

/** Fields of a `ReexecError` beyond its message. */
export interface ReexecErrorOptions {
  action: string;
  code: string;
  exitCode?: number | null;
  signal?: NodeJS.Signals | null;
  stderr?: string;
  cause?: unknown;
}

/** A re-executed action failed, or could not be run. */
export class ReexecError extends Error {
  /** The action's name. */
  readonly action: string;
  /** Always `ERR_GONS_*`: what went wrong (the action's own error, and its code, is the `cause`). */
  readonly code: string;
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

/** An error as it crosses the channel: V8 serialization drops custom fields. */
export interface WireError {
  name: string;
  message: string;
  stack?: string;
  code?: unknown;
  errno?: unknown;
  syscall?: unknown;
  path?: unknown;
  /** A `NamespaceSwitchError`'s variable at fault. */
  envVar?: unknown;
}

const wireFields = ['code', 'errno', 'syscall', 'path', 'envVar'] as const;

/** Flattens whatever an action threw into a `WireError`. */
export function toWire(err: unknown): WireError {
  if (!(err instanceof Error)) {
    let text: string;
    try {
      text = String(err);
    } catch {
      text = Object.prototype.toString.call(err); // e.g. Object.create(null)
    }
    return { name: 'Error', message: `non-error thrown: ${text}` };
  }
  const wire: WireError = { name: err.name, message: err.message, stack: err.stack };
  const fields = err as unknown as Record<string, unknown>;
  for (const f of wireFields) {
    const v = fields[f];
    if (typeof v === 'string' || typeof v === 'number') wire[f] = v;
  }
  return wire;
}

const builtinErrors: Record<string, ErrorConstructor> = {
  Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError,
};

/** Rebuilds the child's error in the parent, keeping name, message, stack and system fields. */
export function fromWire(wire: WireError): Error {
  const Ctor = Object.hasOwn(builtinErrors, wire.name) ? builtinErrors[wire.name] : Error;
  const err = new Ctor(wire.message);
  if (err.name !== wire.name) {
    Object.defineProperty(err, 'name', { value: wire.name, configurable: true, writable: true });
  }
  if (wire.stack !== undefined) err.stack = wire.stack;
  for (const f of wireFields) {
    if (wire[f] !== undefined) (err as unknown as Record<string, unknown>)[f] = wire[f];
  }
  return err;
}
