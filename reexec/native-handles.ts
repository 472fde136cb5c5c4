/**
 * The native path for socket handles: no child, no Node start-up. A socket
 * belongs to the network namespace of the task that called socket(2), and a
 * thread may join a network namespace on its own; so the addon
 * (`native/netns.cc`) creates a thread for the call, which joins the target's
 * network namespace, makes the socket (binds and listens it, for a server or a
 * datagram socket) and ends. Everything after — connect, accept, I/O — happens
 * here, by Node, on an fd that stays in the target's namespace for its life.
 *
 * Where the thread may not join (EPERM: the network namespace belongs to a
 * user namespace we are not privileged in, e.g. a caller who is not root and
 * a rootless container) and the call names that user namespace, a small
 * helper executable (`native/netns-helper.c`) joins the user namespace, then
 * the network namespace, and sends the socket back: a multi-threaded process
 * cannot join a user namespace, a fresh single-threaded one can.
 *
 * Paths in a target's filesystem (`connectIn({ path })`, and `openIn` with
 * namespace paths) resolve against the target's root with `openat2(
 * RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, never by a plain path walk: for a
 * target by pid, its `/proc/<pid>/root` checked against the pidfd; for a mount
 * namespace given by path, the root of that namespace, which the helper (the
 * only kind of process that may join a mount namespace: a single-threaded
 * one) joins and hands over as an `O_PATH` fd. A unix socket is pinned
 * `O_PATH`, checked to be a socket, and connected to through this process's
 * own `/proc/self/fd/<n>` — the pinned inode, whatever the path names by then,
 * and never more than 107 bytes of `sun_path`.
 *
 * The child path serves, silently, whatever the native path cannot serve the
 * same way: a worker (its own child makes the handle), `confine` (the
 * target's credentials), names to resolve (host names: the target's
 * /etc/hosts and DNS; a relative unix socket path), a namespace path that
 * resolves in the target's mount namespace, and a join neither the thread nor
 * the helper may make. `DEBUG=gons:handles` says which path served each call,
 * and why.
 */
import { isContainerTarget } from '../lib/container';
import type { Target } from '../lib/target';
import createDebug from 'debug';
import * as dgram from 'node:dgram';
import { constants as fsConstants, existsSync, openSync } from 'node:fs';
import * as net from 'node:net';
import { constants } from 'node:os';
import { getSystemErrorMap } from 'node:util';
import { actionError, gonsError, systemError as errnoError } from '../lib/errors';
import { checkKeys } from '../lib/options';
import { addon, helperPath } from '../lib/native';
import { armDeadline } from './calls';
import { ReexecError } from './errors';
import { TransferredFd, transferFd } from './handles';
import { OPEN, openBelowRoot } from './open-in';
import type { promises as fsp } from 'node:fs';
import type { ConnectInOptions, ListenInOptions, Where } from './in-target';
import { type ReexecOptions, type RunOptions, planReexec } from './plan';

/** What planReexec returns. */
type Plan = ReturnType<typeof planReexec>;
import { kernelHasPidfdSetns, pidfdAlive } from '../lib/target';
import { register } from './registry';
import { NamespaceWorker, runReexecAction } from './worker';

const log = createDebug('gons:handles');

/** What `native/netns.cc` adds to the addon. */
interface SocketSpec {
  domain: number;
  type: number;
  protocol?: number;
  /** An IP literal of the domain to bind to, with `port`. */
  address?: string;
  port?: number;
  reuseaddr?: number;
  v6only?: number;
  /** Listen with this backlog. */
  backlog?: number;
}
type Failure = { errno: number; syscall: string };
interface NetnsAddon {
  netnsSocket(nsfd: number, spec: SocketSpec): number | Failure;
  netnsHelperSocket(helper: string, pidfd: boolean, userfd: number, netfd: number, spec: SocketSpec): number | Failure;
  netnsHelperRoot(helper: string, userfd: number, mntfd: number): number | Failure;
  pathInRoot(root: number, path: string, cb: (r: { fd: number; mode: number } | Failure) => void): void;
  socketConstants: Record<'AF_UNIX' | 'AF_INET' | 'AF_INET6' | 'AF_NETLINK' | 'SOCK_STREAM' | 'SOCK_DGRAM' | 'SOCK_RAW' | 'SOCK_SEQPACKET' | 'SOCK_NONBLOCK', number>;
}
const native = addon as unknown as NetnsAddon;
/** Socket constants of this platform (`AF_*`, `SOCK_*`), for `socketIn`. */
export const socketConstants: Readonly<NetnsAddon['socketConstants']> = Object.freeze({ ...native.socketConstants });
const C = socketConstants;

