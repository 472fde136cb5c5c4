/**
 * The lifecycle of one child (reexec/lifecycle.ts), without root: a `Child` started from a hand-made plan whose
 * program is a plain Node script that speaks the reply protocol (fixtures/fake-child.ts) — no hook, no namespaces.
 */
import t, { type Test } from 'tap';
import { gonsError } from '../lib/errors';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../reexec/channel';
import { Child } from '../reexec/lifecycle';
import type { Plan } from '../reexec/options';
import { encodeRequest } from '../reexec/protocol';
import { eventually, fixturePath, plainEnv } from './fixtures/helpers';
import { openFds, settledChildren, settledFds } from './fixtures/hygiene';

/** Starts the fake child and waits for its ready reply (its pid); `clean` then checks it left nothing behind. */
async function start(t: Test): Promise<{ child: Child; clean(): Promise<void> }> {
  const fds = openFds();
  let released = 0;
  const plan: Plan = {
    args: [fixturePath('fake-child.ts')], env: plainEnv(), output: 'ignore', maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
    release: () => void released++,
  };
  const child = await Child.start(plan, (pid) => `fake child ${pid}`);
  t.teardown(() => (child.running ? child.kill() : undefined));
  t.equal(released, 1, 'the plan is released once spawned');
  t.equal(await child.ready(), child.pid, 'ready resolves to the child\'s pid');
  return {
    child,
    clean: async () => {
      await child.ended;
      t.same(await settledChildren(), [], 'no process is left');
      t.equal(await settledFds(fds), fds, 'no fd is left');
    },
  };
}

t.test('a call resolves with the reply; close lets the child exit on its own', async (t) => {
  const { child, clean } = await start(t);
  t.same(await child.call('echo', { a: [1n, new Map([[1, 'x']])] }), { a: [1n, new Map([[1, 'x']])] });
  await child.close();
  t.equal(child.running, false, 'close resolves once the child has ended');
  t.same(await child.ended, { code: 0, signal: null }, 'it exited by itself once its channel closed');
  await clean();
});

t.test('once: sends one request, closes, and resolves with its reply', async (t) => {
  const { child, clean } = await start(t);
  t.equal(await child.once('echo', encodeRequest('test', 2, 'echo', 'hi')), 'hi');
  t.equal(child.closed, true, 'the child is closed after its one call');
  t.same(await child.ended, { code: 0, signal: null });
  await clean();
});

t.test('a timeout rejects with ERR_GONS_TIMEOUT; once terminates the child and says how it ended', async (t) => {
  const { child, clean } = await start(t);
  const err = await child.once('never', encodeRequest('test', 2, 'never', null), { timeout: 50 }).catch((e: unknown) => e);
  t.match(err, { code: 'ERR_GONS_TIMEOUT', action: 'never', message: /"never" timed out after 50 ms/ });
  t.equal(child.running, false, 'once settles after the child is gone');
  t.match(err, { exitCode: null, signal: 'SIGTERM' }, 'terminated: SIGTERM');
  t.match(err, { stderr: new RegExp(`fake child ${child.pid} up`) }, 'with the tail of its stderr');
  await clean();
});

t.test('an abort rejects with an AbortError; once attaches how the child ended', async (t) => {
  const { child, clean } = await start(t);
  const ac = new AbortController();
  const call = child.once('never', encodeRequest('test', 2, 'never', null), { signal: ac.signal });
  ac.abort();
  const err = await call.catch((e: unknown) => e);
  t.match(err, { name: 'AbortError', signal: 'SIGTERM', exitCode: null });
  await clean();
});

t.test('a timeout of a plain call settles only that call: the child serves the next', async (t) => {
  const { child, clean } = await start(t);
  const err = await child.call('never', null, { timeout: 50 }).catch((e: unknown) => e);
  t.match(err, { code: 'ERR_GONS_TIMEOUT' });
  t.match(err, { signal: null, stderr: '' }, 'only once() attaches how the child ended');
  t.equal(child.running, true);
  t.equal(await child.call('echo', 3), 3);
  await child.kill();
  await clean();
});

