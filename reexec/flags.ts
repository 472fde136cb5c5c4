/**
 * The Node options a re-executed child inherits. The child runs as a
 * privileged host process inside an untrusted container, so a flag that opens
 * a port (`--inspect`), writes files (`--report-on-signal`, `--cpu-prof`,
 * `--redirect-warnings`, ...), reacts to signals from the container or watches
 * files must not reach it, whether it came through `execArgv`, `NODE_OPTIONS`
 * or the caller's `env`.
 *
 * An allowlist, not a denylist: every Node release adds flags, and a flag we
 * do not know yet is dropped (logged with `DEBUG=gons:reexec`) instead of
 * handed to a child in a container. What stays is what loads or shapes the
 * program: `--import`/`--require`/loaders (tap's coverage arrives as
 * `NODE_OPTIONS=--import …`), module-format switches, source maps, heap and
 * stack sizes, warning and deprecation switches.
 */
import createDebug from 'debug';

const log = createDebug('gons:reexec');

/** Allowed flags that take a value (as `--flag=value` or `--flag value`). */
const withValue = new Set([
  '--require', '-r', '--import', '--loader', '--experimental-loader', '--conditions', '-C',
  '--max-old-space-size', '--max-semi-space-size', '--stack-size', '--stack-trace-limit',
  '--unhandled-rejections', '--dns-result-order', '--disable-warning', '--experimental-default-type',
  '--title', '--max-http-header-size', '--disable-proto', '--v8-pool-size', '--input-type', '--test-name-pattern', '--test-skip-pattern',
]);

/** Allowed flags without a value; `--no-<flag>` is allowed with them. */
const boolean = new Set([
  '--enable-source-maps', '--warnings', '--deprecation', '--throw-deprecation', '--trace-deprecation', '--pending-deprecation',
  '--trace-warnings', '--trace-uncaught', '--expose-gc', '--preserve-symlinks', '--preserve-symlinks-main',
  '--frozen-intrinsics', '--zero-fill-buffers', '--jitless', '--addons', '--global-search-paths', '--force-context-aware',
  '--experimental-vm-modules', '--experimental-strip-types', '--experimental-transform-types', '--experimental-require-module',
  '--experimental-detect-module', '--experimental-wasm-modules', '--experimental-import-meta-resolve',
  '--experimental-json-modules', '--experimental-specifier-resolution', '--experimental-top-level-await',
  '--experimental-global-webcrypto', '--experimental-global-customevent', '--experimental-global-navigator',
  '--experimental-websocket', '--experimental-eventsource', '--experimental-fetch', '--experimental-sqlite',
  '--experimental-shadow-realm', '--experimental-async-context-frame', '--async-context-frame', '--experimental-addon-modules',
  '--experimental-print-required-tla', '--experimental-wasi-unstable-preview1', '--use-openssl-ca', '--use-bundled-ca',
  '--test-only', '--use-system-ca', '--force-fips', '--enable-fips', '--openssl-legacy-provider', '--openssl-shared-config',
]);

/** Environment variables that make Node write files or otherwise act on its own: never passed to a child. */
export const droppedEnv = ['NODE_REDIRECT_WARNINGS', 'NODE_COMPILE_CACHE', 'NODE_REPL_HISTORY'] as const;

/** `--max_old_space_size=1` → `--max-old-space-size`: Node treats `_` and `-` alike in names. */
function flagName(arg: string): string {
  const name = arg.split('=', 1)[0];
  return name.startsWith('--') ? '--' + name.slice(2).replace(/_/g, '-') : name;
}

function allowed(name: string): boolean {
  if (withValue.has(name) || boolean.has(name)) return true;
  return name.startsWith('--no-') && boolean.has('--' + name.slice(5));
}

/**
 * Keeps the allowed flags of `args`. A dropped flag written as `--flag value`
 * loses its value too (the next argument, unless it is itself a flag).
 */
export function filterFlags(args: readonly string[], dropped: string[] = []): string[] {
  const kept: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const name = flagName(arg);
    const joined = arg.includes('=');
    const takesNext = !joined && i + 1 < args.length && !args[i + 1].startsWith('-');
    if (allowed(name)) {
      kept.push(arg);
      if (withValue.has(name) && takesNext) kept.push(args[++i]);
    } else {
      dropped.push(arg);
      if (takesNext) dropped.push(args[++i]);
    }
  }
  return kept;
}

/**
 * Splits `NODE_OPTIONS` as Node does: on spaces; double quotes group, and
 * inside them a backslash escapes the next character. An unterminated quote
 * ends the last argument.
 */
export function parseNodeOptions(text: string): string[] {
  const args: string[] = [];
  let inString = false;
  let fresh = true;
  for (let i = 0; i < text.length; i++) {
    let c = text[i];
    if (c === '\\' && inString) {
      c = text[++i] ?? '';
    } else if (c === ' ' && !inString) {
      fresh = true;
      continue;
    } else if (c === '"') {
      inString = !inString;
      continue;
    }
    if (fresh) args.push(c);
    else args[args.length - 1] += c;
    fresh = false;
  }
  return args;
}

/** The inverse of `parseNodeOptions`: every argument quoted, quotes and backslashes escaped. */
export function formatNodeOptions(args: readonly string[]): string {
  return args.map((a) => `"${a.replace(/["\\]/g, '\\$&')}"`).join(' ');
}

/** The child's flags: ours, filtered, plus `--disable-sigusr1` where this Node knows it (the container may signal the child). */
export function childExecArgv(execArgv: readonly string[] = process.execArgv): string[] {
  const dropped: string[] = [];
  const flags = filterFlags(execArgv, dropped);
  if (dropped.length) log('not passing execArgv %o to the child', dropped);
  if (process.allowedNodeEnvironmentFlags.has('--disable-sigusr1')) flags.push('--disable-sigusr1');
  return flags;
}

/** Rewrites a child's environment in place: `NODE_OPTIONS` filtered, the variables of `droppedEnv` removed. */
export function sanitizeChildEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  for (const k of droppedEnv) {
    if (k in env) {
      log('not passing %s to the child', k);
      delete env[k];
    }
  }
  if (env.NODE_OPTIONS !== undefined) {
    const dropped: string[] = [];
    const kept = filterFlags(parseNodeOptions(env.NODE_OPTIONS), dropped);
    if (dropped.length) {
      log('not passing NODE_OPTIONS %o to the child', dropped);
      env.NODE_OPTIONS = formatNodeOptions(kept);
    }
  }
  return env;
}