/** `dgram` options that cross: a bound UDP socket. */
export interface BindInOptions {
  /** `'udp4'` or `'udp6'`. */
  type: 'udp4' | 'udp6';
  /** Local address inside the target; default: every address of its net namespace. */
  address?: string;
  /** Local port; 0 (the default) picks a free one: read it from `socket.address()`. */
  port?: number;
  /** SO_REUSEADDR, as `dgram.createSocket({ reuseAddr })`. */
  reuseAddr?: boolean;
  /** IPV6_V6ONLY for `udp6`, as `dgram.createSocket({ ipv6Only })`. */
  ipv6Only?: boolean;
}

/** A raw socket's triple, as socket(2) takes it (see `socketConstants`). */
export interface SocketInOptions {
  /** `AF_NETLINK`, `AF_INET`, `AF_PACKET`…: see `socketConstants`. */
  domain: number;
  /** `SOCK_RAW`, `SOCK_DGRAM`…, optionally or'ed with `SOCK_NONBLOCK` (close-on-exec is always set). */
  type: number;
  /** Default 0. */
  protocol?: number;
}

const SOCKET = 'gons:socketIn';
const CONNECT = 'gons:connectIn';
const LISTEN = 'gons:listenIn';

/** A system error shaped as Node's own (`listen EADDRINUSE: address already in use 127.0.0.1:80`). */
function systemError(syscall: string, errno: number, where?: { address: string; port: number }): NodeJS.ErrnoException {
  /* c8 ignore next -- libuv names every errno a socket call returns */
  const [code, text] = getSystemErrorMap().get(-errno) ?? ['EUNKNOWN', addon.strerror(errno)];
  return errnoError(`${syscall} ${code}: ${text}${where ? ` ${where.address}:${where.port}` : ''}`, { errno, syscall, ...where });
}

/** The child path's rejection for an error the action would have thrown: same code, message and cause. */
function actionFailed(action: string, cause: Error): ReexecError {
  return actionError(action, cause);
}

/**
 * Where the native path makes the socket: an fd to join (-1: our own
 * namespace) and, when the call names one, the user namespace that owns it
 * (for the helper); or why the child path must serve.
 */
type Route = { nsfd: number; how: string; user?: { pidfd: true } | { path: string }; release(): void } | { child: string };

/** Entries of a namespace order that come before `at` name a mount namespace: later plain paths resolve in it. */
const afterMnt = (order: string[], at: number) => order.slice(0, at).some((t) => t.replace('!', '') === 'mnt');

/**
 * Decides the path of one call. The options are planned exactly as the child
 * path plans them (same checks, same typed errors, a pidfd for a target), so
 * a call fails the same way on either path.
 */
