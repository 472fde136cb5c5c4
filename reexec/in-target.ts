/**
 * The common handles, made inside a target by actions gons registers itself:
 * a connected socket, a listening server, an open file. Each action takes the
 * fd from Node in the same tick that Node made it and closes its own object at
 * once, so the child never reads a byte or accepts a connection meant for the
 * parent.
 */
import { promises as fsp } from 'node:fs';
import * as net from 'node:net';
import { gonsError } from '../lib/errors';
import { checkKeys } from '../lib/options';
import { TransferredFd, dupFd } from './handles';
import { OPEN, logChildPath, numericFlags, openAction, openNative } from './open-in';
import { connectNative, listenNative } from './native-handles';
import type { ReexecOptions, RunOptions } from './plan';
import { register } from './registry';
import { NamespaceWorker, runReexecAction } from './worker';

/** Where a handle is made: an open worker, or the namespaces (or target) of a one-shot call with its other options. */
export type Where = NamespaceWorker | Omit<ReexecOptions, 'param'>;

/** `net.connect` options that cross the channel: TCP (`host`, `port`) or a unix socket (`path`, resolved in the target's root). */
export interface ConnectInOptions {
  /** Host to connect to, resolved inside the target (its /etc/hosts and DNS); default `localhost`. */
  host?: string;
  /** TCP port; give this or `path`. */
  port?: number;
  /** A Unix socket path in the target's filesystem (or an abstract name in its net namespace, starting with NUL). */
  path?: string;
  /** 4 or 6, to pick an address family when `host` resolves to both. */
  family?: number;
  /** Local address to bind before connecting. */
  localAddress?: string;
  /** Local port to bind before connecting. */
  localPort?: number;
}

/** `server.listen` options that cross the channel. */
export interface ListenInOptions {
  /** Address to listen on inside the target; default: every address of its net namespace. */
  host?: string;
  /** TCP port; 0 (or absent, without `path`) picks a free one: read it from `server.address()`. */
  port?: number;
  /** A Unix socket path in the target's filesystem to listen on. */
  path?: string;
  /** Length of the pending-connections queue. */
  backlog?: number;
  /** With an IPv6 `host`: IPv6 only, no IPv4-mapped connections. */
  ipv6Only?: boolean;
  /** As in `server.listen`. */
  exclusive?: boolean;
}

const CONNECT = 'gons:connectIn';
const LISTEN = 'gons:listenIn';

function fdOf(handle: unknown): number {
  return (handle as { _handle: { fd: number } })._handle.fd;
}

register(CONNECT, (options: ConnectInOptions) => new Promise<TransferredFd>((resolve, reject) => {
  const sock = net.connect(options as net.NetConnectOpts);
  sock.pause(); // no read may start in the child
  sock.once('error', reject);
  sock.once('connect', () => {
    const fd = dupFd(fdOf(sock));
    sock.destroy();
    resolve(new TransferredFd(fd, 'socket'));
  });
}));

register(LISTEN, (options: ListenInOptions) => new Promise<TransferredFd>((resolve, reject) => {
  const server = net.createServer();
  server.once('error', reject);
  // 'listening' comes on the next tick, before the event loop could accept anything.
  server.listen(options, () => {
    const fd = dupFd(fdOf(server));
    server.close();
    resolve(new TransferredFd(fd, 'server'));
  });
}));

register(OPEN, openAction);

function call<R>(where: Where, action: string, param: unknown, opts: RunOptions): Promise<R> {
  if (where instanceof NamespaceWorker) return where.run<R>(action, param, opts);
  return runReexecAction<R>(action, { ...where, ...opts, param });
}

/**
 * A socket connected inside the target's network namespace (`{ host, port }`,
 * or `{ path }` of a unix socket in its filesystem). It is an ordinary
 * `net.Socket` of this process, owned by the caller; no process sits between.
 */
export async function connectIn(where: Where, options: ConnectInOptions, opts: RunOptions = {}): Promise<net.Socket> {
  checkKeys('gons/reexec: connectIn', 'option', options, ['host', 'port', 'path', 'family', 'localAddress', 'localPort']);
  if (options?.path === undefined && options?.port === undefined) throw gonsError('ERR_INVALID_ARG_VALUE', 'gons/reexec: connectIn: options need a port or a path');
  return connectNative(where, options, opts) ?? call(where, CONNECT, options, opts);
}

/**
 * A server listening inside the target's network namespace; connections are
 * accepted and served here, in this process (attach a 'connection' listener).
 */
export async function listenIn(where: Where, options: ListenInOptions, opts: RunOptions = {}): Promise<net.Server> {
  checkKeys('gons/reexec: listenIn', 'option', options, ['host', 'port', 'path', 'backlog', 'ipv6Only', 'exclusive']);
  if (options?.path === undefined && options?.port === undefined) throw gonsError('ERR_INVALID_ARG_VALUE', 'gons/reexec: listenIn: options need a port or a path');
  return listenNative(where, options, opts) ?? call(where, LISTEN, options, opts);
}

/**
 * A `FileHandle` on a regular file of the target's mount namespace (the path
 * resolves against the target's root; `..` and symlinks stay inside it, magic
 * links are refused), opened with `flags` (default `'r'`). A device, FIFO,
 * socket or directory is refused (`ERR_GONS_NOT_REGULAR_FILE`) before it is
 * opened. For a target by pid this process opens it, without a child.
 */
export async function openIn(where: Where, path: string, flags: string | number = 'r', opts: RunOptions = {}): Promise<fsp.FileHandle> {
  if (typeof path !== 'string' || path === '' || path.includes('\0')) throw gonsError('ERR_INVALID_ARG_VALUE', 'gons/reexec: openIn: path must be a non-empty string');
  const n = numericFlags(flags);
  if (n === undefined) throw gonsError('ERR_INVALID_ARG_VALUE', `gons/reexec: openIn: flags must be one of fs.open's flag strings or a non-negative integer, not ${JSON.stringify(flags)}`);
  let why = 'a worker serves it';
  if (!(where instanceof NamespaceWorker)) {
    const native = await openNative(where, path, n, opts);
    if (typeof native !== 'string') return native;
    why = native;
  }
  logChildPath(path, why);
  return call(where, OPEN, { path, flags: n }, opts);
}
