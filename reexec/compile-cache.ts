/**
 * Node's on-disk compile cache for re-executed children. Every child compiles
 * exactly the modules its parent already compiled, so a cache of V8's code
 * saves most of that work on each cold call (Node ≥ 22.10: `NODE_COMPILE_CACHE`,
 * `module.flushCompileCache()`).
 *
 * The cache is code that a privileged process runs, and the child sits in a
 * container's namespaces, so:
 * - the parent hands a child only a directory that just the calling user can
 *   write: owned by it, mode 0700 (nothing for group or others), not a
 *   symbolic link, and every directory above it owned by root or the user and
 *   writable by nobody else (unless sticky, like /tmp). Anything else: no
 *   cache, logged with `DEBUG=gons:reexec`;
 * - the child writes the cache only on the host's root: before it moves into
 *   a target's root it flushes what it compiled, and at exit it must be back
 *   on the host's root before Node writes again, or it ends without writing.
 */
import { lstatSync, mkdirSync, realpathSync, type Stats, writeSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import createDebug from 'debug';
import { gonsError } from '../lib/errors';
import { addon } from '../lib/native';
import { leaveTargetRoot } from '../lib/root';
import { checkKeys } from '../lib/options';

const log = createDebug('gons:reexec');

/** What Node ≥ 22.10 adds to `node:module` (not in @types/node 20). */
interface CompileCacheApi {
  getCompileCacheDir?: () => string | undefined;
  flushCompileCache?: () => void;
}
const api = nodeModule as CompileCacheApi;

/**
 * The `compileCache` option: `true` (the default) uses the user's
 * `NODE_COMPILE_CACHE` or `$XDG_CACHE_HOME/gons/compile-cache` (else
 * `$HOME/.cache/gons/compile-cache`); `{ directory }` uses that directory;
 * `false` turns the cache off.
 */
export type CompileCacheOption = boolean | { directory: string };

/** True on Node lines whose compile cache can be flushed on demand (22.10+): only there children use it. */
export const compileCacheSupported = typeof api.flushCompileCache === 'function' && typeof api.getCompileCacheDir === 'function';

/** Directories above the cache: owned by root or us, writable by nobody else unless sticky (others cannot swap our entry). */
function checkAbove(st: Stats, path: string, uid: number): void {
  if (st.uid !== 0 && st.uid !== uid) throw new Error(`${path} is owned by uid ${st.uid}`);
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) throw new Error(`${path} is writable by group or others`);
}

/** The cache directory itself: ours, and nothing for group or others. */
function checkOwn(st: Stats, path: string, uid: number): void {
  if (st.uid !== uid) throw new Error(`${path} is owned by uid ${st.uid}, not ${uid}`);
  if ((st.mode & 0o077) !== 0) throw new Error(`${path} has mode ${(st.mode & 0o7777).toString(8)}, not accessible by its owner only (700)`);
}

/** lstat, creating the directory (mode 0700) when missing; one made by someone else meanwhile fails (EEXIST). */
function lstatOrCreate(path: string): Stats {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(path, { mode: 0o700 });
  return lstatSync(path);
}

/**
 * Checks (creating what is missing, mode 0700) the directory `path` and each
 * one above it, with `lstat`, from `/` down; a symbolic link above the cache
 * is followed (its own directory was found safe, so nobody else can change
 * it) and its target checked the same way. Returns the path without links.
 */
function safeDirectory(path: string, uid: number, own: boolean): string {
  if (path === '/') {
    if (own) throw new Error('/ cannot be a cache directory');
    checkAbove(lstatSync('/'), '/', uid);
    return '/';
  }
  const above = safeDirectory(dirname(path), uid, false);
  const here = join(above, basename(path));
  const st = lstatOrCreate(here);
  if (st.isSymbolicLink()) {
    if (own) throw new Error(`${here} is a symbolic link`);
    return safeDirectory(realpathSync(here), uid, false);
  }
  if (!st.isDirectory()) throw new Error(`${here} is not a directory`);
  (own ? checkOwn : checkAbove)(st, here, uid);
  return here;
}

/**
 * `dir` made absolute and checked (see the top of this file), created with
 * mode 0700 where missing; undefined, with the reason logged, when it is not
 * safe to hold code for a process running as `uid`.
 */