function route(where: Where, action: string, opts: RunOptions, onPlan?: (plan: Plan) => void): Route {
  if (where instanceof NamespaceWorker) return { child: 'a worker: its own child makes the handle' };
  if (where?.confine) return { child: 'confine: only a child can take the target\'s credentials' };
  if (isContainerTarget(where?.target)) return { child: 'a container by name: the child path asks its engine' };
  const plan = planReexec('runReexecAction', action, { ...where, ...opts }, false);
  // The same plan, for a caller that needs more of it (a path's root) than the socket's namespace.
  onPlan?.(plan);
  const { env } = plan;
  if (plan.pidfd !== undefined) {
    const types = (env.gons_target_types as string).split(','); // set with a pidfd
    if (types.includes('net')) {
      return { nsfd: plan.pidfd, how: `setns(pidfd of ${(where.target as Target).pid}, CLONE_NEWNET)`, ...(types.includes('user') && { user: { pidfd: true } }), release: plan.release };
    }
    plan.release();
    return { nsfd: -1, how: 'the target shares our network namespace', release: () => {} };
  }
  plan.release();
  const order = env.gons_order ? env.gons_order.split(',') : [];
  const at = order.findIndex((t) => t === 'net' || t === '!net');
  if (at < 0) return { nsfd: -1, how: 'no network namespace to join', release: () => {} };
  if (order[at] === 'net' && afterMnt(order, at)) return { child: 'the net path resolves in the target\'s mount namespace' };
  const u = order.findIndex((t) => t === 'user' || t === '!user');
  const user = u >= 0 && (order[u] === '!user' || !afterMnt(order, u)) ? { path: env.gons_user as string } : undefined;
  const path = env.gons_net as string; // set: the order names net
  const fd = openNs(path);
  /* c8 ignore next -- see openNs */
  if (typeof fd !== 'number') return fd;
  return { nsfd: fd, how: `setns(${path}, CLONE_NEWNET)`, ...(user && { user }), release: () => addon.closeFd(fd) };
}

/** Opens a namespace file; or the child path, which reports what is wrong with it. */
function openNs(path: string): number | { child: string } {
  try {
    // Non-blocking, no controlling tty: a path swapped for a FIFO or a device since it was checked must not hang or act here.
    return openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY);
    /* c8 ignore next 3 -- only a path removed or swapped since planReexec checked it fails here */
  } catch (err) {
    return { child: `open ${path}: ${(err as NodeJS.ErrnoException).code}` };
  }
}

/**
 * The helper's socket, for a join the thread may not make because the
 * network namespace belongs to a user namespace we must join first: a
 * process of its own joins both (see native/netns-helper.c).
 */
function viaHelper(r: Extract<Route, { nsfd: number }>, spec: SocketSpec): number | Failure {
  if ('pidfd' in r.user!) return native.netnsHelperSocket(helperPath, true, r.nsfd, -1, spec);
  const userfd = openNs(r.user!.path);
  /* c8 ignore next -- only a path removed since planReexec checked it */
  if (typeof userfd !== 'number') return { errno: constants.errno.ENOENT, syscall: 'setns' };
  try {
    return native.netnsHelperSocket(helperPath, false, userfd, r.nsfd, spec);
  } finally {
    addon.closeFd(userfd);
  }
}

/**
 * Makes a socket natively for `api`: its fd, or a child-path reason (the
 * route's, or a join neither the thread nor the helper may make), or the
 * error of a step after the join (`socket`, `bind`, `listen`), which the
 * child would meet too.
 */
function make(api: string, r: Route, spec: SocketSpec): number | { child: string } | { failed: Failure } {
  if ('child' in r) return r;
  let made: number | Failure;
  let how = r.how;
  try {
    made = native.netnsSocket(r.nsfd, spec);
    if (typeof made !== 'number' && made.syscall === 'setns' && made.errno === constants.errno.EPERM && r.user) {
      // An incomplete build or package (scripts/prebuilds.sh refuses to pack one): the child path still serves.
      /* c8 ignore next -- the checkout's build always has it; test/install.test.ts proves this in an installed copy (uncovered there) */
      if (!existsSync(helperPath)) return { child: `${r.how}: EPERM from a thread, and the netns helper ${helperPath} is missing (an incomplete build or package)` };
      how = `a helper process joined the user namespace first (${r.how}: EPERM from a thread)`;
      made = viaHelper(r, spec);
    }
  } finally {
    r.release();
  }
  if (typeof made === 'number') {
    log('%s: native path, %s', api, how);
    return made;
  }
  if (['setns', 'pthread_create', 'posix_spawn', 'poll', 'recvmsg', 'helper'].includes(made.syscall)) return { child: `${made.syscall}: ${addon.strerror(made.errno)}` };
  log('%s: native path, %s: %s failed', api, how, made.syscall);
  return { failed: made };
}

/** Logs why the child path serves a call; returns undefined, the routing lines' signal to take it. */
function toChild(api: string, reason: string): undefined {
  log('%s: child path: %s', api, reason);
  return undefined;
}

