/**
 * The pool's scheduling (reexec/pool.ts), without root: its workers are real `NamespaceWorker`s around real
 * children, but the children are fake (fixtures/fake-child.ts: a plain Node script speaking the reply protocol, no
 * hook, no namespaces), started by an opener given to the pool through `internal.ts`. Capacity, FIFO, reuse by key,
 * LRU eviction, idle timeout, crashes, failed starts, deadlines and close() are the pool's alone.
 */
import { once } from 'node:events';
import t, { type Test } from 'tap';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../reexec/channel';
import { AbortError } from '../reexec/errors';
import { type NamespacePool, type NamespacePoolOptions, type PoolWhere, type PoolWorkerExit, register } from '../reexec/index';
import { type WorkerOpener, createPoolWith, startWorker } from '../reexec/internal';
import type { Plan } from '../reexec/options';
import { eventually, fixturePath, plainEnv } from './fixtures/helpers';
import { openFds, settledChildren, settledFds } from './fixtures/hygiene';

// The fake child's actions: the pool checks that a call's action is registered; the fake child answers them itself.
for (const name of ['pid', 'echo', 'held', 'never', 'crash']) register(name, () => {});

/**
 * Where a call for `name` runs: our own mount namespace (shared, so left out of the key) then a path that
 * resolves only inside it, which counts by its text. Each name is its own key; nothing is stat'd but our own.
 */
function at(name: string): PoolWhere {
  return { namespaces: [{ type: 'mnt', path: '/proc/self/ns/mnt' }, { type: 'net', path: `/fake/${name}` }] };
}

/** The name `at()` made a `where` of. */
const nameOf = (where: PoolWhere) => ('namespaces' in where ? where.namespaces[1].path.slice('/fake/'.length) : '?');

interface Fake {
  pool: NamespacePool;
  /** The names the opener was asked to start, in order. */
  opened: string[];
  exits: PoolWorkerExit[];
  /** Resolves once `n` workers have exited in all. */
  exited(n: number): Promise<PoolWorkerExit[]>;
  /** Closes the pool and checks nothing is left: no process, no fd. */
  clean(): Promise<void>;
}

/**
 * A pool whose opener starts fake children; `fail(n, name)` may make the n-th start (from 1) reject instead. A
 * start aborted while the child came up ends it, as openNamespaceWorker does.
 */
function fakePool(t: Test, options: NamespacePoolOptions, fail?: (n: number, name: string) => Error | undefined | Promise<Error>): Fake {
  const fds = openFds();
  const opened: string[] = [];
  const open: WorkerOpener = async (where, signal) => {
    const n = opened.push(nameOf(where));
    const err = await fail?.(n, nameOf(where));
    if (err) throw err;
    const plan: Plan = { args: [fixturePath('fake-child.ts')], env: plainEnv(), output: 'ignore', maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES, release: () => {} };
    const worker = await startWorker(plan);
    if (signal.aborted) {
      await worker.kill();
      throw new AbortError();
    }
    return worker;
  };
  const pool = createPoolWith(options, open);
  t.teardown(() => pool.close());
  const exits: PoolWorkerExit[] = [];
  pool.on('workerExit', (e: PoolWorkerExit) => exits.push(e));
  return {
    pool, opened, exits,
    exited: (n) => eventually(() => {
      if (exits.length < n) throw new Error(`${exits.length} of ${n} workers exited`);
      return exits;
    }, 30_000),
    clean: async () => {
      await pool.close();
      t.equal(pool.size, 0, 'no worker is left in the pool');
      t.same(await settledChildren(), [], 'no process is left');
      t.equal(await settledFds(fds), fds, 'no fd is left');
    },
  };
}

/** The pid of the worker that runs calls for `name` now (starting one if need be). */
const pidAt = (pool: NamespacePool, name: string) => pool.run<number>(at(name), 'pid');

/** Lets the pool's microtasks run (its pump, a dispatch to a ready worker): an event-loop turn, not a delay. */
const turn = () => new Promise((resolve) => setImmediate(resolve));

/** Answers the calls the fake child `pid` holds (its 'held' calls). */
const release = (pid: number) => process.kill(pid, 'SIGUSR1');

t.test('calls beyond capacity wait in FIFO order: the first that must wait holds those behind it', async (t) => {
  const f = fakePool(t, { max: 1 });
  const pidA = await pidAt(f.pool, 'a');
  const held = f.pool.run(at('a'), 'held');
  const order: string[] = [];
  const b = f.pool.run(at('b'), 'echo', 'b').then((v) => order.push(v as string));
  // a's worker is up and could take this call at once, but b came first and waits for a place.
  const a2 = f.pool.run(at('a'), 'echo', 'a2').then((v) => order.push(v as string));
  await turn();
  t.equal(f.pool.queued, 2, 'both wait');
  t.equal(f.pool.size, 1, 'at capacity');
  release(pidA);
  t.equal(await held, 'released 3');
  await Promise.all([b, a2]);
  t.same(order, ['b', 'a2'], 'in the order they came');
  t.same(f.opened, ['a', 'b', 'a'], 'a new worker for a, after b\'s');
  t.same(f.exits.slice(0, 2).map((e) => e.reason), ['evicted', 'evicted']);
  await f.clean();
});

