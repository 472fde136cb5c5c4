/**
 * gons/testing: throw-away namespaces for tests, made with util-linux
 * `unshare` and held by a sleeping holder process.
 * @packageDocumentation
 */
// For consumers whose `types` setting leaves @types/node out: the declarations use Node's types.
/// <reference types="node" preserve="true" />
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import createDebug from 'debug';
import { gonsError } from '../lib/errors';
import { checkKeys } from '../lib/options';
import { type Namespace, type NamespaceType, isNamespaceType, namespaceKinds, namespaceTypes } from '../lib/namespaces';

const log = createDebug('gons:testing');

/** Options of `createNamespaces`. */
export interface CreateNamespacesOptions {
  /** Also create a user namespace (root mapped to the caller): works for an unprivileged caller. */
  user?: boolean;
  /** Hostname of the new UTS namespace (needs `uts`). */
  hostname?: string;
  /**
   * Files (absolute path → content) that exist only inside the new mount
   * namespace (needs `mnt`), beside the existing contents of their directory
   * (which must exist): the directory gets an overlay there whose upper layer
   * is a tmpfs, so the host stays untouched. Mounts below that directory are
   * not visible through the overlay; a file directly in `/` is refused.
   */
  files?: Record<string, string>;
  /**
   * Directories covered by an empty tmpfs inside the new mount namespace
   * (needs `mnt`), e.g. to make a target that lacks the program; `files` may
   * then add files to them.
   */
  hide?: string[];
  /** Seconds added to the monotonic and boot-time clocks of the new time namespace (needs `time`). */
  clockOffset?: number;
}

/** Namespaces kept alive by a holder process until `close()`. */
export interface Namespaces {
  /** Pid of the holder process (inside all the new namespaces). */
  readonly pid: number;
  /** `/proc/<pid>/ns/<type>` of each created type. */
  readonly paths: Readonly<Record<NamespaceType, string>>;
  /** The created namespaces in gons's default order, each with a `!` unless `bang` is false. */
  namespaces(bang?: boolean): Namespace[];
  /** Ends the holder and waits for it; idempotent. */
  close(): Promise<void>;
}

/** The part of a test that `createNamespaces` uses: tap's `t.teardown` or node:test's `t.after`. */
export type Teardownable = { teardown(fn: () => unknown): void } | { after(fn: () => unknown): void };

const optionKeys = ['user', 'hostname', 'files', 'hide', 'clockOffset'] as const;

/** Starts the messages of createNamespaces's argument errors. */
const WHERE = 'gons/testing: createNamespaces';

// The holder: set the hostname, cover the `hide` directories with empty
// tmpfs, lay an overlay over each file's directory (lower: the directory;
// upper: a directory of its own on a tmpfs mounted on the stage, an empty
// directory made for it, so nothing needs a directory it covers), report
// ready, then wait for its stdin to close (so it ends with its parent).
const HOLDER_SCRIPT = `set -e
if [ -n "$GONS_HOSTNAME" ]; then hostname "$GONS_HOSTNAME"; fi
while [ "$1" != -- ]; do mount -t tmpfs -o mode=0755 gons-testing "$1"; shift; done
shift
if [ $# -gt 0 ]; then
  mount -t tmpfs -o mode=0700 gons-testing "$GONS_STAGE"
  i=0
  for d in "$@"; do mkdir "$GONS_STAGE/u$i" "$GONS_STAGE/w$i"; i=$((i+1)); done
  i=0
  for d in "$@"; do
    mount -t overlay -o "lowerdir=$d,upperdir=$GONS_STAGE/u$i,workdir=$GONS_STAGE/w$i" gons-testing "$d"
    i=$((i+1))
  done
fi
echo ready
read _ || true`;

function unshareArgs(types: NamespaceType[], o: CreateNamespacesOptions): string[] {
  const args = types.map((t) => namespaceKinds[t].unshare as string);
  if (types.includes('user')) args.push('--map-root-user');
  if (o.clockOffset !== undefined) args.push(`--monotonic=${o.clockOffset}`, `--boottime=${o.clockOffset}`);
  return [...args, '--fork', '--kill-child'];
}

