/**
 * The native path for socket handles (reexec/native-handles.ts,
 * native/netns.cc): sockets made in real network namespaces by a thread of
 * this process, no child started; and the child path where the native one
 * cannot serve, with `DEBUG=gons:handles` saying which served and why.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { closeSync, openSync, readFileSync, readSync, readdirSync, readlinkSync, writeSync } from 'node:fs';
import net from 'node:net';
import t, { type Test } from 'tap';
import { addon, helperPath } from '../lib/native';
import {
  TransferredFd, bindIn, checkAction, connectIn, listenIn, openNamespaceWorker, register, socketConstants, socketIn,
} from '../reexec/index';
import { createNamespaces, type Namespaces } from '../testing/index';
import { asNobody, eventually, fixturePath, needsRoot, plainEnv } from './fixtures/helpers';
import { logOf, readAll as read, spawnCount } from './fixtures/observe';

// Actions the tests need inside the target (registered in the re-executed copies of this file too).
register('native:serve', (port: number) => new Promise<number>((resolve) => {
  // A client may go before it reads (the tests' many connects): that is no error of the server's.
  net.createServer((c) => c.on('error', () => {}).end(`hello from inside ${process.pid}`)).listen(port, '127.0.0.1', () => resolve(process.pid));
}));
register('native:fetch', (port: number) => new Promise<string>((resolve, reject) => {
  let data = '';
  net.connect(port, '127.0.0.1').on('data', (d) => (data += d)).on('end', () => resolve(data)).on('error', reject);
}));
register('native:send', ({ port, type, address }: { port: number; type: 'udp4' | 'udp6'; address: string }) => new Promise<void>((resolve, reject) => {
  const s = dgram.createSocket(type);
  s.send(`datagram from inside ${process.pid}`, port, address, (err) => {
    s.close();
    if (err) reject(err);
    else resolve();
  });
}));
register('native:unix', (path: string) => new Promise<void>((resolve) => {
  net.createServer((c) => c.end('hello over a unix socket inside')).listen(path, () => resolve());
}));

function ownFds(): string[] {
  return readdirSync('/proc/self/fd').map((fd) => { try { return `${fd} ${readlinkSync(`/proc/self/fd/${fd}`)}`; } catch { return ''; } }).filter(Boolean).sort();
}

/** Waits until this process holds `fds` again: a one-shot child's pipes close only once it has exited. */
async function fdsBack(fds: string[]): Promise<void> {
  await eventually(() => {
    if (ownFds().join() !== fds.join()) throw new Error('not yet');
  }, 30000).catch(() => {});
}

/** The network namespace of each thread of this process. */
function threadNetns(): string[] {
  return readdirSync('/proc/self/task').map((tid) => { try { return readlinkSync(`/proc/self/task/${tid}/ns/net`); } catch { return 'gone'; } }).filter((l) => l !== 'gone');
}

