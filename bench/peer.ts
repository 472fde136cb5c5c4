/**
 * The bench's peer: plain Node, no gons. Started by bench.ts with a socket
 * pair on fd 3 (as gons's own channel), it answers every message with the
 * same value: frames of a 32-bit big-endian length and a v8.serialize body,
 * each frame's chunks concatenated once. What a hand-written Node-to-Node
 * echo costs, for gons's warm calls and 64 MiB round trips to be measured
 * against.
 */
import { Socket } from 'node:net';
import { deserialize, serialize } from 'node:v8';

/** Writes `message` as one frame. */
export function send(sock: Socket, message: unknown): void {
  const body = serialize(message);
  const header = Buffer.allocUnsafe(4);
  header.writeUInt32BE(body.length);
  sock.cork();
  sock.write(header);
  sock.write(body);
  sock.uncork();
}

/** Calls `onMessage` for each complete frame read from `sock`. */
export function receive(sock: Socket, onMessage: (message: unknown) => void): void {
  let chunks: Buffer[] = [];
  let buffered = 0;
  sock.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    buffered += chunk.length;
    while (buffered >= 4) {
      if (chunks[0].length < 4) chunks = [Buffer.concat(chunks, buffered)];
      const size = chunks[0].readUInt32BE(0);
      if (buffered < 4 + size) break;
      const all = chunks.length > 1 ? Buffer.concat(chunks, buffered) : chunks[0];
      onMessage(deserialize(all.subarray(4, 4 + size)));
      const rest = all.subarray(4 + size);
      chunks = rest.length ? [rest] : [];
      buffered = rest.length;
    }
  });
}

if (require.main === module) {
  const sock = new Socket({ fd: 3, readable: true, writable: true });
  receive(sock, (message) => send(sock, message));
  sock.on('end', () => sock.end());
}