t.test('a worker is reused for calls with the same key, concurrent or not', async (t) => {
  const f = fakePool(t, { max: 2 });
  const first = await pidAt(f.pool, 'a');
  const again = await Promise.all([pidAt(f.pool, 'a'), pidAt(f.pool, 'a')]);
  t.same(again, [first, first], 'the same worker');
  t.not(await pidAt(f.pool, 'b'), first, 'another key, another worker');
  t.same(f.opened, ['a', 'b']);
  await f.clean();
});

t.test('at capacity the least recently used idle worker is evicted', async (t) => {
  const f = fakePool(t, { max: 2 });
  const pidA = await pidAt(f.pool, 'a');
  const pidB = await pidAt(f.pool, 'b');
  t.equal(await pidAt(f.pool, 'a'), pidA, 'a again: b is now the least recently used');
  await pidAt(f.pool, 'c');
  const [exit] = await f.exited(1);
  t.match(exit, { pid: pidB, key: 'net@/fake/b', reason: 'evicted', code: 0, signal: null }, 'b was closed, not killed');
  t.equal(await pidAt(f.pool, 'a'), pidA, 'a stayed');
  t.equal(f.pool.size, 2);
  await f.clean();
});

t.test('an idle worker ends after idleTimeout', async (t) => {
  const f = fakePool(t, { idleTimeout: 50 });
  const pid = await pidAt(f.pool, 'a');
  // An idle worker and its timer do not keep this process alive: a bound that does, for the wait.
  const bound = setTimeout(() => f.pool.emit('error', new Error('no idle exit within 30 s')), 30_000);
  const [exit] = (await once(f.pool, 'workerExit')) as PoolWorkerExit[];
  clearTimeout(bound);
  t.match(exit, { pid, reason: 'idle', code: 0, signal: null });
  t.equal(f.pool.size, 0);
  await f.clean();
});

t.test('a crashed worker fails only its calls and is replaced', async (t) => {
  const f = fakePool(t, { max: 2 });
  const pidA = await pidAt(f.pool, 'a');
  const pidB = await pidAt(f.pool, 'b');
  const mine = f.pool.run(at('a'), 'held');
  const other = f.pool.run(at('b'), 'held');
  const crash = f.pool.run(at('a'), 'crash');
  for (const call of [mine, crash]) await t.rejects(call, { code: 'ERR_GONS_CHILD_DIED', exitCode: 3 });
  const [exit] = await f.exited(1);
  t.match(exit, { pid: pidA, reason: 'crashed', code: 3, signal: null });
  release(pidB);
  t.equal(await other, 'released 3', 'the other worker\'s call is not concerned');
  const again = await pidAt(f.pool, 'a');
  t.not(again, pidA, 'a new worker for the next call');
  t.same(f.opened, ['a', 'b', 'a']);
  await f.clean();
});

t.test('a failed start rejects its opener\'s call; the others with its key start their own, in order', async (t) => {
  const boom = new Error('no such namespace');
  const f = fakePool(t, { max: 1 }, (n) => (n === 1 ? boom : undefined));
  const order: string[] = [];
  const calls = ['a1', 'a2', 'a3'].map((v) => f.pool.run(at('a'), 'echo', v).then((r) => void order.push(r as string)));
  const b = f.pool.run(at('b'), 'echo', 'b').then((r) => void order.push(r as string));
  await t.rejects(calls[0], boom, 'the call the start was for');
  await Promise.all([...calls.slice(1), b]);
  t.same(order, ['a2', 'a3', 'b'], 'the others kept their places at the head of the queue');
  t.same(f.opened, ['a', 'a', 'b'], 'one more start for a, then b\'s');
  await f.clean();
});

t.test('a start that fails after close: the other calls for its key reject ERR_GONS_POOL_CLOSED', async (t) => {
  let failStart!: (err: Error) => void;
  const f = fakePool(t, {}, () => new Promise<Error>((resolve) => (failStart = resolve)));
  const boom = new Error('no such namespace');
  const [first, second] = ['a1', 'a2'].map((v) => f.pool.run(at('a'), 'echo', v));
  await turn();
  t.equal(f.pool.size, 1, 'its start is under way');
  const closing = f.pool.close();
  failStart(boom);
  await t.rejects(first, boom);
  await t.rejects(second, { code: 'ERR_GONS_POOL_CLOSED', action: 'echo' }, 'not requeued into a closed pool');
  await closing;
  t.same(f.opened, ['a']);
  await f.clean();
});

t.test('a start nobody waits for any more is given up', async (t) => {
  const f = fakePool(t, {});
  const starts: number[] = [];
  f.pool.on('workerStart', ({ pid }: { pid: number }) => starts.push(pid));
  await t.rejects(f.pool.run(at('a'), 'pid', undefined, { timeout: 1 }), { code: 'ERR_GONS_TIMEOUT' });
  await eventually(() => {
    if (f.pool.size !== 0) throw new Error('the start is still counted');
  }, 30_000);
  t.same(starts, [], 'it never became a worker of the pool');
  t.same(f.opened, ['a']);
  await f.clean();
});