/** Paths an overlay's options can carry: absolute, without the characters that separate its options. */
function checkDir(what: string, dir: string): void {
  if (typeof dir !== 'string' || !isAbsolute(dir)) throw gonsError('ERR_INVALID_ARG_VALUE', `${WHERE}: ${what} ${JSON.stringify(dir)} is not absolute`);
  if (/[,:\\\n]/.test(dir)) throw gonsError('ERR_INVALID_ARG_VALUE', `${WHERE}: ${what} ${JSON.stringify(dir)} contains a character mount options cannot carry (",", ":", "\\" or a newline)`);
}

/** Checks the options; returns the directories to hide and the directories to lay files over. */
function checkOptions(types: NamespaceType[], o: CreateNamespacesOptions): { hide: string[]; dirs: string[] } {
  checkKeys('gons/testing: createNamespaces', 'option', o, optionKeys);
  for (const t of types) if (!isNamespaceType(t)) throw gonsError('ERR_INVALID_ARG_VALUE', `${WHERE}: unknown namespace type ${JSON.stringify(t)}`);
  if (o.hostname !== undefined && !types.includes('uts')) throw gonsError('ERR_INVALID_ARG_VALUE', `${WHERE}: hostname needs a uts namespace`);
  if (o.clockOffset !== undefined && !(types.includes('time') && Number.isInteger(o.clockOffset))) {
    throw gonsError('ERR_INVALID_ARG_VALUE', `${WHERE}: clockOffset needs a time namespace and whole seconds`);
  }
  const files = Object.keys(o.files ?? {});
  if (files.length && !types.includes('mnt')) throw gonsError('ERR_INVALID_ARG_VALUE', `${WHERE}: files need a mnt namespace`);
  if (o.hide !== undefined && !(Array.isArray(o.hide) && types.includes('mnt'))) throw gonsError('ERR_INVALID_ARG_VALUE', `${WHERE}: hide needs a mnt namespace and a list of directories`);
  for (const h of o.hide ?? []) {
    checkDir('hidden directory', h);
    if (h === '/') throw gonsError('ERR_INVALID_ARG_VALUE', `${WHERE}: hiding / would hide /proc too`);
  }
  for (const f of files) {
    checkDir('file path', f);
    // An overlay over / would hide every mount below it, /proc included.
    if (dirname(f) === '/') throw gonsError('ERR_INVALID_ARG_VALUE', `${WHERE}: file path ${JSON.stringify(f)} is directly in /: put it in a directory, e.g. /etc or /tmp`);
  }
  return { hide: [...new Set(o.hide ?? [])].sort(), dirs: [...new Set(files.map((f) => dirname(f)))].sort() };
}

/** Where the overlays' upper layers live: a new empty directory under a base that none of them covers. */
function makeStage(dirs: string[]): string {
  const covered = (base: string) => dirs.some((d) => base === d || base.startsWith(`${d}/`) || d.startsWith(`${base}/`));
  const base = [tmpdir(), '/var/tmp', '/dev/shm', '/run'].find((b) => existsSync(b) && !covered(b));
  if (!base) throw gonsError('ERR_INVALID_ARG_VALUE', `${WHERE}: files in ${JSON.stringify(dirs)} leave no directory for the overlays' upper layers`);
  return mkdtempSync(join(base, 'gons-testing-'));
}

function holderPid(unsharePid: number): number {
  const children = readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8').trim().split(/\s+/);
  const pid = Number(children[0]);
  /* c8 ignore next -- unshare --fork always has its child once the holder said ready */
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`gons/testing: cannot find the holder process of unshare ${unsharePid}`);
  return pid;
}

/** The test's way to register `close()`, checked before anything is started. */
function teardownOf(t: unknown): ((fn: () => unknown) => void) | undefined {
  if (t === undefined) return undefined;
  const test = t as { teardown?: unknown; after?: unknown };
  if (typeof test?.teardown === 'function') return (fn) => (test.teardown as (fn: () => unknown) => void)(fn);
  if (typeof test?.after === 'function') return (fn) => (test.after as (fn: () => unknown) => void)(fn);
  throw gonsError('ERR_INVALID_ARG_TYPE', `${WHERE}: the first argument must be a test with teardown() (tap) or after() (node:test), or the list of types`);
}

