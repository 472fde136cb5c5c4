/**
 * The IPC channel between parent and re-executed child: a dedicated socket
 * (`FD.channel` in the child, never stdout) carrying frames of a 32-bit big-endian
 * length and a V8-serialized value (structured clone: Map, Set, BigInt, Date,
 * RegExp, typed arrays, Buffer, undefined, ...).
 *
 * The parent treats what a child sends as hostile (the child sits in an
 * untrusted container): a frame is bounded before its body is buffered, and
 * whatever cannot be decoded is a `ERR_GONS_PROTOCOL` error, never a throw
 * out of an event handler.
 */
import { serialize, deserialize } from 'node:v8';
import type { Duplex } from 'node:stream';
import { type GonsErrorCode, gonsError } from '../lib/errors';

const MAX_FRAME = 0xffff_ffff;

/** Default bound of one frame's body: 256 MiB. */
export const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

/** A frame that breaks the protocol; the callers turn it into a `ReexecError` with code `ERR_GONS_PROTOCOL`. */
export class ProtocolError extends Error {
  readonly code = 'ERR_GONS_PROTOCOL' satisfies GonsErrorCode;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProtocolError';
  }
}

/** Serializes a message into a frame; throws a DataCloneError for values that cannot be cloned. */
export function encodeFrame(message: unknown): Buffer[] {
  const body = serialize(message);
  /* c8 ignore next -- a 4 GiB message is beyond what V8 serializes */
  if (body.length > MAX_FRAME) throw new RangeError(`gons/reexec: message of ${body.length} bytes is too large`);
  const header = Buffer.allocUnsafe(4);
  header.writeUInt32BE(body.length);
  return [header, body];
}

/** Bodies up to this size are copied behind their header and written in one buffer: cheaper than a writev of two. */
const COPY_BELOW = 64 * 1024;

/** Writes a frame; resolves once it has been handed to the kernel. */
export function writeFrame(stream: Duplex, frame: Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null) => (err ? reject(err) : resolve());
    if (frame[1].length < COPY_BELOW) {
      stream.write(Buffer.concat(frame, frame[0].length + frame[1].length), done);
      return;
    }
    stream.cork();
    stream.write(frame[0]);
    stream.write(frame[1], done);
    stream.uncork();
  });
}

/**
 * Reassembles frames from a byte stream; concatenates each message's chunks
 * only once. A frame larger than `maxMessageBytes` is refused as soon as its
 * header is read; after a `ProtocolError` the reader stays broken.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private broken = false;

  constructor(private readonly maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES) {}

  /** Adds bytes; returns the messages they complete; throws a `ProtocolError` for a bad frame. */
  push(chunk: Buffer): unknown[] {
    if (this.broken) return [];
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const messages: unknown[] = [];
    try {
      while (this.buffered >= 4) {
        const head = this.chunks[0].length >= 4 ? this.chunks[0] : this.flatten();
        const size = head.readUInt32BE(0);
        if (size > this.maxMessageBytes) {
          throw new ProtocolError(`frame of ${size} bytes exceeds maxMessageBytes (${this.maxMessageBytes})`);
        }
        if (this.buffered < 4 + size) break;
        const all = this.flatten();
        messages.push(decode(all.subarray(4, 4 + size)));
        const rest = all.subarray(4 + size);
        this.chunks = rest.length ? [rest] : [];
        this.buffered = rest.length;
      }
    } catch (err) {
      this.broken = true;
      this.chunks = [];
      this.buffered = 0;
      throw err;
    }
    return messages;
  }

  private flatten(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    return this.chunks[0];
  }
}

function decode(body: Buffer): unknown {
  try {
    return deserialize(body);
  } catch (err) {
    throw new ProtocolError(`undecodable frame of ${body.length} bytes: ${(err as Error).message}`, { cause: err });
  }
}

/** Checks a `maxMessageBytes` option: a positive integer of bytes, at most the 4 GiB a header can announce. */
export function checkMaxMessageBytes(where: string, value: unknown): number {
  if (value === undefined) return DEFAULT_MAX_MESSAGE_BYTES;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0 || value > MAX_FRAME) {
    throw gonsError('ERR_OUT_OF_RANGE', `gons/reexec: ${where}: maxMessageBytes must be a positive integer, at most ${MAX_FRAME}`);
  }
  return value;
}