const isPort = (p: unknown): p is number => Number.isInteger(p) && (p as number) >= 0 && (p as number) <= 65535;

/**
 * `connectIn` natively: a TCP socket made in the target's namespace,
 * connected here by Node to an IP literal (the connect is judged in the
 * socket's namespace). Undefined when the child path must serve.
 */
export function connectNative(where: Where, o: ConnectInOptions, opts: RunOptions): Promise<net.Socket> | undefined {
  if (o.path !== undefined) return unixNative(where, o, opts);
  const family = net.isIP(o.host ?? '');
  if (family === 0) return toChild('connectIn', o.host === undefined ? 'no host: localhost resolves in the target' : 'a host name resolves in the target');
  if (o.host!.includes('%')) return toChild('connectIn', 'a scoped address names an interface of the target');
  const fd = make('connectIn', route(where, CONNECT, opts), { domain: family === 6 ? C.AF_INET6 : C.AF_INET, type: C.SOCK_STREAM });
  if (typeof fd !== 'number') {
    if ('child' in fd) return toChild('connectIn', fd.child);
    /* c8 ignore start -- only fd or memory exhaustion fails an unbound TCP socket() */
    return Promise.reject(actionFailed(CONNECT, systemError(fd.failed.syscall, fd.failed.errno)));
  }
  /* c8 ignore stop */
  return new Promise<net.Socket>((resolve, reject) => {
    // manualStart: no read may start before the connect; Node starts reading once connected, as for net.connect.
    const sock = new net.Socket({ fd, manualStart: true } as net.SocketConstructorOpts);
    const fail = (err: Error) => {
      disarm();
      sock.destroy();
      reject(err);
    };
    const disarm = armDeadline(CONNECT, opts, fail);
    sock.once('error', (err) => fail(actionFailed(CONNECT, err)));
    try {
      sock.connect(o as net.NetConnectOpts, () => {
        disarm();
        sock.removeAllListeners('error');
        resolve(sock);
      });
    } catch (err) {
      fail(actionFailed(CONNECT, err as Error)); // a bad port or address, as net.connect throws it in the child
    }
  });
}

/**
 * `listenIn` natively: bound and listening in the target's namespace by the
 * thread, served here by a `net.Server` on the fd. Without a host, `::`
 * dual-stack, or 0.0.0.0 where the namespace has no IPv6 (as Node does).
 */
export function listenNative(where: Where, o: ListenInOptions, opts: RunOptions): Promise<net.Server> | undefined {
  if (o.path !== undefined) return toChild('listenIn', 'a unix socket path resolves in the target\'s filesystem');
  const family = o.host === undefined ? 6 : net.isIP(o.host);
  if (family === 0) return toChild('listenIn', 'a host name resolves in the target');
  if (o.host?.includes('%')) return toChild('listenIn', 'a scoped address names an interface of the target');
  const port = o.port as number; // connectIn's caller checked: a port or a path
  const backlog = o.backlog ?? 511;
  if (!isPort(port) || !Number.isInteger(backlog) || backlog < 0 || backlog > 0x7fffffff) return toChild('listenIn', 'an option for Node to check');
  const spec = (domain: number, address: string): SocketSpec => ({
    domain, type: C.SOCK_STREAM, address, port, backlog, reuseaddr: 1, ...(domain === C.AF_INET6 && { v6only: o.ipv6Only ? 1 : 0 }),
  });
  let address = o.host ?? '::';
  let fd = make('listenIn', route(where, LISTEN, opts), spec(family === 6 ? C.AF_INET6 : C.AF_INET, address));
  /* c8 ignore next 4 -- only a kernel booted with ipv6.disable=1 has no AF_INET6 */
  if (o.host === undefined && typeof fd === 'object' && 'failed' in fd && fd.failed.syscall === 'socket') {
    address = '0.0.0.0'; // a namespace without IPv6
    fd = make('listenIn', route(where, LISTEN, opts), spec(C.AF_INET, address));
  }
  if (typeof fd !== 'number') {
    // Node reports what fails in setting up a server (a bind's EADDRINUSE) as listen's.
    return 'child' in fd ? toChild('listenIn', fd.child) : Promise.reject(actionFailed(LISTEN, systemError('listen', fd.failed.errno, { address, port })));
  }
  const made = fd;
  return new Promise<net.Server>((resolve, reject) => {
    const server = net.createServer();
    /* c8 ignore next 5 -- a listening TCP socket made here always opens and listens again */
    server.once('error', (err) => {
      server.close();
      addon.closeFd(made); // Node closes a handle it opened; one it could not open is still ours
      reject(actionFailed(LISTEN, err));
    });
    server.listen({ fd: made, backlog }, () => {
      server.removeAllListeners('error');
      resolve(server);
    });
  });
}

