/**
 * Refusing module loads while the root is moved into a target. A
 * `require()` or `import()` of a non-builtin module resolves and reads paths
 * in the current root: on the target's root that is code (and package.json
 * files) from the container's filesystem, run in a privileged host process.
 * Modules must be loaded before the move (at the top level of a module);
 * builtins (`node:os`, `fs`) stay allowed, as do modules already loaded,
 * through the exports their importers hold.
 *
 * `module.registerHooks` (Node >= 22.15/23.5) covers require and import in
 * this thread. On older lines, CJS resolution (`Module._resolveFilename`) is
 * wrapped and `import()` is covered by `module.register` hooks, which run in
 * a loader thread and read the refusal flag from shared memory.
 */
import Module, { isBuiltin } from 'node:module';
import { type GonsErrorCode, gonsError } from './errors';

/** The flag the hooks read; shared with the loader thread on Node < 22.15. */
const flag = new Int32Array(new SharedArrayBuffer(4));
let installed = false;

const CODE = 'ERR_GONS_LOAD_REFUSED' satisfies GonsErrorCode;

const WHY = " while on the target's root: its files would come from the target's filesystem; load it at the top level of the module instead";

function refusal(specifier: string): Error {
  return gonsError(CODE, `gons: refused to load module ${JSON.stringify(specifier)}${WHY}`, { specifier });
}

function refused(specifier: string): boolean {
  return Atomics.load(flag, 0) !== 0 && !isBuiltin(specifier);
}

/**
 * The off-thread hooks for `import()` on Node < 22.15: a data: URL, so nothing is read from any filesystem to load them.
 * It cannot import the errors module, so it builds `refusal`'s error by hand, with the same message, code and field.
 */
const offThreadHooks = `
import { isBuiltin } from 'node:module';
let flag;
export function initialize(data) { flag = new Int32Array(data.flag); }
export async function resolve(specifier, context, next) {
  if (Atomics.load(flag, 0) !== 0 && !isBuiltin(specifier)) {
    const err = new Error('gons: refused to load module ' + JSON.stringify(specifier) + ${JSON.stringify(WHY)});
    Object.assign(err, { code: ${JSON.stringify(CODE)}, specifier });
    throw err;
  }
  return next(specifier, context);
}`;

type RegisterHooks = (hooks: { resolve(specifier: string, context: unknown, next: (s: string, c?: unknown) => unknown): unknown }) => unknown;

function install(): void {
  installed = true;
  const mod = Module as unknown as {
    registerHooks?: RegisterHooks;
    register(url: string, options: { data: unknown }): void;
    _resolveFilename(request: string, ...rest: unknown[]): string;
  };
  /* c8 ignore start -- Node >= 22.15/23.5 only: covered when the suite runs on those lines */
  if (typeof mod.registerHooks === 'function') {
    mod.registerHooks({
      resolve(specifier, context, next) {
        if (refused(specifier)) throw refusal(specifier);
        return next(specifier, context);
      },
    });
    return;
  }
  /* c8 ignore stop */
  const resolveFilename = mod._resolveFilename;
  mod._resolveFilename = function (request: string, ...rest: unknown[]) {
    if (refused(request)) throw refusal(request);
    return resolveFilename.call(this, request, ...rest);
  };
  mod.register(`data:text/javascript,${encodeURIComponent(offThreadHooks)}`, { data: { flag: flag.buffer } });
}

/** Refuses (true) or allows again (false) loading non-builtin modules. Installs the hooks on first use. */
export function refuseLoads(on: boolean): void {
  if (on && !installed) install();
  Atomics.store(flag, 0, on ? 1 : 0);
}

/**
 * Installs the guard without turning it on: on Node lines without
 * `module.registerHooks` that starts the loader thread, which must exist
 * before the late pid namespace join (lib/pid.ts) forbids new threads.
 */
export function prepareLoadGuard(): void {
  if (!installed) install();
}
