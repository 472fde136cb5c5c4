/**
 * Handles across namespaces. A socket, server, datagram socket or file that an
 * action opened inside the target keeps that target's namespaces for its whole
 * life, so the child passes the fd itself to the parent (SCM_RIGHTS) and the
 * parent wraps it in the same kind of Node object: no process sits in the
 * data path. The fds travel on a channel of their own (a SOCK_SEQPACKET pair,
 * `FD.handles` in the child; Node reads its pipes with plain read(2), which would drop
 * them): one message per reply that carries handles, sent just before that
 * reply, so the parent finds it queued when the reply arrives. The reply lists
 * where in the result each handle goes; the result holds null there.
 */
import dgram from 'node:dgram';
import { type Stats, constants, fstatSync, promises as fsp } from 'node:fs';
import net from 'node:net';
import { gonsError, systemError } from '../lib/errors';
import { addon } from '../lib/native';
import { ReexecError } from './errors';
import { FD } from './fds';

/** The child's end of the handle channel. */
/** The most fds one message carries (the kernel's SCM_MAX_FD). */
export const MAX_HANDLES = 253;

/** What a transferred fd becomes in the parent. */
export type HandleKind = 'socket' | 'server' | 'dgram' | 'file' | 'fd';
const kinds: readonly HandleKind[] = ['socket', 'server', 'dgram', 'file', 'fd'];

/** Where a handle goes in a result, and what it becomes. */
export interface HandleSlot {
  path: Array<string | number>;
  kind: HandleKind;
  /** The family of a datagram socket. */
  udp?: 'udp4' | 'udp6';
}

/**
 * A raw fd crossing namespaces. In an action, `transferFd(fd)` hands the fd
 * to the parent (the child closes its copy once sent); in the parent, the
 * received fd, owned by the caller: `close()` it, or `using` it.
 */
export class TransferredFd {
  #fd: number;
  /** @internal What the parent makes of it; helpers send servers and sockets as fds taken from Node. */
  readonly kind: HandleKind;

  /** @internal Use `transferFd()`. */
  constructor(fd: number, kind: HandleKind = 'fd') {
    this.#fd = fd;
    this.kind = kind;
  }

  /** The fd number, or -1 once closed. */
  get fd(): number {
    return this.#fd;
  }

