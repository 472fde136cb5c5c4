/**
 * Handles across namespaces: sockets, servers, files and raw fds made inside
 * real namespaces, used directly by this process.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { constants, existsSync, fstatSync, openSync, promises as fsp, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { format } from 'node:util';
import { serialize } from 'node:v8';
import createDebug from 'debug';
import t, { type Test } from 'tap';
import { addon } from '../lib/native';
import { FD } from '../reexec/fds';
import {
  type NamespaceWorker, TransferredFd, checkAction, connectIn, listenIn, openIn, openNamespaceWorker, register, runReexecAction, transferFd,
} from '../reexec/index';
import { createNamespaces, type Namespaces } from '../testing/index';
import { asNobody, eventually, fixturePath, needsRoot, pidFrom, plainEnv } from './fixtures/helpers';

/** What `handles:bad` returns, by name: each a handle that cannot move. */
const bad: Record<string, () => unknown> = {
  closedFd: () => { const f = transferFd(openSync('/dev/null', 'r')); f.close(); return f; },
  unconnected: () => new net.Socket(),
  notListening: () => ({ s: net.createServer() }),
  unbound: () => [dgram.createSocket('udp4')],
  twice: () => { const f = transferFd(openSync('/dev/null', 'r')); return [f, f]; },
  tooMany: () => Array.from({ length: 254 }, () => transferFd(openSync('/dev/null', 'r'))),
  closedFile: async () => { const fh = await fsp.open('/dev/null'); await fh.close(); return fh; },
  buffered: () => new Promise((resolve) => {
    const server = net.createServer((c) => c.end('x')).listen(0, '127.0.0.1', () => {
      const sock = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
      sock.once('data', () => { sock.unshift(Buffer.from('x')); sock.pause(); server.close(); resolve(sock); });
    });
  }),
};
register('handles:bad', (name: string) => bad[name]());

/** A forged reply with handles, written straight to the channel, as a compromised child could. */
register('handles:forge', ({ slots, fd }: { slots: unknown; fd?: string }) => {
  // Non-blocking: a FIFO without a writer would block the open here.
  if (fd) addon.sendFds(FD.handles, [openSync(fd, constants.O_RDONLY | constants.O_NONBLOCK)]);
  const body = serialize({ id: 1, result: null, handles: slots });
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  writeSync(FD.channel, Buffer.concat([head, body]));
  return new Promise(() => {});
});

// Actions the tests need inside the target (registered in the re-executed copy of this file too).
register('handles:serve', (port: number) => new Promise<number>((resolve) => {
  net.createServer((c) => c.end(`hello from inside ${process.pid}`)).listen(port, '127.0.0.1', () => resolve(process.pid));
}));
register('handles:fetch', ({ port, path }: { port?: number; path?: string }) => new Promise<string>((resolve, reject) => {
  let data = '';
  net.connect((path ? { path } : { port, host: '127.0.0.1' }) as net.NetConnectOpts).on('data', (d) => (data += d)).on('end', () => resolve(data)).on('error', reject);
}));
register('handles:echo', (p: unknown) => p);
register('handles:nsfd', () => transferFd(openSync('/proc/self/ns/net', 'r')));
register('handles:nsfd-when', async ({ started, release }: { started: string; release: string }) => {
  writeFileSync(started, String(process.pid));
  while (!existsSync(release)) await new Promise((r) => setTimeout(r, 10));
  return { late: transferFd(openSync('/proc/self/ns/net', 'r')) };
});
register('handles:fds', () => readdirSync('/proc/self/fd').map((fd) => { try { return readlinkSync(`/proc/self/fd/${fd}`); } catch { return ''; } }));
register('handles:mixed', () => new Promise((resolve) => {
  const u = dgram.createSocket('udp4');
  u.bind(0, '127.0.0.1', () => resolve({ label: 'mixed', list: [1, transferFd(openSync('/proc/self/ns/uts', 'r'))], udp: u }));
}));
register('handles:http', () => new Promise((resolve) => {
  const s = http.createServer();
  s.listen(0, '127.0.0.1', () => resolve({ server: s }));
}));
register('handles:opened-then-hang', (pidFile: string) => new Promise(() => {
  const fd = openSync('/proc/self/ns/net', 'r');
  void fd;
  writeFileSync(pidFile, String(process.pid));
}));

