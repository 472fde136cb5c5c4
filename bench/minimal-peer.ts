/**
 * The bench's minimal peer: the least a Node-to-Node call over a socket pair
 * can cost. Started by bench.ts with a socket pair on fd 3, it reads frames of
 * a 32-bit big-endian length and a v8.serialize body, decodes each value,
 * encodes it again and writes the frame back in one write: no ids, no pending
 * map, no options, no deadlines. The parent's side (MinimalPeer in bench.ts)
 * writes one frame per call and resolves the oldest waiting call with each
 * reply, in order. gons's warm call is measured against it (issue: ≤ 1.3×).
 */
import { Socket } from 'node:net';
import { deserialize, serialize } from 'node:v8';

/** One frame, header and body in one buffer, for one write. */
export function frame(value: unknown): Buffer {
  const body = serialize(value);
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
}

/** Calls `onValue` with each decoded frame read from `sock`; a frame read in one chunk is decoded in place. */
export function frames(sock: Socket, onValue: (value: unknown) => void): void {
  let pending: Buffer | null = null;
  sock.on('data', (chunk: Buffer) => {
    let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
    pending = null;
    while (buf.length >= 4) {
      const end = 4 + buf.readUInt32BE(0);
      if (buf.length < end) break;
      onValue(deserialize(buf.subarray(4, end)));
      buf = buf.subarray(end);
    }
    if (buf.length) pending = buf;
  });
}

if (require.main === module) {
  const sock = new Socket({ fd: 3, readable: true, writable: true });
  frames(sock, (value) => sock.write(frame(value)));
  sock.on('end', () => sock.end());
}