export function checkCacheDirectory(dir: string, uid = process.geteuid!()): string | undefined {
  const path = resolve(dir);
  try {
    return safeDirectory(path, uid, true);
  } catch (err) {
    log('compile cache: not using %s: %s', path, (err as Error).message);
    return undefined;
  }
}

/** The default directory: `$XDG_CACHE_HOME/gons/compile-cache`, else `$HOME/.cache/gons/compile-cache`. */
export function defaultCacheDirectory(env: NodeJS.ProcessEnv): string | undefined {
  if (env.XDG_CACHE_HOME && isAbsolute(env.XDG_CACHE_HOME)) return join(env.XDG_CACHE_HOME, 'gons', 'compile-cache');
  if (env.HOME && isAbsolute(env.HOME)) return join(env.HOME, '.cache', 'gons', 'compile-cache');
  return undefined;
}

/** Throws for a `compileCache` option that is neither a boolean nor `{ directory }`. */
export function checkCompileCacheOption(value: unknown): asserts value is CompileCacheOption | undefined {
  if (value === undefined || typeof value === 'boolean') return;
  const where = 'gons/reexec: compileCache';
  checkKeys(where, 'option', value, ['directory']);
  const dir = (value as { directory?: unknown }).directory;
  if (typeof dir !== 'string' || dir === '' || dir.includes('\0')) {
    throw gonsError('ERR_INVALID_ARG_VALUE', `${where}: directory must be a non-empty path`);
  }
}

function disable(env: NodeJS.ProcessEnv, why: string): NodeJS.ProcessEnv {
  log('compile cache off for the child: %s', why);
  delete env.NODE_COMPILE_CACHE;
  env.NODE_DISABLE_COMPILE_CACHE = '1';
  return env;
}

/**
 * Sets up the child's compile cache in its environment `env` (changed in
 * place and returned). The user's own setting is read from `process.env`
 * and `o.env`, not from `env`, so this works whatever ran over `env` before.
 * A child that cannot return to the host's root (`confine`) gets no cache.
 * The options were checked by the plan (`checkCompileCacheOption`).
 */
export function compileCacheEnv(
  env: NodeJS.ProcessEnv,
  o: { compileCache?: CompileCacheOption; confine?: boolean; env?: Record<string, string> },
  supported = compileCacheSupported,
): NodeJS.ProcessEnv {
  if (!supported) return env;
  if (o.compileCache === false) return disable(env, 'compileCache: false');
  if (o.confine === true) return disable(env, 'a confined child cannot return to the host root to write it');
  const user = { ...process.env, ...o.env };
  if (user.NODE_DISABLE_COMPILE_CACHE !== undefined) return disable(env, 'NODE_DISABLE_COMPILE_CACHE is set');
  const wanted = typeof o.compileCache === 'object' ? o.compileCache.directory : user.NODE_COMPILE_CACHE || defaultCacheDirectory(user);
  if (wanted === undefined) return disable(env, 'no directory (neither XDG_CACHE_HOME nor HOME is an absolute path)');
  const dir = checkCacheDirectory(wanted);
  if (dir === undefined) return disable(env, `${wanted} is not safe`);
  env.NODE_COMPILE_CACHE = dir;
  return env;
}

/**
 * In the child, just before it moves into a target's root: writes what Node
 * compiled so far (still on the host's root), keeps the variable from the
 * processes the action starts in the target, and makes sure Node's write at
 * exit happens on the host's root or not at all: when the way back fails
 * (e.g. the action dropped its privileges) the process ends with `_exit(1)`
 * before Node's exit handlers run. (Not `process.kill(process.pid)`: Node runs
 * its exit handlers, and so writes the cache, before it signals itself.)
 */
export function settleCompileCache(): void {
  if (!compileCacheSupported || api.getCompileCacheDir!() === undefined) return;
  /* c8 ignore start -- Node 20 has no compile cache: run (and covered) on 22, 24 and 26 by test/compile-cache.test.ts */
  api.flushCompileCache!();
  delete process.env.NODE_COMPILE_CACHE;
  process.prependListener('exit', backOnHostRoot);
}
/* c8 ignore stop */

function backOnHostRoot(): void {
  try {
    leaveTargetRoot();
  } catch (err) {
    /* c8 ignore start -- run by test/compile-cache.test.ts, but the process ends here, before it could write its coverage */
    writeSync(2, `gons/reexec: ${(err as Error).message}; exiting at once, so that Node does not write its compile cache inside the target\n`);
    addon.exitNow(1);
  }
  /* c8 ignore stop */
}