  /** Closes the fd; idempotent. */
  close(): void {
    if (this.#fd < 0) return;
    addon.closeFd(this.#fd);
    this.#fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** In an action: marks an fd (e.g. a netlink socket opened in the target) to be passed to the parent as it is. */
export function transferFd(fd: number): TransferredFd {
  if (!Number.isSafeInteger(fd) || fd < 0) {
    throw gonsError('ERR_INVALID_ARG_VALUE', `gons/reexec: transferFd: fd must be a non-negative integer, not ${String(fd)}`);
  }
  return new TransferredFd(fd);
}

/** A duplicate (close-on-exec) of `fd`, for helpers that take an fd from a Node object and close the object at once. */
export function dupFd(fd: number): number {
  const dup = addon.dupFd(fd);
  /* c8 ignore next 3 -- only fd exhaustion makes F_DUPFD_CLOEXEC fail */
  if (typeof dup !== 'number') {
    throw systemError(`gons/reexec: cannot duplicate fd ${fd}: ${addon.strerror(dup.errno)}`, dup);
  }
  return dup;
}

function notTransferable(action: string, what: string): ReexecError {
  return gonsError('ERR_GONS_NOT_TRANSFERABLE', `gons/reexec: result of action ${JSON.stringify(action)} cannot be transferred: ${what}`, { action });
}

interface Found {
  slot: HandleSlot;
  fd: number;
  /** Closes the child's own copy once the fd was sent (or the transfer failed). */
  release(): void;
}

function udpState(sock: dgram.Socket): { handle?: { fd?: number }; bindState?: number } | undefined {
  for (const key of Object.getOwnPropertySymbols(sock)) {
    const v = (sock as unknown as Record<symbol, unknown>)[key] as { handle?: unknown; bindState?: unknown } | undefined;
    if (v && typeof v === 'object' && 'handle' in v && 'bindState' in v) return v as { handle?: { fd?: number }; bindState?: number };
  }
  /* c8 ignore next -- every Node line keeps a dgram socket's handle in its state symbol */
  return undefined;
}

/** A handle that cannot move: why, and how to close it (a worker must not keep it). */
interface Refused {
  problem: string;
  release(): void;
}

/** What `value` is as a handle (with its fd), null when it is none, or why it cannot be sent. */
function asHandle(value: unknown, path: Array<string | number>): Found | Refused | null {
  const found = (kind: HandleKind, fd: number, release: () => void, udp?: 'udp4' | 'udp6'): Found => ({ slot: { path, kind, ...(udp && { udp }) }, fd, release });
  if (value instanceof TransferredFd) {
    const release = () => value.close();
    return value.fd < 0 ? { problem: 'a closed fd', release } : found(value.kind, value.fd, release);
  }
  if (value instanceof net.Socket) {
    const fd = (value as unknown as { _handle?: { fd?: number } })._handle?.fd;
    const release = () => value.destroy();
    if ((value as unknown as { encrypted?: boolean }).encrypted) return { problem: 'a TLS socket (its session cannot move)', release };
    if (value.connecting || typeof fd !== 'number' || fd < 0) return { problem: 'a socket that is not connected', release };
    if (value.readableLength > 0 || value.writableLength > 0) {
      return { problem: `a socket with ${value.readableLength + value.writableLength} buffered bytes (pause() it before it reads)`, release };
    }
    return found('socket', fd, release);
  }
  if (value instanceof net.Server) {
    const fd = (value as unknown as { _handle?: { fd?: number } })._handle?.fd;
    const release = () => value.close();
    if (value.constructor !== net.Server) return { problem: `a ${value.constructor.name} (only a plain net.Server moves)`, release };
    if (!value.listening || typeof fd !== 'number' || fd < 0) return { problem: 'a server that is not listening', release };
    return found('server', fd, release);
  }
  if (value instanceof dgram.Socket) {
    const state = udpState(value);
    const fd = state?.handle?.fd;
    const release = () => value.close();
    if (state?.bindState !== 2 || typeof fd !== 'number' || fd < 0) return { problem: 'a datagram socket that is not bound', release };
    return found('dgram', fd, release, (value as unknown as { type: 'udp4' | 'udp6' }).type);
  }
  const fh = value as { constructor?: { name?: string }; fd?: unknown; close?: unknown } | null;
  if (fh && typeof fh === 'object' && fh.constructor?.name === 'FileHandle' && typeof fh.close === 'function') {
    const release = () => void (fh.close as () => Promise<void>)().catch(() => {});
    if (typeof fh.fd !== 'number' || fh.fd < 0) return { problem: 'a closed FileHandle', release };
    return found('file', fh.fd, release);
  }
  return null;
}

/** Where a value sits in a result, innermost key first: a path is built only for the few values that may be handles. */
type Trail = { up: Trail; key: string | number } | undefined;

function pathOf(trail: Trail): Array<string | number> {
  const path: Array<string | number> = [];
  for (let t = trail; t; t = t.up) path.unshift(t.key);
  return path;
}

function isContainer(value: unknown): value is Record<string | number, unknown> {
  if (Array.isArray(value)) return true;
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A result ready to send: the value with null where handles were, the slots, and the fds to pass. */
export interface Extracted {
  value: unknown;
  slots: HandleSlot[];
  fds: number[];
  /** Closes the child's copies: after sending, or after a failure. */
  release(): void;
}

/**
 * Finds the handles in a result (the result itself, or inside arrays and
 * plain objects, at any depth). Throws `ERR_GONS_NOT_TRANSFERABLE` — after
 * closing every handle found, so a worker keeps no stray fds — for a handle
 * that cannot move, or too many.
 */
export function extractHandles(action: string, result: unknown, channel = true): Extracted {
  const found: Found[] = [];
  const refused: Refused[] = [];
  const seen = new Set<unknown>();
  const walk = (value: unknown, up: Trail): void => {
    if (value === null || typeof value !== 'object') return; // every handle is an object: most of a result is not
    if (isContainer(value)) {
      // Arrays and plain objects hold values; a handle is an instance of its class. A shared one is walked once.
      if (seen.has(value)) return;
      seen.add(value);
      for (const key of Array.isArray(value) ? value.keys() : Object.keys(value)) walk(value[key], { up, key });
      return;
    }
    const path = pathOf(up);
    const handle = asHandle(value, path);
    if (handle && 'problem' in handle) {
      refused.push({ problem: `${handle.problem} at ${describe(path)}`, release: handle.release });
      return;
    }
    if (handle) {
      if (seen.has(value)) refused.push({ problem: `the same handle appears twice (again at ${describe(path)})`, release: () => {} });
      else found.push(handle);
      seen.add(value);
    }
  };
  walk(result, undefined);
  const release = () => found.forEach((f) => f.release());
  if (found.length > MAX_HANDLES) refused.push({ problem: `${found.length} handles, more than ${MAX_HANDLES}`, release: () => {} });
  if (found.length > 0 && !channel) refused.push({ problem: `handles, and this child has no handle channel (fd ${FD.handles})`, release: () => {} });
  if (refused.length > 0) {
    release();
    refused.forEach((r) => r.release());
    throw notTransferable(action, refused[0].problem);
  }
  if (found.length === 0) return { value: result, slots: [], fds: [], release };
  const copies = new Map<object, Record<string | number, unknown>>();
  const copyOf = (c: Record<string | number, unknown>): Record<string | number, unknown> => {
    const known = copies.get(c);
    if (known) return known;
    const copy = Array.isArray(c) ? [...c] as unknown as Record<number, unknown> : Object.assign(Object.create(Object.getPrototypeOf(c)), c);
    copies.set(c, copy);
    return copy;
  };
  let value: unknown = null;
  for (const { slot } of found) {
    if (slot.path.length === 0) break;
    value = copyOf(result as Record<string | number, unknown>);
    let orig = result as Record<string | number, unknown>;
    let copy = value as Record<string | number, unknown>;
    for (const key of slot.path.slice(0, -1)) {
      orig = orig[key] as Record<string | number, unknown>;
      copy = copy[key] = copyOf(orig);
    }
    copy[slot.path.at(-1)!] = null;
  }
  return { value, slots: found.map((f) => f.slot), fds: found.map((f) => f.fd), release };
}

function describe(path: Array<string | number>): string {
  return path.length ? `result${path.map((k) => `[${JSON.stringify(k)}]`).join('')}` : 'the result';
}

/** Sends the fds of one reply; the child's copies are closed afterwards either way. */
export function sendHandles(action: string, extracted: Extracted): void {
  try {
    const err = addon.sendFds(FD.handles, extracted.fds);
    if (err !== 0) throw notTransferable(action, `sending the fds failed: ${addon.strerror(err)}`);
  } finally {
    extracted.release();
  }
}

/**
 * The slots of a reply as the parent must take them from a possibly hostile
 * child: a bounded list of known kinds at paths of strings and indices.
 */
export function checkSlots(slots: unknown): slots is HandleSlot[] {
  return Array.isArray(slots) && slots.length > 0 && slots.length <= MAX_HANDLES && slots.every((s: HandleSlot) =>
    s !== null && typeof s === 'object' && kinds.includes(s.kind) &&
    (s.udp === undefined || (s.kind === 'dgram' && (s.udp === 'udp4' || s.udp === 'udp6'))) &&
    Array.isArray(s.path) && s.path.every((k) => typeof k === 'string' || (Number.isSafeInteger(k) && k >= 0)));
}

/** Takes the fds of one reply off the handle channel; they were queued before the reply, so this never waits. */
export function receiveFds(sock: number, count: number): number[] {
  const fds = addon.recvFds(sock, count);
  if (!Array.isArray(fds)) {
    throw systemError(`the reply announced ${count} handle(s), but the handle channel held none: ${addon.strerror(fds.errno)}`, fds);
  }
  return fds;
}

const O_ACCMODE = 3;

/** `it`, once `start` called back; its first 'error' before that rejects. */
function started<T extends NodeJS.EventEmitter>(it: T, start: (done: () => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    it.once('error', reject);
    start(() => {
      it.off('error', reject);
      resolve(it);
    });
  });
}

/** What a file type is called in messages. */
function typeName(st: Stats): string {
  if (st.isDirectory()) return 'directory';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  if (st.isFIFO()) return 'FIFO';
  if (st.isSocket()) return 'socket';
  /* c8 ignore next -- an fd is never a symlink; what else fstat may say */
  return 'special file';
}

/**
 * A `FileHandle` on the regular file `fd` is open on (the fd is closed once
 * it is made); anything else is refused before it is opened again: opening a
 * device has effects (a tty becomes the controlling terminal, a disk opens
 * outside the container's device cgroup), and opening a FIFO again blocks a
 * threadpool thread until a writer comes (the child decides if ever).
 */
export async function fileHandle(fd: number): Promise<fsp.FileHandle> {
  const st = fstatSync(fd);
  if (!st.isFile()) throw new Error(`a ${typeName(st)}, not a regular file`);
  const flags = addon.fdFlags(fd);
  /* c8 ignore next -- fstat just succeeded on the same fd */
  if (typeof flags !== 'number') throw systemError(`not an open file: ${addon.strerror(flags.errno)}`, flags);
  // Node has no public way to wrap an fd in a FileHandle: open the same file again through the fd's magic link
  // (this process's own procfs), with the fd's access mode and append flag; O_NOCTTY, whatever it is; then drop the fd.
  const handle = await fsp.open(`/proc/self/fd/${fd}`, (flags & (O_ACCMODE | constants.O_APPEND)) | constants.O_NOCTTY);
  addon.closeFd(fd);
  return handle;
}

/** Wraps fd as its slot's kind; `failed` gets the first error of a socket before the caller has it. */
async function wrap(slot: HandleSlot, fd: number, failed: (err: Error) => void): Promise<unknown> {
  switch (slot.kind) {
    case 'socket': {
      const sock = new net.Socket({ fd, readable: true, writable: true });
      // Until the caller has it, an error (a peer's reset) has no listener of its own: it fails the restore.
      sock.once('error', failed);
      return sock;
    }
    case 'server': {
      const server = net.createServer();
      return started(server, (done) => server.listen({ fd }, done));
    }
    case 'dgram': {
      const sock = dgram.createSocket(slot.udp ?? 'udp4');
      return started(sock, (done) => sock.bind({ fd }, done));
    }
    case 'file':
      return fileHandle(fd);
    default:
      return new TransferredFd(fd);
  }
}

/** Closes whatever `wrap` made, or the bare fd. */
function discard(made: unknown, fd: number): void {
  if (made instanceof net.Socket) made.destroy();
  else if (made instanceof net.Server) made.close();
  else if (made instanceof dgram.Socket) made.close();
  else if (made instanceof TransferredFd) made.close();
  else if (made && typeof (made as { close?: unknown }).close === 'function') void (made as { close(): Promise<void> }).close().catch(() => {});
  else addon.closeFd(fd);
}

/**
 * Puts the received fds into the result as Node objects. A slot whose path
 * does not lead to a null in the result, or an fd that is not what the slot
 * says, is a protocol error: every fd and object made so far is closed.
 */
export async function restoreHandles(value: unknown, slots: HandleSlot[], fds: number[]): Promise<unknown> {
  const made: unknown[] = [];
  let early: Error | undefined;
  try {
    for (let i = 0; i < slots.length; i++) {
      try {
        made[i] = await wrap(slots[i], fds[i], (err) => (early ??= err));
      } catch (err) {
        throw new Error(`handle ${i} is not a ${slots[i].kind}: ${(err as Error).message}`);
      }
    }
    if (early) throw new Error(`a socket failed before it was handed over: ${early.message}`);
    for (const m of made) if (m instanceof net.Socket) m.removeAllListeners('error');
    let out = value;
    slots.forEach((slot, i) => {
      if (slot.path.length === 0) {
        if (slots.length !== 1 || out !== null) throw new Error('a handle for the whole result, beside others or a value');
        out = made[i];
        return;
      }
      let container = out as Record<string | number, unknown>;
      for (const key of slot.path.slice(0, -1)) {
        if (!isContainer(container) || !Object.hasOwn(container, key)) throw new Error(`no place for handle ${i} in the result`);
        container = container[key] as Record<string | number, unknown>;
      }
      const last = slot.path.at(-1)!;
      if (!isContainer(container) || !Object.hasOwn(container, last) || container[last] !== null) throw new Error(`no place for handle ${i} in the result`);
      Object.defineProperty(container, last, { value: made[i], writable: true, enumerable: true, configurable: true });
    });
    return out;
  } catch (err) {
    fds.forEach((fd, i) => discard(made[i], fd));
    throw err;
  }
}
