/**
 * Native paths in a target's filesystem (reexec/native-handles.ts,
 * native/netns.cc, native/netns-helper.c): `connectIn({ path })` to a unix
 * socket pinned below the target's root, and `openIn` with namespace paths
 * (the netns helper hands the mount namespace's root over). Real namespaces,
 * a container-like /tmp (a tmpfs only the target sees) and an attacker that
 * plants links to /proc/<pid>/root, `..` chains, FIFOs and devices.
 */
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { addon } from '../lib/native';
import { checkAction, connectIn, openIn, openNamespaceWorker } from '../reexec/index';
import { createNamespaces, type Namespaces } from '../testing/index';
import { asNobody, eventually, fixturePath, needsNobody, needsRoot, plainEnv } from './fixtures/helpers';
import { children, closeMade, logOf, readAll as read, spawnCount } from './fixtures/observe';

/** Children of ours that were not there before (none, once every helper is reaped: it is before the call settles). */
async function newChildren(before: string[]): Promise<string[]> {
  const now = () => children().filter((pid) => !before.includes(pid));
  return eventually(() => {
    if (now().length) throw new Error('not yet');
    return [];
  }, 10000).catch(now);
}
function ownFds(): string[] {
  return readdirSync('/proc/self/fd').map((fd) => { try { return `${fd} ${readlinkSync(`/proc/self/fd/${fd}`)}`; } catch { return ''; } }).filter(Boolean).sort();
}

/** What a call settled with: ok (what it made is closed), or the error's codes. */
async function outcome(p: Promise<Parameters<typeof closeMade>[0]>): Promise<{ ok: true } | { ok: false; name: string; code?: string; cause?: string; message: string; envVar?: string }> {
  try {
    await closeMade(await p);
    return { ok: true };
  } catch (err) {
    const e = err as Error & { code?: string; cause?: { code?: string }; envVar?: string };
    return { ok: false, name: e.name, code: e.code, cause: e.cause?.code, message: e.message, envVar: e.envVar };
  }
}

/** A directory name that makes a socket path longer than sun_path's 107 bytes. */
const LONG = `/tmp/${'d'.repeat(60)}/${'e'.repeat(60)}`;
const ABSTRACT_NAME = `gons-native-paths-${process.pid}`;
const ABSTRACT = `\0${ABSTRACT_NAME}`;

/**
 * The server inside the target: a plain Node (no gons) started by nsenter in
 * its mount and network namespaces, on /tmp/srv.sock, a socket below LONG
 * (bound by a relative name) and an abstract name; it answers each
 * connection with where it came in.
 */
const SERVER = `
const net = require('node:net');
const fs = require('node:fs');
const serve = (what) => net.createServer((c) => c.on('error', () => {}).end('hello inside via ' + what));
fs.mkdirSync(process.argv[1], { recursive: true });
let n = 0;
const ready = () => { if (++n === 4) process.stdout.write('ready\\n'); };
// A socket file nobody listens on any more: its server was killed (a server that closes removes its file).
require('node:child_process').spawnSync(process.execPath, ['-e', "require('node:net').createServer().listen('/tmp/dead.sock', () => process.kill(process.pid, 'SIGKILL'))"]);
ready();
serve('srv').listen('/tmp/srv.sock', ready);
process.chdir(process.argv[1]);
serve('long').listen('srv.sock', ready);
serve('abstract').listen('\\0' + process.argv[2], ready);
`;