/** The spec of a bound UDP socket; its address must be an IP literal of its type. */
function udpSpec(o: BindInOptions, address: string): SocketSpec {
  const v6 = o.type === 'udp6';
  return {
    domain: v6 ? C.AF_INET6 : C.AF_INET, type: C.SOCK_DGRAM, address, port: o.port ?? 0,
    ...(o.reuseAddr && { reuseaddr: 1 }), ...(v6 && o.ipv6Only !== undefined && { v6only: o.ipv6Only ? 1 : 0 }),
  };
}

/** The address a spec binds to, for an error's message and fields. */
const boundTo = (spec: SocketSpec) => (spec.address === undefined ? undefined : { address: spec.address, port: Number(spec.port) });

/**
 * The child path's action for `bindIn` and `socketIn`: the same native call,
 * with no join (the child is in the target's namespaces already); a host
 * name to bind to is resolved here, in the target.
 */
register(SOCKET, async ({ spec, udp }: { spec: SocketSpec; udp?: BindInOptions }) => {
  let s = spec;
  if (udp) {
    const { address } = await (await import('node:dns')).promises.lookup(udp.address!, { family: udp.type === 'udp6' ? 6 : 4 });
    s = udpSpec(udp, address);
  }
  const fd = native.netnsSocket(-1, s);
  if (typeof fd !== 'number') throw systemError(fd.syscall, fd.errno, boundTo(s));
  return transferFd(fd);
});

function viaChild<R>(where: Where, param: unknown, opts: RunOptions): Promise<R> {
  if (where instanceof NamespaceWorker) return where.run<R>(SOCKET, param, opts);
  return runReexecAction<R>(SOCKET, { ...where, ...opts, param });
}

/** A native fd, the child's TransferredFd, or the error either met. */
async function socketFd(api: string, where: Where, opts: RunOptions, spec: SocketSpec, udp?: BindInOptions): Promise<number> {
  const fd = udp && net.isIP(udp.address!) === 0 ? { child: 'a host name resolves in the target' } : make(api, route(where, SOCKET, opts), spec);
  if (typeof fd === 'number') return fd;
  if ('failed' in fd) {
    throw actionFailed(SOCKET, systemError(fd.failed.syscall, fd.failed.errno, boundTo(spec)));
  }
  toChild(api, fd.child);
  const got = await viaChild<TransferredFd>(where, { spec, udp }, opts);
  return got.fd;
}

/**
 * A bound UDP `dgram.Socket` in the target's network namespace, owned by
 * this process: datagrams it sends leave from the target's namespace, and
 * those sent to it there arrive here.
 */
export async function bindIn(where: Where, options: BindInOptions, opts: RunOptions = {}): Promise<dgram.Socket> {
  checkKeys('gons/reexec: bindIn', 'option', options, ['type', 'address', 'port', 'reuseAddr', 'ipv6Only']);
  if (options?.type !== 'udp4' && options?.type !== 'udp6') throw gonsError('ERR_INVALID_ARG_VALUE', 'gons/reexec: bindIn: options.type must be \'udp4\' or \'udp6\'');
  if (options.address !== undefined && (typeof options.address !== 'string' || options.address === '')) throw gonsError('ERR_INVALID_ARG_VALUE', 'gons/reexec: bindIn: address must be a non-empty string');
  if (options.port !== undefined && !isPort(options.port)) {
    throw gonsError('ERR_SOCKET_BAD_PORT', `gons/reexec: bindIn: port must be an integer from 0 to 65535, not ${String(options.port)}`);
  }
  const o = { ...options, address: options.address ?? (options.type === 'udp6' ? '::' : '0.0.0.0') };
  const fd = await socketFd('bindIn', where, opts, udpSpec(o, o.address), o);
  const sock = dgram.createSocket(o.type);
  return new Promise((resolve, reject) => {
    try {
      sock.bind({ fd }, () => resolve(sock)); // opens the handle at once; 'listening' comes on a later tick
      /* c8 ignore next 5 -- only a compromised child sends an fd that is no UDP socket */
    } catch (err) {
      sock.close(); // an fd that is no UDP socket (a child's): refused here
      addon.closeFd(fd);
      reject(err);
    }
  });
}

