/**
 * The children's compile cache (reexec/compile-cache.ts): which directories
 * are trusted with code a root process runs, that children use the cache
 * where Node supports it (and not where it does not), and that no cache file
 * ever lands inside a target's filesystem — also when the action drops its
 * privileges and cannot get back to the host's root.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import t from 'tap';
import { encodeFrame } from '../reexec/channel';
import { checkCacheDirectory, compileCacheEnv, compileCacheSupported, defaultCacheDirectory } from '../reexec/compile-cache';
import { checkAction, openNamespaceWorker, runReexecAction, type ReexecOptions } from '../reexec/index';
import { planReexec, startProcess } from '../reexec/internal';
import { coverageRun } from '../reexec/role';
import { eventually, fixturePath, isRoot, needsRoot } from './fixtures/helpers';
import type { CacheState } from './fixtures/cache-entry';
import './fixtures/cache-entry';

const entry = fixturePath('cache-entry.ts');
const supported = compileCacheSupported;
/** What the helpers need of a test. */
type Teardown = { teardown(fn: () => unknown): void };

const line = `Node ${process.versions.node}: the compile cache is ${supported ? '' : 'not '}supported`;

/** A fresh directory under the system's temporary directory (sticky, root-owned), removed at teardown. */
function scratch(t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'gons-cache-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Every file (not directory) below `dir`, relative to it, skipping the top-level entries `skip`; [] when it does not exist. */
function filesBelow(dir: string, skip: string[] = []): string[] {
  if (!existsSync(dir)) return [];
  const walk = (rel: string): string[] => readdirSync(join(dir, rel)).flatMap((name) => {
    const path = rel ? `${rel}/${name}` : name;
    if (skip.includes(path)) return [];
    return lstatSync(join(dir, path)).isDirectory() ? walk(path) : [path];
  });
  return walk('').sort();
}

const mode = (path: string) => lstatSync(path).mode & 0o7777;

/**
 * A container-like target: its own mount namespace on a pivot_root'ed tmpfs
 * (the host's /usr read-only in it, for the shell; a procfs, for umount), held by a shell that
 * waits for its stdin to close. `root` is its filesystem seen from the host.
 */
async function containerTarget(t: Teardown): Promise<{ pid: number; root: string; namespaces: ReexecOptions['namespaces'] }> {
  const mountpoint = scratch(t);
  const script = `set -eu
mount --make-rprivate /
mount -t tmpfs -o mode=0755 gons-cache-target "$1"
cd "$1"
mkdir usr old tmp proc
chmod 1777 tmp
mount -t proc proc proc
mount --rbind /usr usr
mount -o remount,bind,ro usr
ln -s usr/bin bin
ln -s usr/lib lib
ln -s usr/lib64 lib64
pivot_root . old
umount -l /old
rmdir /old
echo "ready $$"
read _ || true`;
  const holder = spawn('unshare', ['--mount', '--fork', '--kill-child', 'sh', '-c', script, 'sh', mountpoint], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = once(holder, 'exit');
  t.teardown(async () => {
    holder.stdin.end();
    await exited;
  });
  let out = '';
  const pid = await new Promise<number>((resolve, reject) => {
    holder.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^ready (\d+)\n/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    holder.once('exit', (code) => reject(new Error(`container holder exited with ${code}`)));
  });
  return { pid, root: `/proc/${pid}/root`, namespaces: [{ type: 'mnt', path: `/proc/${pid}/ns/mnt` }] };
}

/** The directory Node made in `base` for this Node line (`v24.…-x64-…-0`); undefined before the first use. */
function tagDir(base: string): string | undefined {
  const tags = existsSync(base) ? readdirSync(base).filter((d) => d.startsWith('v')) : [];
  return tags.length === 1 ? join(base, tags[0]) : undefined;
}

void checkAction().then(() => {
  t.test('checkCacheDirectory: only a directory only the caller can write, below directories nobody else can change', async (t) => {
    const base = scratch(t);
    const uid = process.geteuid!();

    const fresh = join(base, 'a', 'b', 'cache');
    t.equal(checkCacheDirectory(fresh), fresh, 'missing directories are created');
    t.equal(mode(fresh), 0o700, 'the cache directory is created 0700');
    t.equal(mode(join(base, 'a')), 0o700, 'and so is every directory made above it');
    t.equal(checkCacheDirectory(fresh), fresh, 'an existing good directory is accepted');
    t.equal(checkCacheDirectory(join(base, 'a', 'b', '..', 'b', 'cache')), fresh, 'the path is normalised');

    const open = join(base, 'open');
    mkdirSync(open, { mode: 0o700 });
    chmodSync(open, 0o755);
    t.equal(checkCacheDirectory(open), undefined, 'readable by others: refused');
    chmodSync(open, 0o770);
    t.equal(checkCacheDirectory(open), undefined, 'writable by the group: refused');

    t.equal(checkCacheDirectory(join(base, 'a', 'b', 'cache'), uid + 1), undefined, "someone else's directory is refused");

    const link = join(base, 'link');
    symlinkSync(fresh, link);
    t.equal(checkCacheDirectory(link), undefined, 'a symbolic link as the cache directory is refused');
    t.equal(checkCacheDirectory(join(link, 'below')), join(fresh, 'below'), 'a link above it is followed, and its target checked');
    const dangling = join(base, 'dangling');
    symlinkSync(join(base, 'nowhere'), dangling);
    t.equal(checkCacheDirectory(join(dangling, 'cache')), undefined, 'a dangling link above it: refused');

    const file = join(base, 'file');
    writeFileSync(file, '');
    t.equal(checkCacheDirectory(file), undefined, 'a file: refused');
    t.equal(checkCacheDirectory(join(file, 'cache')), undefined, 'a file above it: refused');

    const shared = join(base, 'shared');
    mkdirSync(shared, { mode: 0o700 });
    chmodSync(shared, 0o777);
    t.equal(checkCacheDirectory(join(shared, 'cache')), undefined, 'below a directory everybody can write: refused');
    t.notOk(existsSync(join(shared, 'cache')), 'and not even created there');
    chmodSync(shared, 0o1777);
    t.equal(checkCacheDirectory(join(shared, 'cache')), join(shared, 'cache'), 'below a sticky one (like /tmp) our own entry is safe');

    t.equal(checkCacheDirectory('/'), undefined, '/ is refused');
    t.equal(checkCacheDirectory(join(base, 'x'.repeat(300))), undefined, 'a name the kernel refuses (ENAMETOOLONG)');
  });

  t.test('checkCacheDirectory: ownership, for real', { skip: needsRoot }, async (t) => {
    const base = scratch(t);
    const theirs = join(base, 'theirs');
    mkdirSync(theirs, { mode: 0o700 });
    chownSync(theirs, 65534, 65534);
    t.equal(checkCacheDirectory(theirs), undefined, "a directory nobody owns (a pre-created one) is refused, though it is 0700");
    t.equal(checkCacheDirectory(join(theirs, 'cache')), undefined, 'and so is anything below it');
    const above = join(base, 'above');
    mkdirSync(above, { mode: 0o755 });
    chownSync(above, 65534, 65534);
    t.equal(checkCacheDirectory(join(above, 'cache')), undefined, "below someone else's directory: refused");
  });

  t.test('compileCacheEnv: the child environment, on lines with and without the cache', async (t) => {
    const base = scratch(t);
    const dir = join(base, 'dir');
    const env = () => ({ NODE_COMPILE_CACHE: '/elsewhere', KEEP: '1' } as NodeJS.ProcessEnv);

    t.same(compileCacheEnv(env(), { compileCache: { directory: dir } }, false), env(), 'unsupported: the environment is left as it is');
    t.notOk(existsSync(dir), 'and nothing is created');
    t.same(compileCacheEnv(env(), { compileCache: { directory: dir } }, true), { NODE_COMPILE_CACHE: dir, KEEP: '1' }, 'a chosen directory');
    t.same(compileCacheEnv(env(), { compileCache: false }, true), { NODE_DISABLE_COMPILE_CACHE: '1', KEEP: '1' }, 'false turns it off');
    t.same(compileCacheEnv(env(), { confine: true }, true), { NODE_DISABLE_COMPILE_CACHE: '1', KEEP: '1' }, 'a confined child gets none');
    t.same(compileCacheEnv({}, { env: { NODE_DISABLE_COMPILE_CACHE: '1' } }, true), { NODE_DISABLE_COMPILE_CACHE: '1' }, "the user's NODE_DISABLE_COMPILE_CACHE");

    const users = join(base, 'users');
    t.same(compileCacheEnv({}, { env: { NODE_COMPILE_CACHE: users } }, true), { NODE_COMPILE_CACHE: users }, "the user's NODE_COMPILE_CACHE");
    t.same(compileCacheEnv({}, { compileCache: true, env: { NODE_COMPILE_CACHE: '/' } }, true), { NODE_DISABLE_COMPILE_CACHE: '1' }, "the user's, when unsafe: off");

    const home = join(base, 'home');
    t.same(compileCacheEnv({}, { env: { HOME: home, XDG_CACHE_HOME: '' } }, true), { NODE_COMPILE_CACHE: join(home, '.cache', 'gons', 'compile-cache') }, 'the default, in $HOME/.cache');
    t.equal(mode(join(home, '.cache', 'gons', 'compile-cache')), 0o700);
    t.same(compileCacheEnv({}, { env: { XDG_CACHE_HOME: join(base, 'xdg') } }, true), { NODE_COMPILE_CACHE: join(base, 'xdg', 'gons', 'compile-cache') }, 'or in $XDG_CACHE_HOME');
    t.same(compileCacheEnv({}, { env: { HOME: 'relative', XDG_CACHE_HOME: 'relative' } }, true), { NODE_DISABLE_COMPILE_CACHE: '1' }, 'no absolute home: off');
    t.equal(defaultCacheDirectory({ HOME: '/h' }), '/h/.cache/gons/compile-cache');

    for (const [bad, code] of [['yes', 'ERR_INVALID_ARG_TYPE'], [null, 'ERR_INVALID_ARG_TYPE'], [{ dir: 'x' }, 'ERR_INVALID_ARG_VALUE'],
      [{ directory: '' }, 'ERR_INVALID_ARG_VALUE'], [{ directory: 'a\0b' }, 'ERR_INVALID_ARG_VALUE'], [{}, 'ERR_INVALID_ARG_VALUE']] as const) {
      t.throws(() => planReexec('runReexecAction', 'cache-state', { entry, compileCache: bad as never }), { code }, `compileCache ${JSON.stringify(bad)} is refused on every line`);
    }
    await t.rejects(runReexecAction('cache-state', { entry, compileCache: { directry: dir } as never }), { code: 'ERR_INVALID_ARG_VALUE', message: /did you mean "directory"/ });
    await t.rejects(openNamespaceWorker({ entry, compileCache: 'on' as never }), { code: 'ERR_INVALID_ARG_TYPE' });
  });

  t.test(`children use the cache where Node has it (${line})`, async (t) => {
    const base = join(scratch(t), 'cache');
    const state = await runReexecAction<CacheState>('cache-state', { entry, compileCache: { directory: base } });
    if (!supported) {
      t.same(state, { dir: undefined, env: undefined, disabled: undefined }, 'no cache, environment as before');
      t.notOk(existsSync(base), 'the directory is not even made');
      return;
    }
    t.match(state, { dir: new RegExp(`^${base}/v`), env: base, disabled: undefined }, "the child's Node uses the directory");
    t.equal(mode(base), 0o700);
    const files = await eventually(() => {
      const f = filesBelow(base);
      if (f.length === 0) throw new Error('no cache files yet');
      return f;
    }, 30000);
    t.ok(files.length > 0, `the child wrote its compiled code there (${files.length} files)`);

    const worker = await openNamespaceWorker({ entry, compileCache: { directory: base } });
    t.match(await worker.run<CacheState>('cache-state'), { dir: state.dir }, 'a worker uses it too');
    await worker.close();
  });

  t.test(`no cache where it is turned off or the directory is unsafe (${line})`, async (t) => {
    const base = scratch(t);
    const off = { dir: undefined, env: undefined, disabled: supported ? '1' : undefined };
    const open = join(base, 'open');
    mkdirSync(open, { mode: 0o755 });
    chmodSync(open, 0o755);
    t.same(await runReexecAction('cache-state', { entry, compileCache: { directory: open } }), off, 'a directory others can read');
    const link = join(base, 'link');
    mkdirSync(join(base, 'real'), { mode: 0o700 });
    symlinkSync(join(base, 'real'), link);
    t.same(await runReexecAction('cache-state', { entry, compileCache: { directory: link } }), off, 'a symbolic link');
    const users = join(base, 'users');
    t.match(await runReexecAction('cache-state', { entry, compileCache: false, env: { NODE_COMPILE_CACHE: users } }),
      { dir: undefined, disabled: off.disabled, env: undefined }, 'compileCache: false, over the user\'s NODE_COMPILE_CACHE (which never reaches a child)');
    if (isRoot) {
      const theirs = join(base, 'theirs');
      mkdirSync(theirs, { mode: 0o700 });
      chownSync(theirs, 65534, 65534);
      const worker = await openNamespaceWorker({ entry, compileCache: { directory: theirs } });
      t.same(await worker.run('cache-state'), off, "someone else's directory (a worker)");
      await worker.close();
    }
    t.same([open, join(base, 'real'), join(base, 'theirs')].flatMap((d) => filesBelow(d)), [], 'nothing was written into any of them');
    t.notOk(existsSync(users), "the user's NODE_COMPILE_CACHE was not used either");
  });

  t.test(`the user's own NODE_COMPILE_CACHE is used (${line})`, async (t) => {
    const users = join(scratch(t), 'users');
    const state = await runReexecAction<CacheState>('cache-state', { entry, env: { NODE_COMPILE_CACHE: users } });
    t.equal(state.dir?.startsWith(`${users}/v`) ?? false, supported);
  });

  t.test(`no cache file inside a target's filesystem (${line})`, { skip: needsRoot }, async (t) => {
    const base = join(scratch(t), 'cache');
    const compileCache = { directory: base };
    await runReexecAction('cache-state', { entry, compileCache }); // makes the directory Node uses
    const target = await containerTarget(t);
    // The container prepares everything a write would need: the cache's path, writable for all, and a module to load.
    const inTarget = join(target.root, tagDir(base) ?? join(base, 'v-none'));
    mkdirSync(inTarget, { recursive: true });
    for (let d = inTarget; d !== target.root + '/tmp'; d = join(d, '..')) chmodSync(d, 0o777);
    writeFileSync(join(target.root, 'lazy.js'), 'module.exports = 42;\n');
    const before = filesBelow(target.root, ['usr', 'proc']);

    const state = await runReexecAction<CacheState & { loaded: number }>('cache-load', { entry, compileCache, namespaces: target.namespaces, param: '/lazy.js' });
    t.equal(state.loaded, 'ERR_GONS_LOAD_REFUSED', "the container's module is refused (the child's root was the target's)");
    t.equal(state.env, undefined, 'processes the action starts in the target do not get NODE_COMPILE_CACHE');
    if (supported) t.match(state.dir, new RegExp(`^${base}/v`), 'while the child itself used the cache');

    const worker = await openNamespaceWorker({ entry, compileCache, namespaces: target.namespaces });
    t.equal((await worker.run<{ loaded: unknown }>('cache-load', '/lazy.js')).loaded, 'ERR_GONS_LOAD_REFUSED');
    await worker.close();

    // A child that dropped its privileges cannot chroot back to the host's root at exit.
    const { child } = await startProcess(planReexec('runReexecAction', 'cache-drop-privileges', { entry, compileCache, namespaces: target.namespaces }));
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout!.resume();
    const channel = child.stdio[3] as Duplex;
    channel.resume();
    const frame = encodeFrame({ id: 1, action: 'cache-drop-privileges', param: '/lazy.js' });
    channel.write(frame[0]);
    channel.end(frame[1]);
    const [code, signal] = await once(child, 'exit');
    // A coverage run keeps the way back: with a cache the child that cannot take it ends at once (_exit 1), without
    // one it stays on the target's root and ends normally. Otherwise the child sealed the target's root and ends
    // normally, without exit handlers.
    if (supported && coverageRun()) {
      t.not(code, 0, `the child could not return to the host root (${code ?? signal})`);
      t.match(stderr, /exiting at once, so that Node does not write its compile cache inside the target/, 'with the cache it ended before Node could write');
    } else {
      t.equal(code, 0, 'the child ended normally, without going back', { stderr });
    }

    t.same(filesBelow(target.root, ['usr', 'proc']), before, "nothing was written into the container's filesystem");
  });

  t.test(`a child that cannot return still cached its start on the host (${line})`, { skip: needsRoot }, async (t) => {
    const base = join(scratch(t), 'cache');
    const target = await containerTarget(t);
    const r = await runReexecAction<{ uid: number }>('cache-drop-privileges', { entry, compileCache: { directory: base }, namespaces: target.namespaces });
    t.equal(r.uid, 65534);
    // The child ends with _exit, never writing at exit: what is there was flushed before it entered the target's root.
    t.equal(filesBelow(base).length > 0, supported, supported ? 'flushed before entering the target root' : 'no cache on this line');
  });
});