/** What this process has open, by fd number and target. */
function ownFds(): string[] {
  return readdirSync('/proc/self/fd').map((fd) => { try { return `${fd} ${readlinkSync(`/proc/self/fd/${fd}`)}`; } catch { return ''; } }).filter(Boolean).sort();
}

/** Waits (generously) until this process holds `fds` again: a one-shot child's pipes close only once it has exited. */
/** The fds open now that were not in `fds`: what a call left behind (an earlier test's fd may close meanwhile). */
function leaked(fds: string[]): string[] {
  return ownFds().filter((f) => !fds.includes(f));
}

/** Waits (bounded) until nothing is left behind: one-shot children's channels close once they are gone. */
async function fdsBack(fds: string[]): Promise<void> {
  await eventually(() => {
    if (leaked(fds).length > 0) throw new Error('not yet');
  }, 30000).catch(() => {});
}

function read(sock: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    sock.on('data', (d) => (data += d)).on('end', () => resolve(data)).on('error', reject);
  });
}

function refused(port: number): Promise<string> {
  return new Promise((resolve) => {
    net.connect(port, '127.0.0.1').on('connect', function (this: net.Socket) { this.destroy(); resolve('connected'); }).on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
}

/** A network (and mount) namespace with its loopback up. */
async function netns(t: Test, files?: Record<string, string>): Promise<Namespaces> {
  const ns = await createNamespaces(t, files ? ['net', 'mnt'] : ['net'], files ? { files } : {});
  execFileSync('nsenter', ['-t', String(ns.pid), '-n', 'ip', 'link', 'set', 'lo', 'up']);
  return ns;
}

const PORT = 47211; // the same port inside and (unused) outside: only the namespace tells them apart

void checkAction().then(() => {
  t.test('connectIn: a socket to a server that exists only inside the namespace', { skip: needsRoot }, async (t) => {
    const ns = await netns(t);
    const server: NamespaceWorker = await openNamespaceWorker({ namespaces: ns.namespaces() });
    t.teardown(() => server.close());
    const serverPid = await server.run<number>('handles:serve', PORT);
    const before = ownFds();
    for (const where of [{ namespaces: ns.namespaces() }, { target: { pid: ns.pid } }, server]) {
      const sock = await connectIn(where, { host: '127.0.0.1', port: PORT });
      t.ok(sock instanceof net.Socket, 'a net.Socket');
      t.equal(await read(sock), `hello from inside ${serverPid}`);
      sock.destroy();
    }
    t.equal(await refused(PORT), 'ECONNREFUSED', 'the same address on the host refuses');
    await fdsBack(before);
    t.same(leaked(before), [], 'no fd left behind here (once the one-shot children are gone)');
  });

  t.test('listenIn: a server inside the namespace, served here; the host cannot reach it', { skip: needsRoot }, async (t) => {
    const ns = await netns(t);
    const worker = await openNamespaceWorker({ namespaces: ns.namespaces() });
    t.teardown(() => worker.close());
    const childFds = await worker.run<string[]>('handles:fds');
    const server = await listenIn(worker, { host: '127.0.0.1', port: PORT });
    t.teardown(() => server.close());
    t.ok(server instanceof net.Server && server.listening, 'a listening net.Server');
    server.on('connection', (c) => c.end(`served by ${process.pid}`));
    t.equal(await worker.run('handles:fetch', { port: PORT }), `served by ${process.pid}`, 'a client inside reaches the parent');
    t.equal(await refused(PORT), 'ECONNREFUSED', 'not from the host');
    t.same(await worker.run('handles:fds'), childFds, 'the child kept no copy');
  });

  t.test('openIn: stream a file larger than a structured clone may carry, that exists only in the mount namespace', { skip: needsRoot }, async (t) => {
    const chunk = 'gons'.repeat(256 * 1024); // 1 MiB
    const big = chunk.repeat(70); // 70 MiB
    const ns = await createNamespaces(t, ['mnt'], { files: { '/tmp/gons-big': big } });
    const fh = await openIn({ namespaces: ns.namespaces() }, '/tmp/gons-big');
    t.teardown(() => fh.close());
    const hash = createHash('sha256');
    for await (const part of fh.createReadStream({ autoClose: false })) hash.update(part);
    t.equal(hash.digest('hex'), createHash('sha256').update(big).digest('hex'), 'all 70 MiB arrive');
    await t.rejects(openIn({ namespaces: ns.namespaces() }, '/tmp/not-there'), { code: 'ERR_GONS_ACTION_FAILED', cause: { code: 'ENOENT' } });
  });

  t.test('openIn of a target by pid: served here without a child when its mount namespace is joined, by a child otherwise', { skip: needsRoot }, async (t) => {
    const ns = await createNamespaces(t, ['mnt'], { files: { '/tmp/gons-native-here': 'only in the namespace' } });
    const logged: string[] = [];
    const log = createDebug.log;
    createDebug.enable('gons:handles');
    createDebug.log = (...args: unknown[]) => logged.push(format(...args));
    t.teardown(() => {
      createDebug.log = log;
      createDebug.disable();
    });
    const before = ownFds();
    const target = { pid: ns.pid };
    for (const path of ['/tmp/gons-native-here', 'tmp/../tmp/gons-native-here']) {
      const fh = await openIn({ target }, path);
      t.equal(await fh.readFile('utf8'), 'only in the namespace', `${path}: read`);
      await fh.close();
    }
    t.match(logged.join('\n'), /gons-native-here": native path/, 'DEBUG=gons:handles says the native path served');
    const written = await openIn({ target }, '/tmp/gons-native-new', 'wx');
    await written.writeFile('made here');
    await written.close();
    t.equal(readFileSync(`/proc/${ns.pid}/root/tmp/gons-native-new`, 'utf8'), 'made here', "'wx' creates the file in the namespace");
    await t.rejects(openIn({ target }, '/tmp/gons-native-new', 'wx'), { code: 'ERR_GONS_ACTION_FAILED', cause: { code: 'EEXIST', syscall: 'openat2' } });
    await t.rejects(openIn({ target }, '/tmp/gons-native-none'), { code: 'ERR_GONS_ACTION_FAILED', cause: { code: 'ENOENT', path: '/tmp/gons-native-none' } });
    await t.rejects(openIn({ target }, '/tmp'), { code: 'ERR_GONS_NOT_REGULAR_FILE', cause: { type: 'directory' } });
    await t.rejects(openIn({ target }, '/x', 'bogus'), { code: 'ERR_INVALID_ARG_VALUE' });
    await t.rejects(openIn({ target, tiemout: 1 } as never, '/x'), { code: 'ERR_INVALID_ARG_VALUE', message: /tiemout/ });
    // Aborted while the open runs off the main thread: the call rejects at once, the late fd is closed.
    const ac = new AbortController();
    const aborted = openIn({ target }, '/tmp/gons-native-here', 'r', { signal: ac.signal });
    ac.abort();
    await t.rejects(aborted, { code: 'ABORT_ERR' });
    // Not joining its mount namespace, the child's root is ours: the child path serves, where the file is not.
    await t.rejects(openIn({ target: { pid: ns.pid, types: ['uts'] } }, '/tmp/gons-native-here'), { code: 'ERR_GONS_ACTION_FAILED', cause: { code: 'ENOENT' } });
    t.match(logged.join('\n'), /child path: the target's mount namespace is not joined/, 'and says why');
    await fdsBack(before);
    t.same(leaked(before), [], 'no fd left behind');
  });

  t.test('a raw fd and a datagram socket arrive, anywhere in the result', { skip: needsRoot }, async (t) => {
    const ns = await createNamespaces(t, ['net', 'uts']);
    const fd = await runReexecAction<TransferredFd>('handles:nsfd', { namespaces: ns.namespaces() });
    t.ok(fd instanceof TransferredFd);
    t.equal(fstatSync(fd.fd).ino, statSync(ns.paths.net).ino, 'the fd is the namespace itself');
    fd.close();
    t.equal(fd.fd, -1);
    const mixed = await runReexecAction<{ label: string; list: [number, TransferredFd]; udp: dgram.Socket }>('handles:mixed', { namespaces: ns.namespaces() });
    t.equal(mixed.label, 'mixed');
    t.equal(mixed.list[0], 1);
    t.equal(fstatSync(mixed.list[1].fd).ino, statSync(ns.paths.uts).ino);
    t.ok(mixed.udp instanceof dgram.Socket && mixed.udp.address().port > 0, 'a bound dgram.Socket');
    mixed.list[1].close();
    mixed.udp.close();
  });

  t.test('a kind that cannot move fails before anything is sent; nothing leaks', async (t) => {
    const worker = await openNamespaceWorker();
    t.teardown(() => worker.close());
    const childFds = await worker.run<string[]>('handles:fds');
    const before = ownFds();
    await t.rejects(worker.run('handles:http'), { code: 'ERR_GONS_NOT_TRANSFERABLE', message: /a Server \(only a plain net\.Server moves\) at result\["server"\]/ });
    t.same(await worker.run('handles:fds'), childFds, 'the child closed the server it could not send');
    await fdsBack(before);
    t.same(ownFds(), before);
    t.throws(() => transferFd(-1), { code: 'ERR_INVALID_ARG_VALUE' });
    await t.rejects(connectIn(worker, { hots: 'x' } as never), { code: 'ERR_INVALID_ARG_VALUE', message: /did you mean "host"/ });
    await t.rejects(connectIn(worker, {}), { code: 'ERR_INVALID_ARG_VALUE' });
    await t.rejects(listenIn(worker, {}), { code: 'ERR_INVALID_ARG_VALUE' });
    await t.rejects(openIn(worker, ''), { code: 'ERR_INVALID_ARG_VALUE' });
    await t.rejects(openIn(worker, '/x', {} as never), { code: 'ERR_INVALID_ARG_VALUE' });
  });

  t.test('every handle that cannot move is named', async (t) => {
    const worker = await openNamespaceWorker();
    t.teardown(() => worker.close());
    const childFds = await worker.run<string[]>('handles:fds');
    const why: Record<string, RegExp> = {
      closedFd: /a closed fd at the result/, unconnected: /a socket that is not connected/, notListening: /a server that is not listening at result\["s"\]/,
      unbound: /a datagram socket that is not bound at result\[0\]/, twice: /the same handle appears twice \(again at result\[1\]\)/,
      tooMany: /254 handles, more than 253/, closedFile: /a closed FileHandle/, buffered: /a socket with 1 buffered bytes \(pause\(\) it before it reads\)/,
    };
    for (const [name, message] of Object.entries(why)) {
      await t.rejects(worker.run('handles:bad', name), { code: 'ERR_GONS_NOT_TRANSFERABLE', message }, name);
    }
    for (const until = Date.now() + 30000; Date.now() < until;) {
      if ((await worker.run<string[]>('handles:fds')).join() === childFds.join()) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    t.same(await worker.run('handles:fds'), childFds, 'the child closed all of them');
  });

  t.test('a forged handle reply is a protocol error, and nothing it sent stays open', async (t) => {
    const before = ownFds();
    // Opened here as a file, a FIFO would block a threadpool thread until a writer came: the child would decide when.
    const fifo = join(t.testdir({}), 'fifo');
    execFileSync('mkfifo', [fifo]);
    const forged: Array<[unknown, string | undefined, RegExp]> = [
      [[{ path: [], kind: 'file' }], fifo, /handle 0 is not a file: a FIFO/],
      [[{ path: [], kind: 'socket' }], undefined, /the handle channel held none/],
      [[{ path: [], kind: 'bogus' }], '/dev/null', /a malformed handle list/],
      [[{ path: ['__proto__'], kind: 'fd' }], '/dev/null', /no place for handle 0 in the result/],
      [[{ path: [], kind: 'server' }], '/dev/null', /handle 0 is not a server/],
      [[{ path: [], kind: 'socket' }, { path: [1], kind: 'fd' }], '/dev/null', /held none|not add up/],
    ];
    for (const [slots, fd, message] of forged) {
      await t.rejects(runReexecAction('handles:forge', { param: { slots, fd } }), { code: 'ERR_GONS_PROTOCOL', message }, JSON.stringify(slots));
    }
    await fdsBack(before);
    t.same(ownFds(), before, 'no fd it sent is left here');
  });

  t.test('failures leave no fd in either process: refused, timed out, aborted, crashed', { skip: needsRoot }, async (t) => {
    const ns = await netns(t);
    const worker = await openNamespaceWorker({ namespaces: ns.namespaces() });
    t.teardown(() => worker.close());
    await t.rejects(connectIn(worker, { host: '127.0.0.1', port: PORT }), { code: 'ERR_GONS_ACTION_FAILED', cause: { code: 'ECONNREFUSED' } });
    await worker.run('handles:serve', PORT);
    const childFds = await worker.run<string[]>('handles:fds');
    const before = ownFds();
    await t.rejects(connectIn(worker, { host: '127.0.0.1', port: PORT + 1 }), { code: 'ERR_GONS_ACTION_FAILED', cause: { code: 'ECONNREFUSED' } });
    t.same(await worker.run('handles:fds'), childFds, 'a refused connect leaves nothing in the child');
    // A reply with handles that comes after its call was aborted: its fds are taken and closed here.
    const started = join(tmpdir(), `gons-handles-started-${process.pid}`);
    const release = join(tmpdir(), `gons-handles-release-${process.pid}`);
    t.teardown(() => [started, release].forEach((f) => rmSync(f, { force: true })));
    const late = new AbortController();
    const lateCall = worker.run('handles:nsfd-when', { started, release }, { signal: late.signal }).catch((e) => e);
    await pidFrom(started);
    late.abort();
    t.match(await lateCall, { code: 'ABORT_ERR' });
    writeFileSync(release, '');
    for (const until = Date.now() + 30000; Date.now() < until;) {
      if ((await worker.run<string[]>('handles:fds')).join() === childFds.join()) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    t.same(await worker.run('handles:fds'), childFds, 'the child sent and closed the late handle');
    t.equal(await worker.run('handles:echo', 'still in step'), 'still in step', 'later replies still match their fds');
    const sock = await connectIn(worker, { host: '127.0.0.1', port: PORT });
    t.match(await read(sock), /^hello from inside/);
    const ac = new AbortController();
    ac.abort();
    await t.rejects(connectIn(worker, { host: '127.0.0.1', port: PORT }, { signal: ac.signal }), { code: 'ABORT_ERR' });
    await fdsBack(before);
    t.same(ownFds(), before, 'nothing left here');
    // A worker that dies with a handle open: nothing arrives, nothing stays.
    const doomed = await openNamespaceWorker({ namespaces: ns.namespaces() });
    const pidFile = join(tmpdir(), `gons-handles-${process.pid}`);
    t.teardown(() => rmSync(pidFile, { force: true }));
    const hanging = doomed.run('handles:opened-then-hang', pidFile).catch((e) => e);
    await pidFrom(pidFile);
    await doomed.kill();
    t.match(await hanging, { code: 'ERR_GONS_CHILD_DIED' });
    await fdsBack(before);
    t.same(ownFds(), before, 'nothing left here after a crash');
  });

  t.test('as nobody, in a user namespace', { skip: needsRoot }, async (t) => {
    const args = [...process.execArgv.filter((a) => !a.includes('processinfo')), fixturePath('handles-nobody.ts')];
    const res = asNobody(process.execPath, args, plainEnv());
    t.equal(res.status, 0, 'exits 0', { stderr: res.stderr });
    t.same(JSON.parse(res.stdout || '{}'), { connected: 'hello from inside', served: 'served here', file: 'only in the namespace' });
  });
});