/**
 * Creates new namespaces of the given types, held by a sleeping process
 * until `close()` (or until this process ends). Pass a tap or node:test test
 * first to have `close()` registered as its teardown.
 */
export function createNamespaces(types: NamespaceType[], options?: CreateNamespacesOptions): Promise<Namespaces>;
export function createNamespaces(t: Teardownable, types: NamespaceType[], options?: CreateNamespacesOptions): Promise<Namespaces>;
export async function createNamespaces(
  ...args: [NamespaceType[], CreateNamespacesOptions?] | [Teardownable, NamespaceType[], CreateNamespacesOptions?]
): Promise<Namespaces> {
  const [t, typesArg, options = {}] = Array.isArray(args[0])
    ? [undefined, args[0], args[1] as CreateNamespacesOptions | undefined]
    : [args[0], args[1] as NamespaceType[], args[2]];
  const teardown = teardownOf(t);
  if (!Array.isArray(typesArg)) throw gonsError('ERR_INVALID_ARG_VALUE', `${WHERE}: types must be an array of namespace types, not ${JSON.stringify(typesArg)}`);
  const wanted = new Set<NamespaceType>(typesArg);
  if (options.user) wanted.add('user');
  const types = namespaceTypes.filter((type) => wanted.has(type));
  if (types.length !== wanted.size || types.length === 0) {
    throw gonsError('ERR_INVALID_ARG_VALUE', `${WHERE}: invalid namespace types ${JSON.stringify(typesArg)}`);
  }
  const { hide, dirs } = checkOptions(types, options);
  const stage = dirs.length ? makeStage(dirs) : '';
  const removeStage = () => stage && rmSync(stage, { recursive: true, force: true });

  const unshare = spawn('unshare', [...unshareArgs(types, options), 'sh', '-c', HOLDER_SCRIPT, 'gons-holder', ...hide, '--', ...dirs], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, GONS_HOSTNAME: options.hostname ?? '', GONS_STAGE: stage },
  });
  let stderr = '';
  unshare.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      if (unshare.exitCode === null && unshare.signalCode === null) {
        unshare.ref();
        const exited = once(unshare, 'exit');
        try {
          process.kill(pid, 'SIGKILL'); // the holder may be a pid namespace's init: SIGTERM would not do
        } catch { /* already gone */ }
        unshare.stdin.end();
        await exited;
      }
      removeStage();
      log('closed namespaces of holder %d', pid);
    })();
    return closed;
  };
  let pid = -1;
  try {
    const ready = await new Promise<string>((resolve, reject) => {
      const done = () => {
        unshare.stdout.off('data', onData);
        unshare.off('exit', onExit);
        unshare.off('error', reject);
      };
      const onData = (d: Buffer) => {
        done();
        resolve(d.toString());
      };
      const onExit = (code: number | null) => {
        done();
        reject(gonsError('ERR_GONS_UNSHARE_FAILED', `gons/testing: unshare ${types.join(' ')} failed (exit ${code}): ${stderr.trim()}`, {
          exitCode: code, stderr,
        }));
      };
      unshare.stdout.on('data', onData);
      unshare.on('exit', onExit);
      unshare.once('error', (err) => {
        done();
        reject(err);
      });
    });
    /* c8 ignore next -- the holder script prints nothing else first */
    if (!ready.startsWith('ready')) throw new Error(`gons/testing: unexpected holder output ${ready}`);
    pid = holderPid(unshare.pid!);
    for (const [file, content] of Object.entries(options.files ?? {})) {
      writeFileSync(join(`/proc/${pid}/root`, file), content);
    }
  } catch (err) {
    unshare.kill('SIGKILL');
    removeStage();
    throw err;
  }
  // A forgotten close() must not keep this process alive; the holder ends with it anyway.
  unshare.unref();
  for (const stream of [unshare.stdin, unshare.stdout, unshare.stderr]) (stream as unknown as Socket).unref();
  const paths = Object.fromEntries(types.map((type) => [type, `/proc/${pid}/ns/${type}`])) as Record<NamespaceType, string>;
  log('holder %d keeps %o', pid, paths);
  teardown?.(close);
  return {
    pid,
    paths,
    namespaces: (bang = true) => types.map((type) => ({ type: bang ? `!${type}` : type, path: paths[type] }) as Namespace),
    close,
  };
}