/** Starts SERVER in the namespaces of `ns` (entered with nsenter's flags); stopped by pid at teardown. */
async function serverIn(t: Test, ns: Namespaces, flags: string[]): Promise<ChildProcessWithoutNullStreams> {
  // `env -u NODE_OPTIONS`: tap's processinfo puts its --import (a path in the checkout, which may lie under the target's
  // own /tmp) into the NODE_OPTIONS of everything spawned, whatever env is given.
  const child = spawn('nsenter', ['-t', String(ns.pid), ...flags, '--', 'env', '-u', 'NODE_OPTIONS', process.execPath, '-e', SERVER, LONG, ABSTRACT_NAME], { env: plainEnv() });
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      process.kill(child.pid!, 'SIGKILL');
      await exited;
    }
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the server inside exited (${code}): ${err}`)));
  });
  return child;
}

/** A shell command in the target's mount namespace: how the container plants what it likes in its /tmp. */
function inTarget(ns: Namespaces, script: string, user = false): string {
  return execFileSync('nsenter', ['-t', String(ns.pid), ...(user ? ['-U', '--preserve-credentials'] : []), '-m', '--', 'sh', '-c', script], { encoding: 'utf8' });
}

void checkAction().then(() => {
  t.test('the addon takes no path a syscall would cut short: an empty one, or one with a NUL, throws before any work', async (t) => {
    const native = addon as unknown as { pathInRoot(root: number, path: string, cb: () => void): void };
    for (const path of ['', 'tmp\0/etc/shadow']) {
      t.throws(() => addon.openInRoot(-1, path, 0, 0, () => t.fail('openInRoot called back')), { name: 'TypeError', message: 'openInRoot: path must be a non-empty string without NUL' });
      t.throws(() => native.pathInRoot(-1, path, () => t.fail('pathInRoot called back')), { name: 'TypeError', message: 'pathInRoot: path must be a non-empty string without NUL' });
    }
  });

  t.test('connectIn({ path }) and openIn with namespace paths: native, in the target\'s tree only', { skip: needsRoot }, async (t) => {
    // A container-like target: its /tmp is a tmpfs only it sees.
    const ns = await createNamespaces(t, ['mnt', 'net'], { hide: ['/tmp'] });
    await serverIn(t, ns, ['-m', '-n']);
    // The host's own server and secret, where the target's /tmp hides them: what its links aim at.
    const host = mkdtempSync('/tmp/gons-native-paths-');
    t.teardown(() => rmSync(host, { recursive: true, force: true }));
    writeFileSync(join(host, 'secret'), 'host secret\n');
    let hostHits = 0;
    const hostServer = net.createServer((c) => {
      hostHits++;
      c.end('hello from the HOST');
    });
    await new Promise<void>((resolve) => hostServer.listen(join(host, 'host.sock'), resolve));
    t.teardown(() => hostServer.close());
    inTarget(ns, [
      'echo regular inside > /tmp/reg', 'mkfifo /tmp/fifo', 'mknod /tmp/null c 1 3', 'mkdir /tmp/dir',
      `ln -s /proc/${process.pid}/root${host}/host.sock /tmp/esc-proc`, `ln -s ${host}/host.sock /tmp/esc-abs`,
      `ln -s ../../../../../../..${host}/host.sock /tmp/esc-dots`, 'ln -s /proc/1/root/tmp/srv.sock /tmp/esc-init', 'ln -s /proc/self/root/tmp/srv.sock /tmp/esc-self',
      `ln -s /proc/${process.pid}/root${host}/secret /tmp/f-proc`, `ln -s ${host}/secret /tmp/f-abs`, `ln -s ../../../..${host}/secret /tmp/f-dots`,
      'ln -s /tmp/srv.sock /tmp/inner-link', 'ln -s srv.sock /tmp/rel-link',
    ].join(' && '));
    const wheres: Array<[string, Parameters<typeof connectIn>[0], RegExp]> = [
      ['namespace paths', { namespaces: ns.namespaces() }, /resolved below the netns helper joined \/proc\/\d+\/ns\/mnt and handed its root over/],
      ['a target by pid', { target: { pid: ns.pid } }, /resolved below \/proc\/\d+\/root, checked against its pidfd/],
    ];
    for (const [name, where, how] of wheres) {
      const kids = children();
      const fds = ownFds();
      const count = spawnCount();
      for (const path of ['/tmp/srv.sock', '/tmp/inner-link', '/tmp/rel-link', '/tmp/../tmp/srv.sock']) {
        const [sock, log] = await logOf(() => connectIn(where, { path }));
        t.equal(await read(sock), 'hello inside via srv', `${name}: ${path} connects to the target's server`);
        t.match(log, how, `${name}: ${path}: the native path served`);
      }
      const long = `${LONG}/srv.sock`;
      t.ok(Buffer.byteLength(long) > 107, 'the long path does not fit sun_path');
      t.equal(await read(await connectIn(where, { path: long })), 'hello inside via long', `${name}: a path longer than sun_path connects through /proc/self/fd`);
      // The attacker's links: a magic link is refused (ELOOP), an absolute or .. path stays in the target's tree (ENOENT).
      for (const [path, cause] of <Array<[string, string | RegExp]>>[['/tmp/esc-proc', 'ELOOP'], ['/tmp/esc-abs', 'ENOENT'], ['/tmp/esc-dots', 'ENOENT'], ['/tmp/esc-init', /^(ELOOP|EACCES)$/], ['/tmp/esc-self', 'ELOOP'], ['/tmp/nope', 'ENOENT']]) {
        t.match(await outcome(connectIn(where, { path })), { ok: false, code: 'ERR_GONS_ACTION_FAILED', cause }, `${name}: ${path}: ${String(cause)}`);
      }
      for (const [path, type] of [['/tmp/fifo', 'FIFO'], ['/tmp/null', 'character device'], ['/tmp/reg', 'regular file'], ['/tmp/dir', 'directory']]) {
        const r = await outcome(connectIn(where, { path }));
        t.match(r, { ok: false, code: 'ERR_GONS_NOT_A_SOCKET', cause: 'ERR_GONS_NOT_A_SOCKET', message: new RegExp(`refused a ${type}`) }, `${name}: ${path}: a ${type} is refused, not connected to`);
      }
      t.equal(spawnCount() - count, 0, `${name}: no Node process started`);
      t.same(await newChildren(kids), [], `${name}: every helper reaped`);
      t.same(ownFds(), fds, `${name}: no fd left behind`);
    }
    t.equal(hostHits, 0, 'no link reached the host\'s server');
    t.match(await outcome(connectIn({ namespaces: ns.namespaces() }, { path: '/tmp/dead.sock' })), { ok: false, code: 'ERR_GONS_ACTION_FAILED', cause: 'ECONNREFUSED', message: /connect ECONNREFUSED \/tmp\/dead\.sock/ }, 'a socket nobody listens on: ECONNREFUSED, named by its path');
    // The net path opened after the mount join resolves in the target: the child path; the helper's root is closed.
    const fdsNow = ownFds();
    const [after, afterLog] = await logOf(() => connectIn({ namespaces: [{ type: 'mnt', path: ns.paths.mnt }, { type: 'net', path: ns.paths.net }] }, { path: '/tmp/srv.sock' }));
    t.equal(await read(after), 'hello inside via srv');
    t.match(afterLog, /connectIn: child path: the net path resolves in the target's mount namespace/);
    t.same(await eventually(() => {
      if (ownFds().join() !== fdsNow.join()) throw new Error('not yet');
      return [];
    }, 30000).catch(() => ownFds().filter((f) => !fdsNow.includes(f))), [], 'no fd left behind');
    // A target whose mount namespace is not joined: the path resolves in our root.
    const [own2, own2Log] = await logOf(() => connectIn({ target: { pid: ns.pid, types: ['net'] } }, { path: join(host, 'host.sock') }));
    t.equal(await read(own2), 'hello from the HOST');
    t.notMatch(own2Log, /resolved below/);
    t.match(await outcome(connectIn({ namespaces: ns.namespaces() }, { path: '' })), { ok: false }, 'an empty path: Node\'s refusal, from the child path');

    // An abstract name lives in the target's network namespace: connected there, refused in ours.
    const [abs, alog] = await logOf(() => connectIn({ namespaces: [{ type: 'net', path: ns.paths.net }] }, { path: ABSTRACT }));
    t.equal(await read(abs), 'hello inside via abstract', 'an abstract name connects in the target\'s network namespace');
    t.match(alog, /connectIn: native path, setns\(\/proc\/\d+\/ns\/net, CLONE_NEWNET\)/);
    t.match(await outcome(connectIn({ namespaces: [] }, { path: ABSTRACT })), { ok: false, cause: 'ECONNREFUSED' }, 'the same name in our namespace: nothing there');
    // No mount namespace to join: the path resolves in our own root, as the child's would.
    t.equal(await read(await connectIn({ namespaces: [{ type: 'net', path: ns.paths.net }] }, { path: join(host, 'host.sock') })), 'hello from the HOST');
    hostHits = 0;

    // The child path, for comparison: same results, same codes.
    const worker = await openNamespaceWorker({ namespaces: ns.namespaces() });
    t.teardown(() => worker.close());
    const [viaWorker, wlog] = await logOf(() => connectIn(worker, { path: '/tmp/srv.sock' }));
    t.equal(await read(viaWorker), 'hello inside via srv');
    t.match(wlog, /connectIn: child path: a worker/);
    t.match(await outcome(connectIn(worker, { path: '/tmp/nope' })), { ok: false, code: 'ERR_GONS_ACTION_FAILED', cause: 'ENOENT' }, 'the child path\'s ENOENT, for the same code');
    const [, rel] = await logOf(() => outcome(connectIn({ namespaces: ns.namespaces() }, { path: 'tmp/srv.sock' })));
    t.match(rel, /connectIn: child path: a relative unix socket path/);
    const [, conf] = await logOf(() => outcome(connectIn({ target: { pid: ns.pid }, confine: true }, { path: '/tmp/srv.sock' })));
    t.match(conf, /connectIn: child path: confine/);
    const [aborted, ablog] = await logOf(() => outcome(connectIn({ namespaces: ns.namespaces() }, { path: '/tmp/srv.sock' }, { signal: AbortSignal.abort() })));
    t.match(aborted, { ok: false, name: 'AbortError' }, 'an aborted signal rejects');
    t.match(ablog, /child path: the signal is aborted already/);

    // openIn with namespace paths: the helper's root, the same refusals as a target's.
    const kids = children();
    const count = spawnCount();
    const [fh, olog] = await logOf(() => openIn({ namespaces: ns.namespaces() }, '/tmp/reg'));
    t.equal(await fh.readFile('utf8'), 'regular inside\n', 'openIn reads the file that exists only in the target');
    await fh.close();
    t.match(olog, /openIn "\/tmp\/reg": native path, the netns helper joined \/proc\/\d+\/ns\/mnt and handed its root over/);
    const w = await openIn({ namespaces: ns.namespaces() }, '/tmp/written', 'w');
    await w.writeFile('written from the host\n');
    await w.close();
    t.equal(inTarget(ns, 'cat /tmp/written'), 'written from the host\n', 'a file created in the target\'s tree');
    for (const [path, cause] of [['/tmp/f-proc', 'ELOOP'], ['/tmp/f-abs', 'ENOENT'], ['/tmp/f-dots', 'ENOENT']]) {
      t.match(await outcome(openIn({ namespaces: ns.namespaces() }, path)), { ok: false, code: 'ERR_GONS_ACTION_FAILED', cause }, `openIn ${path}: ${cause}, the host's secret stays out`);
      t.match(await outcome(openIn({ namespaces: ns.namespaces() }, path, 'w')), { ok: false }, `openIn ${path} 'w': nothing written outside`);
    }
    t.equal(readFileSync(join(host, 'secret'), 'utf8'), 'host secret\n', 'the host\'s file is untouched');
    for (const path of ['/tmp/fifo', '/tmp/null', '/tmp/dir', '/tmp/srv.sock']) {
      t.match(await outcome(openIn({ namespaces: ns.namespaces() }, path, 'r+')), { ok: false, code: 'ERR_GONS_NOT_REGULAR_FILE' }, `openIn ${path}: refused`);
    }
    t.equal(spawnCount() - count, 0, 'openIn: no Node process started');
    t.same(await newChildren(kids), [], 'openIn: every helper reaped');
    // No mount namespace: our own root, natively; a user namespace without one: the child path.
    const [own, ownLog] = await logOf(() => openIn({ namespaces: [{ type: 'net', path: ns.paths.net }] }, join(host, 'secret')));
    t.equal(await own.readFile('utf8'), 'host secret\n');
    await own.close();
    t.match(ownLog, /native path, no mount namespace: our own root/);
    t.match(await outcome(openIn({ namespaces: ns.namespaces() }, '/tmp/reg', 'r', { signal: AbortSignal.abort() })), { ok: false, name: 'AbortError' }, 'openIn: an aborted signal rejects');
    const [none, noneLog] = await logOf(() => openIn({ namespaces: [] }, join(host, 'secret')));
    t.equal(await none.readFile('utf8'), 'host secret\n');
    await none.close();
    t.match(noneLog, /native path, no mount namespace: our own root/);
    const [, confLog] = await logOf(() => outcome(openIn({ namespaces: ns.namespaces(), confine: true }, '/tmp/reg')));
    t.match(confLog, /openIn "\/tmp\/reg": child path: confine/);
    // Aborted while the walk runs (off the main thread): the call rejects at once; what the walk opens afterwards is closed.
    const fdsBefore = ownFds();
    for (const [what, call] of [
      ['connectIn', (signal: AbortSignal) => connectIn({ namespaces: ns.namespaces() }, { path: '/tmp/srv.sock' }, { signal })],
      ['openIn', (signal: AbortSignal) => openIn({ namespaces: ns.namespaces() }, '/tmp/reg', 'r', { signal })],
    ] as const) {
      const ac = new AbortController();
      const [p, log] = await logOf(async () => {
        const settled = outcome(call(ac.signal));
        ac.abort();
        return settled;
      });
      t.match(await p, { ok: false, name: 'AbortError' }, `${what}: aborted during the native call`);
      t.match(log, /native path/, `${what}: it was the native path`);
    }
    t.same(await eventually(() => {
      if (ownFds().join() !== fdsBefore.join()) throw new Error('not yet');
      return [];
    }, 10000).catch(() => ownFds().filter((f) => !fdsBefore.includes(f))), [], 'what the aborted calls opened is closed');
  });

  t.test('a namespace file of the wrong type: the same NamespaceSwitchError as the child path, before anything joins', { skip: needsRoot }, async (t) => {
    const other = await createNamespaces(t, ['net']);
    const where = { namespaces: [{ type: 'mnt' as const, path: other.paths.net }] };
    const [r, log] = await logOf(() => outcome(openIn(where, '/etc/hostname')));
    t.match(r, { ok: false, name: 'NamespaceSwitchError', code: 'EINVAL' });
    t.notMatch(log, /native path/);
    t.match(await outcome(connectIn(where, { path: '/tmp/x.sock' })), { ok: false, name: 'NamespaceSwitchError', code: 'EINVAL' });
  });

  t.test('root, namespaces of a user namespace: the helper joins it first; a mount namespace it does not own: the child path\'s NamespaceSwitchError', { skip: needsRoot }, async (t) => {
    const ns = await createNamespaces(t, ['mnt', 'net'], { user: true, hide: ['/tmp'] });
    inTarget(ns, 'echo regular inside > /tmp/reg', true);
    const [fh, log] = await logOf(() => openIn({ namespaces: ns.namespaces() }, '/tmp/reg'));
    t.equal(await fh.readFile('utf8'), 'regular inside\n');
    await fh.close();
    t.match(log, /native path, the netns helper joined \/proc\/\d+\/ns\/user and \/proc\/\d+\/ns\/mnt and handed its root over/);
    // The user namespace without the mount namespace: the file is opened with the user namespace's credentials, by a child.
    const [, ulog] = await logOf(() => outcome(openIn({ namespaces: [{ type: 'user', path: ns.paths.user }, { type: 'net', path: ns.paths.net }] }, '/etc/hostname')));
    t.match(ulog, /child path: a user namespace without a mount namespace/);
    // root's own mount namespace, joined from inside that user namespace: refused (EPERM), in the helper as in the child.
    const host = await createNamespaces(t, ['mnt']);
    const where = { namespaces: [{ type: 'user' as const, path: ns.paths.user }, { type: 'mnt' as const, path: host.paths.mnt }] };
    const kids = children();
    const [r, rlog] = await logOf(() => outcome(openIn(where, '/etc/hostname')));
    // The child opens the plain mnt path after joining the user namespace: EACCES there; a helper's setns: EPERM.
    t.match(r, { ok: false, name: 'NamespaceSwitchError', envVar: 'gons_mnt', code: /^(EPERM|EACCES)$/ });
    t.match(rlog, /openIn "\/etc\/hostname": child path: the netns helper: setns: Operation not permitted/);
    const [c, clog] = await logOf(() => outcome(connectIn(where, { path: '/tmp/x.sock' })));
    t.match(c, { ok: false, name: 'NamespaceSwitchError', envVar: 'gons_mnt', code: /^(EPERM|EACCES)$/ });
    t.match(clog, /connectIn: child path: the netns helper: setns: Operation not permitted/);
    t.same(await newChildren(kids), [], 'every helper and child gone');
  });

  t.test('as nobody: the helper joins the user namespace, then the mount namespace; same results, no Node process', { skip: needsNobody() }, async (t) => {
    const args = [...process.execArgv.filter((a) => !a.includes('processinfo')), fixturePath('native-paths-nobody.ts')];
    const res = asNobody(process.execPath, args, plainEnv());
    t.equal(res.status, 0, 'exits 0', { stderr: res.stderr });
    const out = JSON.parse(res.stdout || '{}');
    t.same(out.results, { read: 'regular inside\n', connected: 'hello inside', escape: 'ELOOP', fifo: 'ERR_GONS_NOT_A_SOCKET', device: 'ERR_GONS_NOT_REGULAR_FILE', spawned: 0, helpersLeft: 0 });
    t.same(out.noUser, { name: 'NamespaceSwitchError', envVar: 'gons_mnt', syscall: 'setns', code: 'EPERM' }, 'no user namespace named: the helper may not join, the child path reports it');
    t.match(out.why.noUser, /openIn "\/tmp\/reg": child path: the netns helper: setns: Operation not permitted/);
    t.match(out.why.openIn, /native path, the netns helper joined \/proc\/\d+\/ns\/user and \/proc\/\d+\/ns\/mnt and handed its root over/);
    t.match(out.why.connectIn, /resolved below the netns helper joined \/proc\/\d+\/ns\/user and/);
  });
});
