/** The channel's framing, byte by byte. */
import { PassThrough } from 'node:stream';
import t from 'tap';
import { FrameReader, encodeFrame, writeFrame } from '../reexec/channel';

t.test('frames survive any chunking', async (t) => {
  const messages = [{ a: 1 }, 'two', new Map([[3, 3n]]), undefined, Buffer.alloc(70000, 7)];
  const bytes = Buffer.concat(messages.flatMap((m) => encodeFrame(m)));
  for (const size of [1, 3, 4, 5, 4096, bytes.length]) {
    const reader = new FrameReader();
    const got: unknown[] = [];
    for (let i = 0; i < bytes.length; i += size) got.push(...reader.push(bytes.subarray(i, i + size)));
    t.same(got, messages, `chunks of ${size} bytes`);
  }
});

t.test('uncloneable values throw when encoded', async (t) => {
  t.throws(() => encodeFrame({ f: () => 1 }), { message: /could not be cloned/ });
});

t.test('writeFrame resolves once written and rejects on a broken stream', async (t) => {
  const ok = new PassThrough();
  await writeFrame(ok, encodeFrame('x'));
  t.same(new FrameReader().push(ok.read()), ['x']);
  const broken = new PassThrough();
  broken.destroy();
  await t.rejects(writeFrame(broken, encodeFrame('x')));
});
