/**
 * gons/reexec's errors: the classes live in the one errors module
 * (lib/errors.ts); here, how an error crosses the channel.
 */
export { AbortError, ReexecError, type ReexecErrorCode, type ReexecErrorOptions } from '../lib/errors';

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
