/** The channel's framing, byte by byte, and a child that writes whatever it likes to it. */
import { PassThrough } from 'node:stream';
import t from 'tap';
import { DEFAULT_MAX_MESSAGE_BYTES, FrameReader, checkMaxMessageBytes, encodeFrame, writeFrame } from '../reexec/channel';
import { checkAction, openNamespaceWorker, runReexecAction } from '../reexec/index';
import { asReply } from '../reexec/protocol';
import { readdirSync } from 'node:fs';
import { eventually, fixturePath, gone } from './fixtures/helpers';
import { settledChildren } from './fixtures/hygiene';
import { LONG } from './fixtures/waits';
import { hostileFrames } from './fixtures/hostile';
import './fixtures/actions';

/** Everything a stream has buffered: one read() may return only part of it (Node 26 hands out the chunks as written). */
function readAll(stream: PassThrough): Buffer {
  const chunks: Buffer[] = [];
  for (let c: Buffer | null; (c = stream.read() as Buffer | null) !== null;) chunks.push(c);
  return Buffer.concat(chunks);
}

void checkAction().then(() => {
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
    t.same(new FrameReader().push(readAll(ok)), ['x']);
    const broken = new PassThrough();
    broken.destroy();
    await t.rejects(writeFrame(broken, encodeFrame('x')));
  });

  t.test('the reader refuses an oversized frame at its header and bad bytes, then stays broken', async (t) => {
    const reader = new FrameReader(10);
    t.throws(() => reader.push(Buffer.from([0, 0, 0, 11])), { code: 'ERR_GONS_PROTOCOL', message: /11 bytes exceeds maxMessageBytes \(10\)/ });
    t.same(reader.push(Buffer.concat(encodeFrame('ok'))), [], 'nothing more is read');
    t.throws(() => new FrameReader().push(hostileFrames['undecodable bytes'](1)), { code: 'ERR_GONS_PROTOCOL', message: /undecodable frame/ });
    t.equal(checkMaxMessageBytes('x', undefined), DEFAULT_MAX_MESSAGE_BYTES);
    t.equal(DEFAULT_MAX_MESSAGE_BYTES, 268435456);
    for (const bad of [0, -1, 1.5, '1', 2 ** 32]) t.throws(() => checkMaxMessageBytes('x', bad), { code: 'ERR_OUT_OF_RANGE' }, String(bad));
  });

  t.test('asReply accepts what a child sends and nothing else', async (t) => {
    t.ok(asReply({ id: 1, result: undefined }));
    t.ok(asReply({ id: 1, error: { name: 'Error', message: 'm', stack: 's', code: 'E', errno: -2, syscall: 'open', path: '/x' } }));
    t.ok(asReply({ id: 1, error: { name: 'NamespaceSwitchError', message: 'm', envVar: 'gons_net', path: '/', syscall: 'setns', errno: -1 } }));
    t.notOk(asReply({ id: 1, error: { name: 'Error', message: 'm', extra: 1 } }), 'unknown error field');
    t.notOk(asReply({ id: 1, error: { name: 'NamespaceSwitchError', message: 'm', envVar: 1, path: '/', syscall: 'setns', errno: -1 } }), 'a numeric envVar');
    t.notOk(asReply({ id: 1, switchError: { message: 'm', envVar: 'gons_net', path: '/', syscall: 'setns', errno: 1 } }), 'no such reply kind');
    t.notOk(asReply({ id: 1, other: 1 }));
    t.notOk(asReply(Object.assign(Object.create(null), { id: 1, result: 1 })), 'not a plain object');
  });

  t.test('a child that writes malformed frames: the one-shot call rejects with ERR_GONS_PROTOCOL, the child is killed', async (t) => {
    // No timeout: a cold call may take long on a loaded machine; without the fix a huge header hangs (tap's timeout)
    // and a bad frame throws in the parent. Four at a time.
    const kinds = Object.keys(hostileFrames).filter((k) => k !== 'duplicate id');
    for (let i = 0; i < kinds.length; i += 4) {
      await Promise.all(kinds.slice(i, i + 4).map(async (kind) => {
        const err = await runReexecAction('hostile', { param: { kind, id: 1 } }).catch((e) => e);
        t.match(err, { name: 'ReexecError', code: 'ERR_GONS_PROTOCOL', action: 'hostile' }, kind);
      }));
    }
    t.equal(await runReexecAction('action'), 'done', 'the next call works');
  });

  t.test('a duplicate reply after the result: the call keeps the first, the child is killed', async (t) => {
    t.equal(await runReexecAction('hostile', { param: { kind: 'duplicate id', id: 1 } }), 'forged');
  });

  t.test('a worker that writes malformed frames: its calls reject with ERR_GONS_PROTOCOL, it is killed, others work', async (t) => {
    // One of each family; the one-shot test above covers every kind.
    const kinds = ['undecodable bytes', 'null', 'a huge header', 'unknown id', 'error with a non-string message', 'duplicate id'];
    await Promise.all(kinds.map(async (kind) => {
      const worker = await openNamespaceWorker();
      const exited = new Promise((resolve) => worker.once('exit', (code, signal) => resolve(signal)));
      const bystander = worker.run('delayed-echo', { value: 1, ms: 600000 });
      // The ready call was id 1, the bystander is 2: the hostile call is 3.
      const hostile = worker.run('hostile', { kind, id: 3 });
      if (kind === 'duplicate id') {
        t.equal(await hostile, 'forged', 'the first reply counts');
      } else {
        await t.rejects(hostile, { code: 'ERR_GONS_PROTOCOL' }, kind);
      }
      await t.rejects(bystander, { code: 'ERR_GONS_PROTOCOL' }, `${kind}: a call in flight`);
      t.equal(await exited, 'SIGKILL', `${kind}: killed`);
      await gone(worker.pid, 30000);
      await t.rejects(worker.run('action'), { code: 'ERR_GONS_PROTOCOL' }, `${kind}: later calls`);
    }));
    const healthy = await openNamespaceWorker();
    t.equal(await healthy.run('action'), 'done', 'a new worker works');
    await healthy.close();
  });

  t.test('a forged answer to a worker\'s ready request fails its start, and nothing it sent stays open', async (t) => {
    const before = readdirSync('/proc/self/fd').length;
    for (const forge of ['string', 'handle']) {
      await t.rejects(openNamespaceWorker({ entry: fixturePath('forged-ready.ts'), env: { FORGE: forge } }), {
        name: 'ReexecError', code: 'ERR_GONS_PROTOCOL', message: /a ready reply that is not a pid/,
      }, forge);
    }
    t.same(await settledChildren(LONG), [], 'both children are gone');
    await eventually(() => {
      if (readdirSync('/proc/self/fd').length > before) throw new Error('fds left open');
    }, LONG);
  });

  t.test('a late reply of a timed-out worker call is dropped; the worker keeps working', async (t) => {
    const worker = await openNamespaceWorker();
    t.teardown(() => worker.close());
    await t.rejects(worker.run('delayed-echo', { value: 1, ms: 200 }, { timeout: 1 }), { code: 'ERR_GONS_TIMEOUT' });
    t.equal(await worker.run('delayed-echo', { value: 2, ms: 400 }), 2);
  });

  t.test('maxMessageBytes bounds a reply (the default 64 MiB round trip is in reexec.test.ts)', async (t) => {
    await t.rejects(runReexecAction('echo', { param: Buffer.alloc(2 << 20), maxMessageBytes: 1 << 20 }), {
      code: 'ERR_GONS_PROTOCOL', message: /exceeds maxMessageBytes \(1048576\)/,
    });
    const worker = await openNamespaceWorker({ maxMessageBytes: 1 << 20 });
    await t.rejects(worker.run('echo', Buffer.alloc(2 << 20)), { code: 'ERR_GONS_PROTOCOL' });
    await worker.close();
    await t.rejects(runReexecAction('action', { maxMessageBytes: 0 }), { code: 'ERR_OUT_OF_RANGE' });
    await t.rejects(openNamespaceWorker({ maxMessageBytes: -1 }), { code: 'ERR_OUT_OF_RANGE' });
  });
});