/**
 * Any socket in the target's network namespace — netlink, raw, a unix
 * socketpair end… — as a `TransferredFd` owned by the caller (close-on-exec;
 * `SOCK_NONBLOCK` if asked). `socketConstants` has the common values.
 */
export async function socketIn(where: Where, options: SocketInOptions, opts: RunOptions = {}): Promise<TransferredFd> {
  checkKeys('gons/reexec: socketIn', 'option', options, ['domain', 'type', 'protocol']);
  const int = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0x7fffffff;
  if (!int(options?.domain) || !int(options.type) || (options.protocol !== undefined && !int(options.protocol))) {
    throw gonsError('ERR_INVALID_ARG_VALUE', 'gons/reexec: socketIn: domain, type and protocol must be non-negative integers');
  }
  const fd = await socketFd('socketIn', where, opts, { domain: options.domain, type: options.type, protocol: options.protocol ?? 0 });
  return new TransferredFd(fd);
}

// ---- Paths in the target's filesystem: connectIn({ path }), openIn with namespace paths ----

/** The code of a connectIn path that names something other than a unix socket. */
export const NOT_SOCKET = 'ERR_GONS_NOT_A_SOCKET';

/**
 * The root a path resolves against: an O_PATH fd of the target's root (the
 * caller closes it), `'own'` when no mount namespace is joined (the child's
 * root would be ours), or why the child path must serve.
 */
type Root = { fd: number; how: string } | 'own' | { child: string };

/** `/proc/<pid>/root` of a target whose mount namespace is joined, checked against its pidfd. */
function targetRoot(pid: number, types: string[], pidfd: number | undefined): Root {
  if (!types.includes('mnt')) return 'own';
  /* c8 ignore next -- a joined mount namespace comes with the pidfd on Linux >= 5.8 */
  if (!kernelHasPidfdSetns() || pidfd === undefined) return { child: 'no pidfd to check the target\'s root against (Linux < 5.8)' };
  const opened = addon.openDirPath(`/proc/${pid}/root`);
  // Opened by pid: it is the target's root only if the pidfd's process is still there.
  /* c8 ignore next 5 -- a target that exits (or whose pid is reused) between planning and here: a race no test can time */
  if ('errno' in opened) return { child: `cannot open /proc/${pid}/root: ${addon.strerror(opened.errno)}` };
  if (!pidfdAlive(pidfd, pid)) {
    addon.closeFd(opened.fd);
    return { child: `process ${pid} exited` };
  }
  return { fd: opened.fd, how: `/proc/${pid}/root, checked against its pidfd` };
}

/**
 * The root of the mount namespace of namespace paths, handed over by the
 * helper (which joins the user namespace first when the call names one that
 * comes before, or with `!`); `'own'` without a mount namespace.
 */