t.test('a timeout or an abort while queued: the call leaves the queue, no worker is started for it', async (t) => {
  const f = fakePool(t, { max: 1 });
  const pidA = await pidAt(f.pool, 'a');
  const held = f.pool.run(at('a'), 'held');
  const timedOut = f.pool.run(at('b'), 'pid', undefined, { timeout: 50 });
  const ac = new AbortController();
  const aborted = f.pool.run(at('c'), 'pid', undefined, { signal: ac.signal });
  await turn();
  t.equal(f.pool.queued, 2);
  await t.rejects(timedOut, { code: 'ERR_GONS_TIMEOUT', message: /"pid" timed out after 50 ms/ });
  ac.abort();
  await t.rejects(aborted, { name: 'AbortError' });
  t.equal(f.pool.queued, 0, 'both left the queue');
  release(pidA);
  await held;
  t.same(f.opened, ['a'], 'no start for them');
  t.same(f.exits, [], 'a\'s worker stays: it has nothing abandoned');
  await f.clean();
});

t.test('a call given up after it was sent: its worker is killed once idle (abandoned)', async (t) => {
  const f = fakePool(t, { max: 2 });
  const pidA = await pidAt(f.pool, 'a');
  const held = f.pool.run(at('a'), 'held');
  await t.rejects(f.pool.run(at('a'), 'never', null, { timeout: 50 }), { code: 'ERR_GONS_TIMEOUT' });
  t.equal(f.pool.size, 1);
  t.same(f.exits, [], 'not while it has another call');
  t.equal(await pidAt(f.pool, 'a'), pidA, 'and it still serves calls meanwhile');
  release(pidA);
  t.equal(await held, 'released 3');
  const [exit] = await f.exited(1);
  t.match(exit, { pid: pidA, reason: 'abandoned', code: null, signal: 'SIGKILL' });
  const ac = new AbortController();
  const pidB = await pidAt(f.pool, 'b');
  const aborted = f.pool.run(at('b'), 'never', null, { signal: ac.signal });
  await turn(); // sent to b's worker
  ac.abort();
  await t.rejects(aborted, { name: 'AbortError' });
  const [, second] = await f.exited(2);
  t.match(second, { pid: pidB, reason: 'abandoned', signal: 'SIGKILL' }, 'an abort alike');
  await f.clean();
});

t.test('a given-up call whose late reply came before its worker was idle leaves the worker clean', async (t) => {
  const f = fakePool(t, {});
  const pid = await pidAt(f.pool, 'a');
  // Held first, so that the fake child answers it before the other: its late reply comes first.
  const givenUp = f.pool.run(at('a'), 'held', null, { timeout: 50 });
  const held = f.pool.run(at('a'), 'held');
  await t.rejects(givenUp, { code: 'ERR_GONS_TIMEOUT' });
  release(pid);
  t.equal(await held, 'released 4');
  t.equal(await pidAt(f.pool, 'a'), pid, 'the same worker serves the next call');
  t.same(f.exits, [], 'it was not killed');
  await f.clean();
  t.match(f.exits, [{ pid, reason: 'closed', code: 0 }]);
});

t.test('close: queued calls reject, calls in workers finish, every worker ends; idempotent', async (t) => {
  const f = fakePool(t, { max: 2 });
  const pidA = await pidAt(f.pool, 'a');
  const pidB = await pidAt(f.pool, 'b');
  const heldA = f.pool.run(at('a'), 'held');
  const heldB = f.pool.run(at('b'), 'held');
  const queued = f.pool.run(at('c'), 'echo', 1);
  await turn();
  t.equal(f.pool.queued, 1, 'c waits: no worker is idle');
  const closing = f.pool.close();
  t.equal(f.pool.close(), closing, 'a second close is the same close');
  await t.rejects(queued, { code: 'ERR_GONS_POOL_CLOSED', action: 'echo', message: /the pool was closed/ });
  await t.rejects(f.pool.run(at('a'), 'echo', 2), { code: 'ERR_GONS_POOL_CLOSED', message: /the pool is closed/ });
  t.equal(f.pool.size, 2, 'busy workers stay until their calls are done');
  release(pidB);
  t.equal(await heldB, 'released 3', 'a call in flight finished');
  const [first] = await f.exited(1);
  t.match(first, { pid: pidB, reason: 'closed', code: 0, signal: null });
  release(pidA);
  t.equal(await heldA, 'released 3');
  await closing;
  t.match(f.exits[1], { pid: pidA, reason: 'closed', code: 0 });
  t.equal(f.pool.size, 0, 'close resolved once all had exited');
  t.same(f.opened, ['a', 'b'], 'no start for the queued call');
  await f.clean();
});

t.test('close ends an idle worker at once', async (t) => {
  const f = fakePool(t, {});
  const pid = await pidAt(f.pool, 'a');
  await f.pool.close();
  t.match(f.exits, [{ pid, reason: 'closed', code: 0 }]);
  await f.clean();
});
