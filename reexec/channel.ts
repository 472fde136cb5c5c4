/**
 * The IPC channel between parent and re-executed child: a dedicated socket
 * (fd 3 in the child, never stdout) carrying frames of a 32-bit big-endian
 * length and a V8-serialized value (structured clone: Map, Set, BigInt, Date,
 * RegExp, typed arrays, Buffer, undefined, ...).
 */
import { serialize, deserialize } from 'node:v8';
import type { Duplex } from 'node:stream';

/** The child's end of the channel. */
export const CHILD_FD = 3;

const MAX_FRAME = 0xffff_ffff;

/** Serializes a message into a frame; throws a DataCloneError for values that cannot be cloned. */
export function encodeFrame(message: unknown): Buffer[] {
  const body = serialize(message);
  /* c8 ignore next -- a 4 GiB message is beyond what V8 serializes */
  if (body.length > MAX_FRAME) throw new RangeError(`gons/reexec: message of ${body.length} bytes is too large`);
  const header = Buffer.allocUnsafe(4);
  header.writeUInt32BE(body.length);
  return [header, body];
}

/** Writes a frame; resolves once it has been handed to the kernel. */
export function writeFrame(stream: Duplex, frame: Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.cork();
    stream.write(frame[0]);
    stream.write(frame[1], (err) => (err ? reject(err) : resolve()));
    stream.uncork();
  });
}

/** Reassembles frames from a byte stream; concatenates each message's chunks only once. */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** Adds bytes; returns the messages they complete. */
  push(chunk: Buffer): unknown[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const messages: unknown[] = [];
    while (this.buffered >= 4) {
      const head = this.chunks[0].length >= 4 ? this.chunks[0] : this.flatten();
      const size = head.readUInt32BE(0);
      if (this.buffered < 4 + size) break;
      const all = this.flatten();
      messages.push(deserialize(all.subarray(4, 4 + size)));
      const rest = all.subarray(4 + size);
      this.chunks = rest.length ? [rest] : [];
      this.buffered = rest.length;
    }
    return messages;
  }

  private flatten(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    return this.chunks[0];
  }
}