function namespacesRoot(env: NodeJS.ProcessEnv): Root {
  const order = env.gons_order ? env.gons_order.split(',') : [];
  const at = order.findIndex((t) => t === 'mnt' || t === '!mnt');
  const u = order.findIndex((t) => t === 'user' || t === '!user');
  if (at < 0) return u >= 0 ? { child: 'a user namespace without a mount namespace: the file is the child\'s to open with its credentials' } : 'own';
  if (u >= 0 && order[u] === 'user' && afterMnt(order, u)) return { child: 'the user path resolves in the target\'s mount namespace' };
  /* c8 ignore next -- the checkout's build always has it; an incomplete package falls back */
  if (!existsSync(helperPath)) return { child: `the netns helper ${helperPath} is missing (an incomplete build or package)` };
  const mnt = openNs(env.gons_mnt as string);
  /* c8 ignore next -- see openNs */
  if (typeof mnt !== 'number') return mnt;
  const user = u >= 0 ? openNs(env.gons_user as string) : -1;
  /* c8 ignore next 4 -- see openNs */
  if (typeof user !== 'number') {
    addon.closeFd(mnt);
    return user;
  }
  try {
    const got = native.netnsHelperRoot(helperPath, user, mnt);
    // A join the helper may not make (EPERM, EINVAL): the child meets it too, and reports it as NamespaceSwitchError.
    if (typeof got !== 'number') return { child: `the netns helper: ${got.syscall}: ${addon.strerror(got.errno)}` };
    return { fd: got, how: `the netns helper joined ${u >= 0 ? `${env.gons_user} and ` : ''}${env.gons_mnt} and handed its root over` };
  } finally {
    addon.closeFd(mnt);
    if (user >= 0) addon.closeFd(user);
  }
}

/** The root of a one-shot call's target or namespace paths, from its plan (which the caller releases). */
function rootOfPlan(where: Omit<ReexecOptions, 'param'>, plan: Plan): Root {
  if (where.target !== undefined) return targetRoot((where.target as Target).pid, (plan.env.gons_target_types ?? '').split(','), plan.pidfd);
  return namespacesRoot(plan.env);
}

/** The root of a one-shot call's namespace paths, planned as the child path plans it. */
function rootOf(where: Omit<ReexecOptions, 'param'>, action: string, opts: RunOptions): Root {
  // (Called for namespace paths only: a target, by pid or by container name, takes openNative's own way.)
  if (where.confine) return { child: 'confine: only a child can take the target\'s credentials' };
  if (opts.signal?.aborted) return { child: 'the signal is aborted already' };
  const plan = planReexec('runReexecAction', action, { ...where, ...opts }, false);
  try {
    return rootOfPlan(where, plan);
  } finally {
    plan.release();
  }
}

/** What pathInRoot found: an O_PATH fd and its type, or a failure. */
function pathIn(root: number, path: string): Promise<{ fd: number; mode: number } | Failure> {
  return new Promise((resolve) => native.pathInRoot(root, path, resolve));
}

/** A file type's name, for a refusal's message. */
function typeOf(mode: number): string {
  const names: Record<number, string> = {
    [fsConstants.S_IFREG]: 'regular file', [fsConstants.S_IFDIR]: 'directory', [fsConstants.S_IFCHR]: 'character device',
    [fsConstants.S_IFBLK]: 'block device', [fsConstants.S_IFIFO]: 'FIFO', [fsConstants.S_IFLNK]: 'symbolic link',
  };
  /* c8 ignore next -- fstat reports one of the above, or a socket */
  return names[mode] ?? 'special file';
}

/** connectIn's refusal of a path that names no unix socket. */
function notSocket(path: string, type: string): ReexecError {
  return actionError(CONNECT, gonsError(NOT_SOCKET, `gons: connectIn ${JSON.stringify(path)}: refused a ${type}: only a unix socket is connected to`, { path, type }));
}

/** A connect's system error as Node words it for a unix socket path (`connect ECONNREFUSED /run/x.sock`). */
function connectError(path: string, errno: number, syscall = 'connect'): ReexecError {
  const err = systemError(syscall, errno);
  err.message = `${syscall} ${err.code} ${path}`;
  Object.assign(err, { address: path });
  return actionFailed(CONNECT, err);
}

/**
 * `connectIn({ path })` natively. An abstract name (a leading NUL) lives in
 * the network namespace: a unix socket made there connects to it. A path
 * lives in the filesystem: with the target's mount namespace joined, it is
 * pinned below the target's root and connected to by its inode (see the top
 * of this file); without, it resolves in our root, as the child's would.
 */
