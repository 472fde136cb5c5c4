/** createNamespacePool: the queue, eviction, crashes, timeouts, close() and option checks. */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { checkAction, createNamespacePool } from '../reexec/index';
import { addon } from '../lib/native';
import { whereKey } from '../reexec/pool';
import { createNamespaces } from '../testing/index';
import { Lines } from './fixtures/attack/target';
import { cgroupKeyOf, eventually, fixturePath, needsRoot } from './fixtures/helpers';
import { entry, gate, holders, type Where, watchedPool, workerProcesses } from './fixtures/pool';

// Worker starts take seconds each on a loaded machine, and these tests start dozens.
t.setTimeout(1_200_000);

void checkAction().then(() => {
  t.test('a crashed worker fails only its calls and is replaced for the next one', { skip: needsRoot }, async (t) => {
    const [a, b] = await holders(t, 2, 'crash');
    const { pool, w } = watchedPool(t);
    const first = await pool.run<number>({ namespaces: a.namespaces() }, 'pid');
    const longCall = pool.run({ namespaces: a.namespaces() }, 'delayed-echo', { value: 1, ms: 600000 });
    const crash = pool.run({ namespaces: a.namespaces() }, 'kill9');
    const other = pool.run<Where>({ namespaces: b.namespaces() }, 'where');
    for (const p of [longCall, crash]) await t.rejects(p, { name: 'ReexecError', code: 'ERR_GONS_CHILD_DIED', signal: 'SIGKILL' });
    t.equal((await other).hostname, 'crash-1', 'the other worker is not concerned');
    const [exit] = await w.exits(1);
    t.match(exit, { pid: first, reason: 'crashed', signal: 'SIGKILL' });
    const again = await pool.run<number>({ namespaces: a.namespaces() }, 'pid');
    t.not(again, first, 'a new worker for the next call');
  });

  t.test('at capacity the least recently used idle worker makes room', { skip: needsRoot }, async (t) => {
    const [a, b, c] = await holders(t, 3, 'lru');
    const { pool, w } = watchedPool(t, { max: 2 });
    const pidA = await pool.run<number>({ namespaces: a.namespaces() }, 'pid');
    const pidB = await pool.run<number>({ namespaces: b.namespaces() }, 'pid');
    t.equal(await pool.run<number>({ namespaces: a.namespaces() }, 'pid'), pidA, 'a again: b is now the least recently used');
    await pool.run({ namespaces: c.namespaces() }, 'pid');
    const [exit] = await w.exits(1);
    t.match(exit, { pid: pidB, reason: 'evicted' });
    t.equal(await pool.run<number>({ namespaces: a.namespaces() }, 'pid'), pidA, 'a stayed');
    t.ok(w.peak() <= 2);
  });

  t.test('calls beyond capacity wait in FIFO order; timeout and abort apply while they wait', { skip: needsRoot }, async (t) => {
    const ns = await holders(t, 5, 'fifo');
    const { pool, w } = watchedPool(t, { max: 1 });
    const g = gate(t);
    const held = pool.run({ namespaces: ns[0].namespaces() }, 'wait-for', g.file);
    const timedOut = pool.run({ namespaces: ns[1].namespaces() }, 'pid', undefined, { timeout: 300 });
    const ac = new AbortController();
    const aborted = pool.run({ namespaces: ns[2].namespaces() }, 'pid', undefined, { signal: ac.signal });
    const order: number[] = [];
    const rest = [1, 3, 4].map((i) => pool.run<Where>({ namespaces: ns[i].namespaces() }, 'where').then((r) => {
      order.push(i);
      return r.hostname;
    }));
    t.equal(pool.queued, 6, 'all queued behind the first');
    await t.rejects(timedOut, { name: 'ReexecError', code: 'ERR_GONS_TIMEOUT', action: 'pid' }, 'a timeout while queued');
    ac.abort();
    await t.rejects(aborted, { name: 'AbortError', code: 'ABORT_ERR' }, 'an abort while queued');
    t.equal(pool.queued, 3, 'they left the queue');
    g.open();
    t.equal(await held, 'opened');
    t.same(await Promise.all(rest), ['fifo-1', 'fifo-3', 'fifo-4']);
    t.same(order, [1, 3, 4], 'served in the order asked');
    t.equal(w.started.length, 4, 'no worker for the calls that left');
    t.ok(w.peak() <= 1);
  });

  t.test('a call that times out in a worker gets that worker ended once idle; the next call gets a new one', { skip: needsRoot }, async (t) => {
    const [a] = await holders(t, 1, 'abandon');
    const { pool, w } = watchedPool(t);
    const pid = await pool.run<number>({ namespaces: a.namespaces() }, 'pid');
    await t.rejects(pool.run({ namespaces: a.namespaces() }, 'delayed-echo', { value: 1, ms: 600000 }, { timeout: 500 }), { code: 'ERR_GONS_TIMEOUT' });
    const [exit] = await w.exits(1);
    t.match(exit, { pid, reason: 'abandoned', signal: 'SIGKILL' });
    const ac = new AbortController();
    const call = pool.run({ namespaces: a.namespaces() }, 'delayed-echo', { value: 1, ms: 600000 }, { signal: ac.signal });
    await eventually(() => {
      if (w.started.length < 2) throw new Error('not started yet');
    }, 60000);
    await new Promise((r) => setImmediate(r));
    ac.abort();
    await t.rejects(call, { name: 'AbortError' });
    const [, second] = await w.exits(2);
    t.match(second, { pid: w.started[1].pid, reason: 'abandoned' }, 'an abort alike');
  });

  t.test('a start nobody waits for any more is given up', async (t) => {
    const pool = createNamespacePool({ entry: fixturePath('never-checks.ts'), output: 'ignore' });
    t.teardown(() => pool.close());
    await t.rejects(pool.run({ namespaces: [] }, 'echo', 1, { timeout: 1500 }), { code: 'ERR_GONS_TIMEOUT' });
    await eventually(() => {
      if (pool.size !== 0 || workerProcesses().length !== 0) throw new Error('the starting worker is still there');
    }, 60000);
    t.pass('its child was ended');
  });

  t.test('close(): queued calls rejected, calls in workers finish, then every worker ends; await using', async (t) => {
    const pool = createNamespacePool({ entry, max: 1 });
    const g = gate(t);
    const held = pool.run({ namespaces: [] }, 'wait-for', g.file);
    await eventually(() => {
      if (pool.size !== 1 || pool.queued !== 0 || workerProcesses().length !== 1) throw new Error('not started yet');
    }, 60000);
    const starting = createNamespacePool({ entry });
    const startingCall = starting.run({ namespaces: [] }, 'echo', 'started, then closed');
    await new Promise((r) => setImmediate(r));
    const closingStarting = starting.close();
    const closing = pool.close();
    await t.rejects(pool.run({ namespaces: [] }, 'echo', 1), { name: 'ReexecError', code: 'ERR_GONS_POOL_CLOSED' }, 'refused after close()');
    t.equal(pool.close(), closing, 'idempotent');
    g.open();
    t.equal(await held, 'opened', 'the call in its worker finished');
    t.equal(await startingCall, 'started, then closed', 'so did one whose worker was starting');
    await Promise.all([closing, closingStarting]);
    t.same(workerProcesses(), [], 'no worker left');
    let pid = 0;
    {
      await using scoped = createNamespacePool({ entry });
      pid = await scoped.run<number>({ namespaces: [] }, 'pid');
    }
    t.notOk(workerProcesses().includes(pid), 'await using closed it');
  });

  t.test('queued calls get ERR_GONS_POOL_CLOSED', { skip: needsRoot }, async (t) => {
    const other = await createNamespaces(t, ['uts']);
    const pool = createNamespacePool({ entry, max: 1 });
    const g = gate(t);
    const held = pool.run({ namespaces: [] }, 'wait-for', g.file);
    const queued = pool.run({ target: { pid: other.pid, types: ['uts'] } }, 'echo', 'x');
    await new Promise((r) => setImmediate(r));
    const closing = pool.close();
    await t.rejects(queued, { name: 'ReexecError', code: 'ERR_GONS_POOL_CLOSED', action: 'echo', message: /the pool was closed/ });
    g.open();
    t.equal(await held, 'opened');
    await closing;
  });

  t.test('a start that fails after close() leaves the other calls for those namespaces rejected as closed', { skip: needsRoot }, async (t) => {
    const h = await createNamespaces(t, ['mnt']);
    // The net path resolves inside the mount namespace, where it does not exist: the child's hook fails, seconds later.
    const where = { namespaces: [{ type: '!mnt', path: h.paths.mnt }, { type: 'net', path: '/nonexistent/gons-net' }] } as const;
    const pool = createNamespacePool({ entry, output: 'ignore' });
    const first = pool.run({ namespaces: [...where.namespaces] }, 'echo', 1).catch((e: unknown) => e);
    const second = pool.run({ namespaces: [...where.namespaces] }, 'echo', 2).catch((e: unknown) => e);
    await new Promise((r) => setImmediate(r)); // both handed to the one starting worker
    const closing = pool.close();
    t.match(await first, { name: 'NamespaceSwitchError', envVar: 'gons_net' }, 'the start fails for the call it was for');
    t.match(await second, { name: 'ReexecError', code: 'ERR_GONS_POOL_CLOSED' }, 'no new start for the other: the pool is closed');
    await closing;
  });

  t.test('options and calls are checked before anything starts', async (t) => {
    const bad = (o: unknown) => () => createNamespacePool(o as never);
    t.throws(bad({ maxx: 2 }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /"maxx" \(did you mean "max"\?\)/ });
    t.throws(bad('4'), { code: 'ERR_INVALID_ARG_TYPE' });
    for (const max of [0, 1.5, '2']) t.throws(bad({ max }), { code: 'ERR_INVALID_ARG_VALUE', message: /max must be a positive integer/ });
    for (const idleTimeout of [0, -1, 2 ** 31, '5']) t.throws(bad({ idleTimeout }), { code: 'ERR_INVALID_ARG_VALUE', message: /idleTimeout/ });
    t.throws(bad({ entry: 5 }), { code: 'ERR_INVALID_ARG_TYPE', message: /entry/ });
    t.throws(bad({ entry: '/no/such/entry.js' }), { code: 'ENOENT', message: /createNamespacePool: cannot run entry/ }, 'a missing entry is refused as the pool is made');
    t.throws(bad({ env: { A: 1 } }), { code: 'ERR_INVALID_ARG_VALUE', message: /env entry "A"/ });
    t.throws(bad({ env: { 'A=B': 'x' } }), { code: 'ERR_INVALID_ARG_VALUE' });
    t.throws(bad({ env: 'A=B' }), { code: 'ERR_INVALID_ARG_TYPE' });
    t.throws(bad({ output: 'stdout' }), { code: 'ERR_INVALID_ARG_VALUE', message: /output/ });
    t.doesNotThrow(bad({ max: 2, idleTimeout: 10, entry: pathToFileURL(entry), env: { A: 'b' }, output: 'ignore' }));

    const pool = createNamespacePool({ entry });
    t.teardown(() => pool.close());
    const none = { namespaces: [] };
    const cases: Array<[unknown, string, unknown, Record<string, unknown>]> = [
      [{}, 'echo', undefined, { code: 'ERR_INVALID_ARG_VALUE', message: /where must be \{ namespaces \} or \{ target \}/ }],
      [undefined, 'echo', undefined, { code: 'ERR_INVALID_ARG_VALUE' }],
      [{ namespaces: [], target: { pid: 1 } }, 'echo', undefined, { code: 'ERR_INVALID_ARG_VALUE' }],
      [{ nameSpaces: [] }, 'echo', undefined, { code: 'ERR_INVALID_ARG_VALUE', message: /"nameSpaces" \(did you mean "namespaces"\?\)/ }],
      [{ target: { pid: 0 } }, 'echo', undefined, { code: 'ERR_INVALID_ARG_VALUE', message: /target.pid/ }],
      [{ target: { pid: 1, types: [] } }, 'echo', undefined, { code: 'ERR_INVALID_ARG_VALUE', message: /target.types/ }],
      [{ target: { pid: 1, types: ['net', 'net'] } }, 'echo', undefined, { code: 'ERR_INVALID_ARG_VALUE', message: /target.types/ }],
      [{ target: { pid: 1, tpyes: ['net'] } }, 'echo', undefined, { code: 'ERR_INVALID_ARG_VALUE', message: /"tpyes"/ }],
      [{ target: { pid: 0x3fffffff } }, 'echo', undefined, { name: 'NamespaceSwitchError', code: 'ENOENT', envVar: 'gons_target_pidfd', syscall: 'stat' }],
      [{ namespaces: [{ type: 'net', path: '/nonexistent' }] }, 'echo', undefined, { name: 'NamespaceSwitchError', code: 'ENOENT', envVar: 'gons_net' }],
      [{ namespaces: [{ type: 'nett', path: '/proc/self/ns/net' }] }, 'echo', undefined, { code: 'ERR_INVALID_ARG_VALUE' }],
      [none, 'not-registered', undefined, { code: 'ERR_GONS_UNREGISTERED_ACTION' }],
      [none, '', undefined, { code: 'ERR_INVALID_ARG_VALUE' }],
      [none, 'echo', { timeOut: 5 }, { code: 'ERR_INVALID_ARG_VALUE', message: /"timeOut" \(did you mean "timeout"\?\)/ }],
      [none, 'echo', { timeout: 0 }, { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }],
      [none, 'echo', { timeout: 2 ** 31 }, { code: 'ERR_OUT_OF_RANGE' }],
      [none, 'echo', { signal: 'stop' }, { code: 'ERR_INVALID_ARG_TYPE' }],
      [none, 'echo', { signal: AbortSignal.abort('why') }, { name: 'AbortError', cause: 'why' }],
    ];
    for (const [where, action, opts, err] of cases) {
      await t.rejects(pool.run(where as never, action, 1, opts as never), err as never, `${JSON.stringify(where)} ${action} ${JSON.stringify(opts)}`);
    }
    t.equal(pool.size, 0, 'no worker was started');
    t.equal(await pool.run(none, 'echo', 'fine', { timeout: 600000 }), 'fine', 'a valid call still runs');
  });

  t.test('whereKey: namespaces by identity, shared ones left out, paths inside a target by their text', { skip: needsRoot }, async (t) => {
    const h = await createNamespaces(t, ['mnt', 'net', 'uts'], { hostname: 'key' });
    const id = (p: string) => `${statSync(p).dev}:${statSync(p).ino}`;
    const all = `mnt=${id(h.paths.mnt)},net=${id(h.paths.net)},uts=${id(h.paths.uts)}`;
    t.equal(whereKey({ namespaces: h.namespaces() }), all);
    t.equal(whereKey({ target: { pid: h.pid } }), `${cgroupKeyOf(h.pid)},${all}`, 'a target: the types it does not share with us, and its cgroups');
    t.equal(whereKey({ target: { pid: h.pid }, cgroups: false }), all, 'without its cgroups: the same worker as its paths');
    t.equal(whereKey({ namespaces: [...h.namespaces(), { type: '!ipc', path: '/proc/self/ns/ipc' }] }), all, 'ours left out');
    t.equal(whereKey({ namespaces: [] }), '');
    t.equal(whereKey({ target: { pid: process.pid } }), cgroupKeyOf('self'), 'ourselves: our cgroups');
    t.equal(whereKey({ namespaces: [{ type: 'mnt', path: h.paths.mnt }, { type: 'net', path: '/proc/self/ns/net' }] }),
      `mnt=${id(h.paths.mnt)},net@/proc/self/ns/net`, 'a path that resolves inside the target counts by its text');
  });

  t.test('a warm call follows a path re-bound to another namespace, and a target that moved to a new one', { skip: needsRoot }, async (t) => {
    // Why a warm call still stats what it names: a remembered identity would send these to the worker of before.
    const [a, b] = await holders(t, 2, 'moved');
    const { pool, w } = watchedPool(t);
    const dir = mkdtempSync(join(tmpdir(), 'gons-rebind-'));
    const file = join(dir, 'uts');
    writeFileSync(file, '');
    let mounted = false;
    t.teardown(() => {
      if (mounted) execFileSync('umount', [file]);
      rmSync(dir, { recursive: true });
    });
    const bind = (ns: string) => {
      if (mounted) execFileSync('umount', [file]);
      mounted = false;
      execFileSync('mount', ['--bind', ns, file]);
      mounted = true;
    };
    // A bound namespace file, as `ip netns add` makes them, bound to a's namespace, then to b's.
    const byPath = { namespaces: [{ type: 'uts' as const, path: file }] };
    bind(a.paths.uts!);
    const first = await pool.run<Where>(byPath, 'where');
    t.equal(first.hostname, 'moved-0');
    t.equal((await pool.run<Where>(byPath, 'where')).pid, first.pid, 'warm: the same worker');
    bind(b.paths.uts!);
    const rebound = await pool.run<Where>(byPath, 'where');
    t.equal(rebound.hostname, 'moved-1', 'the path names b\'s namespace now: b\'s answer');
    t.not(rebound.pid, first.pid, 'from another worker');
    // A process that leaves for a uts namespace of its own: exec keeps its pid.
    const mover = spawn('sh', ['-c', 'echo ready; read go; exec unshare --uts sh -c "hostname gons-moved && echo moved && exec sleep 600"'], { stdio: ['pipe', 'pipe', 'inherit'] });
    t.teardown(async () => {
      if (mover.exitCode === null && mover.signalCode === null) {
        mover.kill('SIGKILL');
        await once(mover, 'exit');
      }
    });
    const lines = new Lines(mover);
    await lines.waitFor((l) => l === 'ready', 60000, 'ready');
    const target = { target: { pid: mover.pid!, types: ['uts' as const] } };
    const before = await pool.run<Where>(target, 'where');
    t.equal(before.hostname, hostname(), 'in our uts namespace: ours');
    mover.stdin.write('go\n');
    await lines.waitFor((l) => l === 'moved', 60000, 'moved');
    const after = await pool.run<Where>(target, 'where');
    t.equal(after.hostname, 'gons-moved', 'the same pid, in its new namespace: its answer');
    t.not(after.pid, before.pid, 'from another worker');
    t.equal(w.started.length, 4, 'one worker for each namespace named');
  });

  t.test('a warm call only stats the namespaces its ready worker is in; others are checked in full', { skip: needsRoot }, async (t) => {
    const [a] = await holders(t, 1, 'pinned');
    const { pool, w } = watchedPool(t);
    // Counts the parent's namespace checks (open + NS_GET_NSTYPE), through the addon gons calls for them.
    const checked: string[] = [];
    const nsType = addon.nsType;
    addon.nsType = (path: string) => (checked.push(path), nsType(path));
    t.teardown(() => void (addon.nsType = nsType));
    const pid = await pool.run<number>({ namespaces: a.namespaces() }, 'pid');
    t.same([...new Set(checked)].sort(), a.namespaces().map((ns) => ns.path).sort(), 'a cold call checks each namespace (the key, then the start)');
    checked.length = 0;
    t.equal(await pool.run<number>({ namespaces: a.namespaces() }, 'pid'), pid, 'the same worker');
    t.same(checked, [], 'a warm call does not open them again');
    // The worker's namespaces vouch only for their own type: named as another, one is checked and refused.
    const net = { path: a.paths.net! };
    await t.rejects(pool.run({ namespaces: [{ type: 'uts', path: net.path }] }, 'pid'), { name: 'NamespaceSwitchError', message: /a net namespace, not uts/ });
    t.same(checked, [net.path]);
    await t.rejects(pool.run({ namespaces: [{ type: 'net', path: 'relative/net' }] }, 'pid'), { message: /must be an absolute path/ }, 'shape first');
    // Once the worker is gone, nothing vouches for them: they are checked again.
    checked.length = 0;
    await pool.close();
    await w.exits(1);
    const again = createNamespacePool({ entry });
    t.teardown(() => again.close());
    await again.run({ namespaces: a.namespaces() }, 'pid');
    t.same([...new Set(checked)].sort(), a.namespaces().map((ns) => ns.path).sort(), 'a new pool checks them in full');
  });
});
