/**
 * The one place that finds the native part — the addon and the pre-init hook, always from the same directory:
 * 1. a source build, `build/Release/gons.node` and `gons_preinit.so` (a checkout, or a user who rebuilt);
 * 2. else the prebuild in the package that matches this process's platform, architecture, libc and Node ABI
 *    (`process.versions.modules`): `prebuilds/<platform>-<arch>/gons.abi<N>.<libc>.node` and the hook next to it,
 *    `gons_preinit.so` (made at pack time by `scripts/prebuilds.sh`; prebuildify's names, so node-gyp-build's
 *    install step agrees on what matches).
 * The netns helper executable (`gons_netns_helper`) comes from the same directory. Unlike the hook it is optional
 * here: without it the calls it serves take the child path (reexec/native-handles.ts logs why); a package without
 * it is a packaging error, which `scripts/prebuilds.sh` refuses.
 * Whatever fails says what to do (`ERR_GONS_NOT_BUILT`, `ERR_GONS_ABI_MISMATCH`, `ERR_GONS_NATIVE_LOAD_FAILED`).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gonsError } from './errors';

/** The hook's state as the addon reports it. */
export interface HookState {
  errno: number;
  envVar: string;
  path: string;
  syscall: string;
  message: string;
  /** CLONE_NEW* flags of the namespaces the hook joined. */
  joined: number;
  /** A pid namespace waits for its late join (`joinPidNamespace()`). */
  pidPending: boolean;
}

interface Addon {
  hookState(): HookState | null;
  enterTargetRoot(): number;
  leaveTargetRoot(): number;
  sealTargetRoot(): number;
  /** The hook's late pid namespace join on the calling thread: 0 or a positive errno. */
  joinPid(): number;
  /** The hook's serve-time confinement step: 1 confined, 0 not asked, -errno. */
  confine(): number;
  /** `_exit(code)`: no exit handlers of Node's run, so nothing more is written. */
  exitNow(code: number): never;
  strerror(errno: number): string;
  claimChannel(fd: number): number;
  closeFd(fd: number): number;
  pidfdOpen(pid: number): { fd: number } | { errno: number; syscall: string };
  /** True while the process behind `pidfd` (opened for `pid`) has not been reaped; see native/addon.cc. */
  pidfdAlive(pidfd: number, pid: number): boolean;
  /** This thread's effective capability set, as hex digits (capget(2)). */
  capEff(): string | { errno: number; syscall: string };
  /** Inodes of `statPaths` and texts of `readPaths` in one call; or the first failure, `index` counting stats then reads. */
  procFacts(statPaths: string[], readPaths: string[]): { inos: number[]; texts: string[] } | { errno: number; syscall: string; index: number };
  seccompFilters(pid: number, pidfd: number): { filters: Buffer[] } | { errno: number; syscall: string };
  nsType(path: string): { nstype: number } | { errno: number; syscall: string };
  socketPair(): [number, number] | { errno: number; syscall: string };
  sendFds(sock: number, fds: number[]): number;
  recvFds(sock: number, count: number): number[] | { errno: number; syscall: string };
  fdFlags(fd: number): number | { errno: number; syscall: string };
  dupFd(fd: number): number | { errno: number; syscall: string };
  nsScan(types: string[]): Buffer | { errno: number; syscall: string };
  /** Calls `onExit(status)` once when the pidfd becomes readable (its process exited); owns the fd. 0, or an errno. */
  watchPidfd(fd: number, onExit: (status: number) => void): number;
  /** Stops a watch without calling it back, and closes its fd. */
  unwatchPidfd(fd: number): void;
  /** The hook's table of namespace kinds (native/preinit.h), in its order. */
  readonly namespaceKinds: ReadonlyArray<{ type: string; envVar: string; procname: string; flag: number }>;
  /** openIn's primitive: a regular file below an O_PATH root fd (-1: ours), without magic links; see native/addon.cc. */
  openInRoot(root: number, path: string, flags: number, mode: number,
    done: (r: { fd: number } | { refused: string } | { errno: number; syscall: string }) => void): void;
  /** An O_PATH directory fd. */
  openDirPath(path: string): { fd: number } | { errno: number; syscall: string };
  nsOwner(path: string): { dev: number; ino: number; ownerDev: number; ownerIno: number } | { errno: number; syscall: string };
}