function unixNative(where: Where, o: ConnectInOptions, opts: RunOptions): Promise<net.Socket> | undefined {
  const path = o.path!;
  if (typeof path !== 'string' || path === '') return toChild('connectIn', 'a path for Node to check');
  if (where instanceof NamespaceWorker) return toChild('connectIn', 'a worker: its own child makes the handle');
  const abstract = path.startsWith('\0');
  if (!abstract && !path.startsWith('/')) return toChild('connectIn', 'a relative unix socket path resolves against the child\'s working directory');
  if (opts.signal?.aborted) return toChild('connectIn', 'the signal is aborted already');
  // One plan for both: the socket's network namespace and, for a path, the root it resolves below.
  let root = 'own' as Root; // set by the plan's callback
  const r = route(where, CONNECT, opts, abstract ? undefined : (plan) => (root = rootOfPlan(where, plan)));
  if (typeof root === 'object' && 'child' in root) {
    if (!('child' in r)) r.release();
    return toChild('connectIn', root.child);
  }
  const fd = make('connectIn', r, { domain: C.AF_UNIX, type: C.SOCK_STREAM });
  if (typeof fd !== 'number') {
    if (typeof root === 'object') addon.closeFd(root.fd);
    if ('child' in fd) return toChild('connectIn', fd.child);
    /* c8 ignore start -- only fd or memory exhaustion fails an AF_UNIX socket() */
    return Promise.reject(actionFailed(CONNECT, systemError(fd.failed.syscall, fd.failed.errno)));
  }
  /* c8 ignore stop */
  const rootFd = typeof root === 'object' ? root.fd : -1;
  if (typeof root === 'object') log('connectIn %s: resolved below %s', JSON.stringify(path), root.how);
  return new Promise<net.Socket>((resolve, reject) => {
    const sock = new net.Socket({ fd, manualStart: true } as net.SocketConstructorOpts);
    let settled = false;
    let pinned = -1;
    const done = (err?: Error) => {
      if (pinned >= 0) addon.closeFd(pinned);
      pinned = -1;
      if (settled) return;
      settled = true;
      disarm();
      if (err) {
        sock.destroy();
        reject(err);
      } else {
        sock.removeAllListeners('error');
        resolve(sock);
      }
    };
    const disarm = armDeadline(CONNECT, opts, (err) => done(err));
    sock.once('error', (err: NodeJS.ErrnoException) => done(rootFd >= 0 ? connectError(path, -(err.errno ?? 0) || constants.errno.EIO) : actionFailed(CONNECT, err)));
    const connect = (to: string) => {
      try {
        sock.connect({ path: to }, () => done());
        /* c8 ignore next 3 -- a path Node refuses is refused before it comes here (a string without NUL, or abstract) */
      } catch (err) {
        done(actionFailed(CONNECT, err as Error));
      }
    };
    if (rootFd < 0) return connect(path);
    pathIn(rootFd, path).then((r) => {
      addon.closeFd(rootFd);
      if ('errno' in r) return done(connectError(path, r.errno));
      pinned = r.fd;
      if (settled) return done();
      if (r.mode !== fsConstants.S_IFSOCK) return done(notSocket(path, typeOf(r.mode)));
      connect(`/proc/self/fd/${r.fd}`);
    });
  });
}


/**
 * `openIn` with namespace paths natively: the root of their mount namespace,
 * from the helper, and the same walk, check and re-open as a target's
 * (`openRegular`). Resolves to the FileHandle, or to the reason the child
 * path must serve instead; throws what the child path would (bad options).
 */
export async function openInNamespaces(where: Omit<ReexecOptions, 'param'>, path: string, flags: number, opts: RunOptions): Promise<fsp.FileHandle | string> {
  const root = rootOf(where, OPEN, opts);
  if (typeof root === 'object' && 'child' in root) return root.child;
  let rootFd: number;
  if (root === 'own') {
    const own = addon.openDirPath('/');
    /* c8 ignore next -- / is always a directory we may open O_PATH */
    if ('errno' in own) return `cannot open /: ${addon.strerror(own.errno)}`;
    rootFd = own.fd;
  } else rootFd = root.fd;
  log('openIn %s: native path, %s', JSON.stringify(path), root === 'own' ? 'no mount namespace: our own root' : root.how);
  return openBelowRoot(rootFd, path, flags, opts);
}