function refused(port: number): Promise<string> {
  return new Promise((resolve) => {
    net.connect(port, '127.0.0.1').on('connect', function (this: net.Socket) { this.destroy(); resolve('connected'); }).on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
}

/** A network namespace (and a mount namespace) with its loopback up. */
async function netns(t: Test, mnt = false): Promise<Namespaces> {
  // With mnt, /tmp is an overlay inside: what the target writes there stays there.
  const ns = await createNamespaces(t, mnt ? ['net', 'mnt'] : ['net'], mnt ? { files: { '/tmp/gons-native-target': '' } } : {});
  execFileSync('nsenter', ['-t', String(ns.pid), '-n', 'ip', 'link', 'set', 'lo', 'up']);
  return ns;
}

/** Sets `lo` up through a netlink socket (RTM_NEWLINK, index 1, IFF_UP) and reads the kernel's ack: 0 or -errno. */
function linkUp(nl: TransferredFd): number {
  const msg = Buffer.alloc(32);
  msg.writeUInt32LE(32, 0);
  msg.writeUInt16LE(16, 4); // RTM_NEWLINK
  msg.writeUInt16LE(1 | 4, 6); // NLM_F_REQUEST | NLM_F_ACK
  msg.writeInt32LE(1, 20); // lo
  msg.writeUInt32LE(1, 24); // IFF_UP
  msg.writeUInt32LE(1, 28);
  writeSync(nl.fd, msg);
  const ack = Buffer.alloc(1024);
  readSync(nl.fd, ack);
  return ack.readInt32LE(16);
}

const PORT = 47221; // the same port inside and (unused) outside: only the namespace tells them apart

void checkAction().then(() => {
  t.test('connectIn, native: a socket in the target\'s namespace, no process started, nothing left behind', { skip: needsRoot }, async (t) => {
    const ns = await netns(t);
    const worker = await openNamespaceWorker({ namespaces: ns.namespaces() });
    t.teardown(() => worker.close());
    const serverPid = await worker.run<number>('native:serve', PORT);
    const before = ownFds();
    const threads = threadNetns();
    const count = spawnCount();
    for (const where of [{ namespaces: ns.namespaces() }, { namespaces: [{ type: 'net' as const, path: ns.paths.net }] }, { target: { pid: ns.pid } }, { target: { pid: ns.pid, types: ['net' as const] } }]) {
      const [sock, log] = await logOf(() => connectIn(where, { host: '127.0.0.1', port: PORT }));
      t.match(log, /connectIn: native path, setns\((\/proc\/\d+\/ns\/net|pidfd of \d+), CLONE_NEWNET\)/, `native for ${JSON.stringify(where)}`);
      t.ok(sock instanceof net.Socket && !sock.connecting && sock.remotePort === PORT, 'a connected net.Socket');
      t.equal(await read(sock), `hello from inside ${serverPid}`, 'the server only the target\'s loopback has');
      sock.destroy();
    }
    t.equal(await refused(PORT), 'ECONNREFUSED', 'the same address on the host refuses');
    for (let i = 0; i < 200; i++) (await connectIn({ namespaces: ns.namespaces() }, { host: '127.0.0.1', port: PORT })).destroy();
    t.equal(spawnCount(), count, 'no process started for 204 calls');
    t.same(threadNetns(), threads.map(() => threads[0]), 'every thread of this process is still in our own network namespace');
    t.ok(threadNetns().length <= threads.length + 4, 'no thread stayed behind'); // the threadpool may grow on its own
    await fdsBack(before);
    t.same(ownFds(), before, 'no fd left behind');
  });

  t.test('connectIn, native: same errors as the child path; a connect that hangs is bounded by timeout and signal', { skip: needsRoot }, async (t) => {
    const ns = await netns(t);
    // A route into nowhere: SYNs to 10.9.9.2 loop back over lo to an address nobody has, and are dropped.
    execFileSync('nsenter', ['-t', String(ns.pid), '-n', 'ip', 'route', 'add', '10.9.9.0/24', 'dev', 'lo']);
    const worker = await openNamespaceWorker({ namespaces: ns.namespaces() });
    t.teardown(() => worker.close());
    const where = { namespaces: ns.namespaces() };
    const before = ownFds();
    const viaChild = await connectIn(worker, { host: '127.0.0.1', port: PORT + 1 }).catch((e) => e);
    const [viaNative, log] = await logOf(() => connectIn(where, { host: '127.0.0.1', port: PORT + 1 }).catch((e) => e));
    t.match(log, /native path/);
    t.match(viaNative, { name: 'ReexecError', code: 'ERR_GONS_ACTION_FAILED', action: 'gons:connectIn', cause: { code: 'ECONNREFUSED', syscall: 'connect' } });
    t.equal(viaNative.message, viaChild.message, 'the child path\'s message');
    t.equal(viaNative.cause.code, viaChild.cause.code);
    const bad = await connectIn(where, { host: '127.0.0.1', port: 70000 }).catch((e) => e);
    t.match(bad, { code: 'ERR_GONS_ACTION_FAILED', cause: { code: 'ERR_SOCKET_BAD_PORT' } }, 'a bad port fails as in the child');
    const t0 = Date.now();
    await t.rejects(connectIn(where, { host: '10.9.9.2', port: 80 }, { timeout: 300 }), { code: 'ERR_GONS_TIMEOUT', message: /action "gons:connectIn" timed out after 300 ms/ });
    t.ok(Date.now() - t0 < 20000, 'bounded');
    const ac = new AbortController();
    const aborted = connectIn(where, { host: '10.9.9.2', port: 80 }, { signal: ac.signal });
    setImmediate(() => ac.abort());
    await t.rejects(aborted, { code: 'ABORT_ERR' });
    await t.rejects(connectIn(where, { host: '127.0.0.1', port: PORT }, { signal: AbortSignal.abort() }), { code: 'ABORT_ERR' }, 'an aborted signal: nothing is made');
    await t.rejects(connectIn({ namespaces: [{ type: 'net', path: '/nonexistent' }] }, { host: '127.0.0.1', port: 1 }), { name: 'NamespaceSwitchError', envVar: 'gons_net', path: '/nonexistent', code: 'ENOENT' });
    await t.rejects(connectIn({ target: { pid: 0x3fffffff } }, { host: '127.0.0.1', port: 1 }), { name: 'NamespaceSwitchError', envVar: 'gons_target_pidfd', code: 'ESRCH' });
    await fdsBack(before);
    t.same(ownFds(), before, 'no fd left behind by failures');
  });

  t.test('listenIn, native: served here, reachable only inside; errors as Node makes them', { skip: needsRoot }, async (t) => {
    const ns = await netns(t);
    const worker = await openNamespaceWorker({ namespaces: ns.namespaces() });
    t.teardown(() => worker.close());
    const count = spawnCount();
    const [server, log] = await logOf(() => listenIn({ namespaces: ns.namespaces() }, { host: '127.0.0.1', port: PORT }));
    t.teardown(() => server.close());
    t.match(log, /listenIn: native path/);
    t.equal(spawnCount(), count, 'no process started');
    t.ok(server instanceof net.Server && server.listening);
    t.same(server.address(), { address: '127.0.0.1', family: 'IPv4', port: PORT });
    server.on('connection', (c) => c.end(`served by ${process.pid}`));
    t.equal(await worker.run('native:fetch', PORT), `served by ${process.pid}`, 'a client inside reaches this process');
    t.equal(await refused(PORT), 'ECONNREFUSED', 'not from the host');
    await t.rejects(listenIn({ target: { pid: ns.pid } }, { host: '127.0.0.1', port: PORT }), {
      code: 'ERR_GONS_ACTION_FAILED', cause: { code: 'EADDRINUSE', syscall: 'listen', address: '127.0.0.1', port: PORT, message: `listen EADDRINUSE: address already in use 127.0.0.1:${PORT}` },
    });
    const any = await listenIn({ target: { pid: ns.pid } }, { port: 0, backlog: 8 });
    t.match(any.address(), { address: '::', family: 'IPv6' }, 'no host: every address, dual-stack, as Node listens');
    any.on('connection', (c) => c.end('dual'));
    t.equal(await worker.run('native:fetch', (any.address() as net.AddressInfo).port), 'dual', 'IPv4 reaches the dual-stack server');
    t.equal(await read(await connectIn({ namespaces: ns.namespaces() }, { host: '::1', port: (any.address() as net.AddressInfo).port })), 'dual', 'connectIn over IPv6, natively');
    any.close();
    const v6only = await listenIn({ namespaces: ns.namespaces() }, { host: '::1', port: 0, ipv6Only: true });
    t.match(v6only.address(), { address: '::1', family: 'IPv6' });
    v6only.close();
  });

  t.test('bindIn: a bound UDP socket in the target, native or (a host name) through a child', { skip: needsRoot }, async (t) => {
    const ns = await netns(t);
    const worker = await openNamespaceWorker({ namespaces: ns.namespaces() });
    t.teardown(() => worker.close());
    for (const [type, address] of [['udp4', '127.0.0.1'], ['udp6', '::1'], ['udp4', 'localhost']] as const) {
      const count = spawnCount();
      const [sock, log] = await logOf(() => bindIn({ namespaces: ns.namespaces() }, { type, address }));
      t.ok(sock instanceof dgram.Socket, 'a dgram.Socket');
      if (address === 'localhost') t.match(log, /bindIn: child path: a host name resolves in the target/);
      else {
        t.match(log, /bindIn: native path/);
        t.equal(spawnCount(), count, 'no process started');
      }
      const got = new Promise<string>((resolve) => sock.once('message', (m) => resolve(String(m))));
      const { port } = sock.address();
      await worker.run('native:send', { port, type, address: sock.address().address });
      t.match(await got, /^datagram from inside \d+$/, `${type} ${address}: a datagram sent inside arrives here`);
      sock.close();
    }
    const first = await bindIn({ namespaces: ns.namespaces() }, { type: 'udp4', address: '127.0.0.1' });
    await t.rejects(bindIn({ namespaces: ns.namespaces() }, { type: 'udp4', address: '127.0.0.1', port: first.address().port }), {
      code: 'ERR_GONS_ACTION_FAILED', cause: { code: 'EADDRINUSE', syscall: 'bind' },
    });
    await t.rejects(bindIn(worker, { type: 'udp4', address: '127.0.0.1', port: first.address().port }), {
      code: 'ERR_GONS_ACTION_FAILED', cause: { code: 'EADDRINUSE', syscall: 'bind', message: `bind EADDRINUSE: address already in use 127.0.0.1:${first.address().port}` },
    }, 'the same error through a child');
    const anyV4 = await bindIn({ namespaces: ns.namespaces() }, { type: 'udp4' });
    t.match(anyV4.address(), { address: '0.0.0.0', family: 'IPv4' });
    anyV4.close();
    const shared = await bindIn({ namespaces: ns.namespaces() }, { type: 'udp6', port: 0, reuseAddr: true, ipv6Only: true });
    t.match(shared.address(), { address: '::' });
    shared.close();
    first.close();
    await t.rejects(bindIn({ namespaces: ns.namespaces() }, { type: 'tcp' } as never), { code: 'ERR_INVALID_ARG_VALUE' });
    await t.rejects(bindIn({ namespaces: ns.namespaces() }, { type: 'udp4', port: -1 }), { code: 'ERR_SOCKET_BAD_PORT' });
    await t.rejects(bindIn({ namespaces: ns.namespaces() }, { type: 'udp4', address: '' }), { code: 'ERR_INVALID_ARG_VALUE' });
    await t.rejects(bindIn({ namespaces: ns.namespaces() }, { type: 'udp4', adress: 'x' } as never), { message: /did you mean "address"/ });
  });

  t.test('socketIn: a netlink socket in the target brings its loopback up; raw fds, native or through a worker', { skip: needsRoot }, async (t) => {
    const ns = await createNamespaces(t, ['net']); // lo down
    const worker = await openNamespaceWorker({ namespaces: ns.namespaces() });
    t.teardown(() => worker.close());
    const before = ownFds();
    const lo = () => execFileSync('nsenter', ['-t', String(ns.pid), '-n', 'ip', 'link', 'show', 'lo'], { encoding: 'utf8' });
    t.match(lo(), /state DOWN/, 'a fresh namespace: lo is down');
    const [nl, log] = await logOf(() => socketIn({ namespaces: ns.namespaces() }, { domain: socketConstants.AF_NETLINK, type: socketConstants.SOCK_RAW }));
    t.match(log, /socketIn: native path/);
    t.ok(nl instanceof TransferredFd && nl.fd > 2);
    t.equal(linkUp(nl), 0, 'the kernel acks');
    nl.close();
    t.match(lo(), /UP,LOWER_UP/, 'the target\'s lo is up');
    t.notMatch(execFileSync('ip', ['link', 'show', 'lo'], { encoding: 'utf8' }), /qdisc noop/, 'ours untouched');
    const [viaWorker, wlog] = await logOf(() => socketIn(worker, { domain: socketConstants.AF_INET, type: socketConstants.SOCK_DGRAM | socketConstants.SOCK_NONBLOCK }));
    t.match(wlog, /socketIn: child path: a worker/);
    t.ok(viaWorker instanceof TransferredFd && viaWorker.fd > 2);
    viaWorker.close();
    await t.rejects(socketIn({ namespaces: ns.namespaces() }, { domain: 12345, type: socketConstants.SOCK_STREAM }), { code: 'ERR_GONS_ACTION_FAILED', cause: { code: 'EAFNOSUPPORT', syscall: 'socket' } });
    await t.rejects(socketIn(worker, { domain: 12345, type: socketConstants.SOCK_STREAM }), { code: 'ERR_GONS_ACTION_FAILED', cause: { code: 'EAFNOSUPPORT', syscall: 'socket' } }, 'the same error through a child');
    await t.rejects(socketIn({ namespaces: ns.namespaces() }, { domain: -1, type: 1 }), { code: 'ERR_INVALID_ARG_VALUE' });
    await t.rejects(socketIn({ namespaces: ns.namespaces() }, { domain: 2, type: 1, protocol: 1.5 }), { code: 'ERR_INVALID_ARG_VALUE' });
    await fdsBack(before);
    t.same(ownFds(), before, 'no fd left behind');
  });

  t.test('the child path serves what the native path cannot, and says why', { skip: needsRoot }, async (t) => {
    const ns = await netns(t, true);
    const worker = await openNamespaceWorker({ namespaces: ns.namespaces() });
    t.teardown(() => worker.close());
    await worker.run('native:serve', PORT);
    await worker.run('native:unix', '/tmp/gons-native.sock');
    const cases: Array<[string, () => Promise<net.Socket>, RegExp]> = [
      ['a worker', () => connectIn(worker, { host: '127.0.0.1', port: PORT }), /child path: a worker/],
      ['a host name', () => connectIn({ namespaces: ns.namespaces() }, { host: 'localhost', port: PORT, family: 4 }), /child path: a host name resolves in the target/],
      ['no host', () => connectIn({ namespaces: ns.namespaces() }, { port: PORT, family: 4 }), /child path: no host/],
      ['a unix path, confined', () => connectIn({ target: { pid: ns.pid }, confine: true }, { path: '/tmp/gons-native.sock' }), /child path: confine/],
      ['a net path after mnt', () => connectIn({ namespaces: [{ type: 'mnt', path: ns.paths.mnt }, { type: 'net', path: ns.paths.net }] }, { host: '127.0.0.1', port: PORT }), /child path: the net path resolves in the target's mount namespace/],
      ['confine', () => connectIn({ target: { pid: ns.pid }, confine: true }, { host: '127.0.0.1', port: PORT }), /child path: confine/],
    ];
    for (const [what, call, why] of cases) {
      const count = spawnCount();
      const [sock, log] = await logOf(call);
      t.match(log, why, what);
      t.match(await read(sock), /^hello (from inside \d+|over a unix socket inside)$/, `${what}: connected inside`);
      if (what !== 'a worker') t.ok(spawnCount() > count, `${what}: a child served`);
    }
    const [server, llog] = await logOf(() => listenIn({ namespaces: ns.namespaces() }, { path: '/tmp/gons-native-listen.sock' }));
    t.match(llog, /listenIn: child path: a unix socket path/);
    server.close();
    const [named, nlog] = await logOf(() => listenIn({ namespaces: ns.namespaces() }, { host: 'localhost', port: 0 }));
    t.match(nlog, /listenIn: child path: a host name/);
    named.close();
    const [odd, olog] = await logOf(() => listenIn({ namespaces: ns.namespaces() }, { host: '127.0.0.1', port: 1.5 }).catch((e) => e));
    t.match(olog, /listenIn: child path: an option for Node to check/);
    t.match(odd, { code: 'ERR_GONS_ACTION_FAILED', cause: { code: 'ERR_SOCKET_BAD_PORT' } });
    const [, lslog] = await logOf(() => listenIn({ namespaces: ns.namespaces() }, { host: 'fe80::1%lo', port: 0 }).catch((e) => e));
    t.match(lslog, /listenIn: child path: a scoped address/);
    const [scoped, slog] = await logOf(() => connectIn({ namespaces: ns.namespaces() }, { host: 'fe80::1%lo', port: 1 }).catch((e) => e));
    t.match(slog, /child path: a scoped address/);
    t.match(scoped, { code: 'ERR_GONS_ACTION_FAILED' });
    const [, own] = await logOf(async () => (await socketIn({ namespaces: [] }, { domain: socketConstants.AF_INET, type: socketConstants.SOCK_STREAM })).close());
    t.match(own, /socketIn: native path, no network namespace to join/);
    const uts = await createNamespaces(t, ['uts']);
    const [, shared] = await logOf(async () => (await socketIn({ target: { pid: uts.pid } }, { domain: socketConstants.AF_INET, type: socketConstants.SOCK_STREAM })).close());
    t.match(shared, /socketIn: native path, the target shares our network namespace/);
  });

  t.test('root without CAP_SYS_ADMIN: the thread gets EPERM, the helper joins the owning user namespace first', { skip: needsRoot }, async (t) => {
    const ns = await createNamespaces(t, ['net'], { user: true });
    execFileSync('nsenter', ['-t', String(ns.pid), '-U', '--preserve-credentials', '-n', 'ip', 'link', 'set', 'lo', 'up']);
    const worker = await openNamespaceWorker({ namespaces: ns.namespaces() });
    t.teardown(() => worker.close());
    await worker.run('native:serve', PORT);
    // Coverage is collected: tap's NODE_OPTIONS and execArgv stay.
    const arg = JSON.stringify({ user: ns.paths.user, net: ns.paths.net, pid: ns.pid, port: PORT });
    const out = execFileSync('setpriv', ['--bounding-set=-sys_admin', '--inh-caps=-sys_admin', process.execPath, ...process.execArgv, fixturePath('native-handles-nocap.ts'), arg], { encoding: 'utf8' });
    const res = JSON.parse(out);
    t.match(res.connected, /^hello from inside \d+$/);
    t.match(res.viaTarget, /^hello from inside \d+$/);
    t.match(res.plain, /^hello from inside \d+$/);
    t.match(res.why[0], /connectIn: native path, a helper process joined the user namespace first \(setns\(\/proc\/\d+\/ns\/net, CLONE_NEWNET\): EPERM from a thread\)/);
    t.match(res.why[2], /connectIn: native path, a helper process/);
    t.match(res.why[1], /connectIn: native path, a helper process joined the user namespace first \(setns\(pidfd of \d+, CLONE_NEWNET\)/);
    t.same([res.listening, res.udp], [true, 'IPv6'], 'listenIn, bindIn and socketIn through the helper');
    t.same(res.inUse, ['ERR_GONS_ACTION_FAILED', 'EADDRINUSE', 'listen'], 'a bind the helper fails is the call\'s error');
    t.same(res.noUser, ['NamespaceSwitchError', 'EPERM'], 'no user namespace named: the child path, and its typed error');
    t.match(res.whyNoUser, /connectIn: child path: setns: Operation not permitted/);
    t.equal(res.spawnedForNative, 0, 'no Node process for the helper\'s calls');
    t.equal(res.helpersLeft, 0, 'every helper reaped');
    t.equal(res.fdsBack, true, 'no fd left behind');
  });

  const socketSyscall = ({ x64: 41, arm64: 198 } as Record<string, number>)[process.arch];
  const noStrace = spawnSync('strace', ['-V']).status === 0 && socketSyscall ? false : 'needs strace (x64 or arm64) to hold the helper at its socket() call';
  t.test('the netns helper holds only what it was given: another fd of ours never reaches it; 3 and 4 are closed once joined', { skip: needsRoot || noStrace }, async (t) => {
    const ns = await createNamespaces(t, ['net'], { user: true });
    const helper = helperPath;
    const pair = addon.socketPair() as [number, number];
    // Each is inheritable in the child at its index: the helper gets the user and net namespaces, the reply socket, and fd 6 it was never meant to have.
    const fds = [openSync(ns.paths.user, 'r'), openSync(ns.paths.net, 'r'), pair[1], openSync('/etc', 'r')];
    t.teardown(() => [...fds, pair[0]].forEach((fd) => closeSync(fd)));
    // strace holds socket() for a minute: whatever the helper has open then, it has for the rest of its life.
    const tracer = spawn('strace', ['-f', '-qq', '-o', '/dev/null', '-e', 'trace=socket', '-e', 'inject=socket:delay_enter=60000000',
      helper, 'ns', '2', '1', '0', '-', '0', '-1', '-1', '-1'], { stdio: ['ignore', 'ignore', 'ignore', ...fds] });
    const ended = new Promise((resolve) => tracer.once('exit', resolve));
    t.teardown(async () => {
      tracer.kill('SIGKILL');
      await ended;
    });
    // strace forks probes of its own first: the helper is the child that runs its file.
    const atSocket = () => {
      for (const kid of readFileSync(`/proc/${tracer.pid}/task/${tracer.pid}/children`, 'utf8').trim().split(' ').filter(Boolean)) {
        try {
          if (readFileSync(`/proc/${kid}/cmdline`, 'utf8').split('\0')[0] === helper && Number(readFileSync(`/proc/${kid}/syscall`, 'utf8').split(' ')[0]) === socketSyscall) return Number(kid);
        } catch { /* a probe that went */ }
      }
      throw new Error('the helper is not at socket() yet');
    };
    const pid = await eventually(atSocket, 30000);
    t.equal(readlinkSync(`/proc/${pid}/ns/net`), readlinkSync(ns.paths.net), 'it joined the target\'s network namespace');
    t.same(readdirSync(`/proc/${pid}/fd`).sort(), ['0', '1', '2', '5'], 'stdio, the reply socket; not fd 6 (ours), nor the namespaces once joined');
    t.equal(readlinkSync(`/proc/${pid}/fd/5`), readlinkSync(`/proc/self/fd/${pair[1]}`), 'fd 5 is the reply socket');
    process.kill(pid, 'SIGKILL');
  });

  t.test('as nobody: a helper process joins the user namespace the thread may not join; no Node process started', { skip: needsRoot }, async (t) => {
    const args = [...process.execArgv.filter((a) => !a.includes('processinfo')), fixturePath('native-handles-nobody.ts')];
    const res = asNobody(process.execPath, args, plainEnv());
    t.equal(res.status, 0, 'exits 0', { stderr: res.stderr });
    const out = JSON.parse(res.stdout || '{}');
    t.same(out.results, { connected: 'hello from inside', target: 'hello from inside', served: 'served here', datagram: 'datagram from inside', netlink: 0, own: 'native', spawned: 0, helpersLeft: 0 });
    const helper = /native path, a helper process joined the user namespace first \(setns\((\/proc\/\d+\/ns\/net|pidfd of \d+), CLONE_NEWNET\): EPERM from a thread\)/;
    t.match(out.why, { connectIn: helper, target: helper, listenIn: helper, bindIn: helper, socketIn: helper });
  });
});