function packageRoot(from: string): string {
  let dir = from;
  while (!(existsSync(join(dir, 'package.json')) && JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name === 'gons')) {
    /* c8 ignore next -- only a broken installation lacks its package.json */
    if (dirname(dir) === dir) throw new Error(`gons: cannot find the gons package above ${from}`);
    dir = dirname(dir);
  }
  return dir;
}

/** What a native build must match. */
export interface NativeTarget {
  platform: string;
  arch: string;
  libc: 'glibc' | 'musl';
  /** NODE_MODULE_VERSION, as in `process.versions.modules`. */
  abi: string;
  /** Node's version, for messages. */
  node: string;
}

/** Where the addon and its hook come from. */
export interface NativeFiles {
  kind: 'build' | 'prebuild';
  addon: string;
  preinit: string;
  /** The netns helper executable (native/netns-helper.c), beside the hook; may be missing (see above). */
  helper: string;
}

/** The Node line of each ABI gons ships prebuilds for (for messages only). */
const nodeLineOfAbi: Readonly<Record<string, string>> = { 115: 'Node 20', 127: 'Node 22', 137: 'Node 24', 147: 'Node 26' };
const describeAbi = (abi: string) => (nodeLineOfAbi[abi] ? `${abi} (${nodeLineOfAbi[abi]})` : abi);

/**
 * musl or glibc, from the C library mapped into this process (`maps`: the text of /proc/self/maps; cheap: no report,
 * no spawn).
 */
export function detectLibc(maps: string | null = readMaps()): 'glibc' | 'musl' {
  /* c8 ignore next -- only a process without /proc gets here: Node's report names glibc's version, and none for musl */
  if (maps === null) return (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime ? 'glibc' : 'musl';
  return /\/(ld-musl-[^/\s]*|libc\.musl-[^/\s]*)$/m.test(maps) ? 'musl' : 'glibc';
}

function readMaps(): string | null {
  try {
    return readFileSync('/proc/self/maps', 'utf8');
  /* c8 ignore next 3 -- /proc is not mounted */
  } catch {
    return null;
  }
}

export function currentTarget(): NativeTarget {
  return { platform: process.platform, arch: process.arch, libc: detectLibc(), abi: process.versions.modules, node: process.version };
}

const prebuildName = /^gons\.abi(\d+)\.(glibc|musl)\.node$/;

/** Every prebuilt addon in the package, as `linux-x64 glibc 137 (Node 24)`, for messages. */
export function listPrebuilds(root: string): string[] {
  const out: string[] = [];
  const dir = join(root, 'prebuilds');
  for (const tuple of existsSync(dir) ? readdirSync(dir).sort() : []) {
    for (const file of readdirSync(join(dir, tuple)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))) {
      const m = prebuildName.exec(file);
      if (m) out.push(`${tuple} ${m[2]} ${describeAbi(m[1])}`);
    }
  }
  return out;
}

/** What to run to build from source, and what npm ≥ 12 needs first. */
const buildAdvice = 'build from source: `npm rebuild gons` (needs python3, make and a C/C++ compiler, e.g. '
  + '`apt-get install python3 make g++`; npm 12 blocks install scripts, and `npm rebuild` with them while still '
  + 'printing success: run `npm install-scripts approve gons` first)';

/** Finds the addon and the hook: a source build first, else the matching prebuild; throws `ERR_GONS_NOT_BUILT`. */
export function resolveNative(root: string, target: NativeTarget = currentTarget()): NativeFiles {
  const release = join(root, 'build', 'Release');
  const built = join(release, 'gons.node');
  if (existsSync(built)) return withHook({ kind: 'build', addon: built, ...beside(release) }, target);
  const tuple = join(root, 'prebuilds', `${target.platform}-${target.arch}`);
  const prebuilt = join(tuple, `gons.abi${target.abi}.${target.libc}.node`);
  if (existsSync(prebuilt)) return withHook({ kind: 'prebuild', addon: prebuilt, ...beside(tuple) }, target);
  const prebuilds = listPrebuilds(root);
  const want = `${target.platform}-${target.arch} ${target.libc} ${describeAbi(target.abi)}`;
  const musl = target.libc === 'musl' ? ' musl libc (Alpine) is not prebuilt, and a source build there is untested.' : '';
  throw gonsError('ERR_GONS_NOT_BUILT', `gons: no native build for ${want} (Node ${target.node}): ${built} is missing, and `
    + `${prebuilds.length ? `the prebuilds are for ${prebuilds.join(', ')}` : 'there are no prebuilds'}.${musl} To `
    + `${buildAdvice}.`, { path: built, ...target, prebuilds });
}

