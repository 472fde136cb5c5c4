/**
 * The one place that finds the native build: the addon and the pre-init hook
 * next to it in `build/Release/`, from the TypeScript sources (`lib/`) and the
 * compiled package (`dist/lib/`) alike.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The hook's state as the addon reports it. */
export interface HookState {
  errno: number;
  envVar: string;
  path: string;
  syscall: string;
  message: string;
  /** CLONE_NEW* flags of the namespaces the hook joined. */
  joined: number;
}

interface Addon {
  hookState(): HookState | null;
  enterTargetRoot(): number;
  leaveTargetRoot(): number;
  sealTargetRoot(): number;
  /** The hook's serve-time confinement step: 1 confined, 0 not asked, -errno. */
  confine(): number;
  /** `_exit(code)`: no exit handlers of Node's run, so nothing more is written. */
  exitNow(code: number): never;
  strerror(errno: number): string;
  claimChannel(fd: number): number;
  closeFd(fd: number): number;
  pidfdOpen(pid: number): { fd: number } | { errno: number; syscall: string };
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
  nsOwner(path: string): { dev: number; ino: number; ownerDev: number; ownerIno: number } | { errno: number; syscall: string };
}

function packageRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'gons') {
      return dir;
    }
    /* c8 ignore start -- only a broken installation lacks its package.json */
    if (dirname(dir) === dir) throw new Error(`gons: cannot find the gons package above ${from}`);
    /* c8 ignore stop */
  }
}

const buildDir = join(packageRoot(__dirname), 'build', 'Release');

/** Absolute path of the pre-init hook, for `LD_PRELOAD`. */
export const preinitPath: string = join(buildDir, 'gons_preinit.so');

/** Loads the addon; an install that skipped the build (`--ignore-scripts`) gets told how to build it. */
export function loadAddon(dir = buildDir): Addon {
  const file = join(dir, 'gons.node');
  if (!existsSync(file) || !existsSync(join(dir, 'gons_preinit.so'))) {
    throw Object.assign(new Error(`gons: the native part is not built (${file} is missing, e.g. after npm install --ignore-scripts): run \`npm rebuild gons\``), {
      code: 'ERR_GONS_NOT_BUILT', path: file,
    });
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(file);
}

export const addon: Addon = loadAddon();