t.test('close takes no more requests and waits for the calls in flight', async (t) => {
  const { child, clean } = await start(t);
  const order: string[] = [];
  const held = child.call('held', null).then((v) => (order.push('call'), v));
  const closing = child.close().then(() => void order.push('close'));
  t.equal(child.closed, true);
  t.match(await child.call('echo', 1).catch((e: unknown) => e), { code: 'ERR_GONS_WORKER_CLOSED', action: 'echo', message: /fake child \d+ is closed/ });
  t.match(await child.send('echo', encodeRequest('test', 9, 'echo', 1)).catch((e: unknown) => e), { code: 'ERR_GONS_WORKER_CLOSED' });
  t.same(order, [], 'close has not resolved while a call is in flight');
  process.kill(child.pid, 'SIGUSR1'); // the fake child answers the calls it holds
  t.equal(await held, 'released 2', 'the call in flight got its answer: the child was not killed');
  await closing;
  t.same(order, ['call', 'close'], 'close resolved after the call settled');
  t.same(await child.ended, { code: 0, signal: null });
  await clean();
});

t.test('kill rejects the calls in flight with ERR_GONS_CHILD_DIED', async (t) => {
  const { child, clean } = await start(t);
  const calls = [child.call('never', null), child.call('held', null)];
  await child.kill();
  t.equal(child.running, false, 'kill resolves once the child is gone');
  t.equal(child.ending, true);
  for (const err of await Promise.all(calls.map((c) => c.catch((e: unknown) => e)))) {
    t.match(err, { code: 'ERR_GONS_CHILD_DIED', signal: 'SIGKILL', exitCode: null, message: /fake child \d+ was killed by SIGKILL/ });
  }
  t.match(await child.call('echo', 1).catch((e: unknown) => e), { code: 'ERR_GONS_CHILD_DIED', action: 'echo' }, 'and every later call');
  await clean();
});

t.test('close is idempotent: one promise, one end', async (t) => {
  const { child, clean } = await start(t);
  t.equal(child.ending, false);
  const first = child.close();
  t.equal(child.close(), first, 'a second close is the same close');
  t.equal(child.ending, true);
  await first;
  t.equal(child.close(), first, 'and after the end too');
  t.same(await child.ended, { code: 0, signal: null });
  await clean();
});

t.test('fail: every call in flight and later rejects with the owner\'s error', async (t) => {
  const { child, clean } = await start(t);
  const call = child.call('never', null);
  child.fail(gonsError('ERR_GONS_TARGET_EXITED', 'gone for a reason', { action: '' }));
  t.match(await call.catch((e: unknown) => e), { code: 'ERR_GONS_TARGET_EXITED', action: 'never', message: 'gone for a reason' });
  t.match(await child.call('echo', 1).catch((e: unknown) => e), { code: 'ERR_GONS_TARGET_EXITED', action: 'echo' });
  await child.kill();
  await clean();
});

t.test('ref: the child keeps this process alive while wanted, or while a call or a close is in flight', async (t) => {
  const { child, clean } = await start(t);
  // The process handle of Node's ChildProcess: what keeps the event loop alive while the child runs.
  const handle = (child.process.child as unknown as { _handle: { hasRef(): boolean } })._handle;
  t.equal(handle.hasRef(), true, 'refed by default');
  child.ref(false);
  t.equal(handle.hasRef(), false, 'unrefed while idle and not wanted');
  const held = child.call('held', null);
  t.equal(handle.hasRef(), true, 'a call in flight refs it');
  process.kill(child.pid, 'SIGUSR1');
  await held;
  await eventually(() => {
    if (handle.hasRef()) throw new Error('still refed after the call settled');
  }).catch(() => {});
  t.equal(handle.hasRef(), false, 'unrefed again once the call settled');
  child.ref(true);
  t.equal(handle.hasRef(), true, 'refed again when wanted');
  child.ref(false);
  const closing = child.close();
  t.equal(handle.hasRef(), true, 'a close in flight refs it');
  await closing;
  await clean();
});