/** The hook and the helper of the addon in `dir`: always from the addon's own directory. */
function beside(dir: string): { preinit: string; helper: string } {
  return { preinit: join(dir, 'gons_preinit.so'), helper: join(dir, 'gons_netns_helper') };
}

/** A build without its hook is half a build: say so rather than run without the hook. */
function withHook(files: NativeFiles, target: NativeTarget): NativeFiles {
  if (existsSync(files.preinit)) return files;
  throw gonsError('ERR_GONS_NOT_BUILT', `gons: ${files.preinit} is missing next to ${files.addon}: the native build is incomplete. To ${buildAdvice}.`, {
    path: files.preinit, ...target, prebuilds: [],
  });
}

/**
 * Loads the addon. Node's own ERR_DLOPEN_FAILED becomes gons's: a build for another Node ABI
 * (`ERR_GONS_ABI_MISMATCH`: rebuild, or which lines have prebuilds), or anything else the loader refused
 * (`ERR_GONS_NATIVE_LOAD_FAILED`: a C library too old for the prebuild, a file for another machine), with Node's
 * error as `cause`.
 */
export function loadAddon(files: NativeFiles, root = packageRoot(__dirname), target: NativeTarget = currentTarget()): Addon {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(files.addon);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e?.code !== 'ERR_DLOPEN_FAILED') throw err;
    const prebuilds = listPrebuilds(root);
    const mismatch = /NODE_MODULE_VERSION (\d+)\. This version of Node\.js requires\s+NODE_MODULE_VERSION (\d+)/.exec(e.message);
    if (mismatch) {
      const ours = prebuilds.filter((p) => p.startsWith(`${target.platform}-${target.arch} ${target.libc} `));
      const hint = files.kind === 'build'
        ? ` Rebuild it for this Node (\`npm rebuild gons\`; in a checkout \`npx node-gyp rebuild\` with this Node's headers)${prebuilds.some((p) => p.startsWith(`${target.platform}-${target.arch} ${target.libc} ${target.abi}`)) ? `, or remove ${dirname(dirname(files.addon))} to use the prebuild for this line` : ''}.`
        : ` Use a Node line gons has prebuilds for (${ours.join(', ') || 'none for this platform'}), or ${buildAdvice}.`;
      throw gonsError('ERR_GONS_ABI_MISMATCH', `gons: ${files.addon} was built for NODE_MODULE_VERSION ${describeAbi(mismatch[1])}, `
        + `but this is Node ${target.node} (NODE_MODULE_VERSION ${describeAbi(mismatch[2])}).${hint}`, {
        path: files.addon, builtFor: mismatch[1], ...target, prebuilds, cause: err,
      });
    }
    const glibc = /version `GLIBC_([\d.]+)' not found/.exec(e.message);
    const why = glibc
      ? `it needs glibc ${glibc[1]} or newer, which this system's C library is not (the prebuilds need glibc 2.34: Debian 12, Ubuntu 22.04, RHEL 9 or newer)`
      : e.message.split('\n')[0];
    throw gonsError('ERR_GONS_NATIVE_LOAD_FAILED', `gons: cannot load ${files.addon}: ${why}. To ${buildAdvice}.`, {
      path: files.addon, ...target, prebuilds, cause: err,
    });
  }
}

/** The addon and hook this process uses. */
export const native: NativeFiles = resolveNative(packageRoot(__dirname));

/** Absolute path of the pre-init hook, for `LD_PRELOAD`: next to the addon, from the same build. */
export const preinitPath: string = native.preinit;

/** Absolute path of the netns helper, from the same build as the hook (the file may be missing: see above). */
export const helperPath: string = native.helper;

export const addon: Addon = loadAddon(native);
