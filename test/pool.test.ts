/** createNamespacePool: many real namespaces visited with a bounded number of warm workers. */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { checkAction, createNamespacePool } from '../reexec/index';
import { eventually, ino, needsRoot } from './fixtures/helpers';
import { openFds } from './fixtures/hygiene';
import { entry, gate, holders, type Where, watchedPool, workerProcesses } from './fixtures/pool';


// Worker starts take seconds each on a loaded machine, and these tests start dozens.
t.setTimeout(1_200_000);

void checkAction().then(() => {
  t.test('30 network namespaces with max 4: right answers, at most 4 workers alive, warm ones reused, nothing left', { skip: needsRoot }, async (t) => {
    const ns = await holders(t, 30, 'pool');
    const fds = openFds();
    const { pool, w } = watchedPool(t, { max: 4, idleTimeout: 600_000 }); // no idle ends here: the warm ones must stay for the second visit
    const answers = await Promise.all(ns.map((h) => pool.run<Where>({ namespaces: h.namespaces() }, 'where')));
    answers.forEach((a, i) => {
      t.equal(a.hostname, `pool-${i}`, `namespace ${i}: its hostname`);
      t.equal(a.net, ino(ns[i].paths.net), `namespace ${i}: its net namespace`);
    });
    t.ok(w.peak() <= 4 && w.peak() >= 1, `at most 4 workers alive at once (peak ${w.peak()})`);
    t.equal(w.started.length, 30, 'one worker per namespace');
    t.ok(pool.size <= 4);
    t.ok(w.exited.every((e) => e.reason === 'evicted'), 'the others made room');

    // Those still warm serve again, however the same namespaces are named.
    const warm = ns.map((h, i) => ({ h, i, pid: answers[i].pid })).filter(({ pid }) => workerProcesses().includes(pid));
    t.ok(warm.length >= 1 && warm.length <= 4, `${warm.length} warm workers`);
    for (const { h, i, pid } of warm) {
      t.equal((await pool.run<Where>({ namespaces: h.namespaces() }, 'where')).pid, pid, `namespace ${i}: same worker`);
      const other = [{ type: 'net', path: `/proc/${h.pid}/task/${h.pid}/ns/net` }, { type: 'uts', path: `/proc/${h.pid}/task/${h.pid}/ns/uts` }] as const;
      t.equal((await pool.run<Where>({ namespaces: [...other] }, 'where')).pid, pid, `namespace ${i}: same worker by other paths`);
      // A target brings its cgroups too (a key of their own); without them, it is these namespaces alone.
      t.equal((await pool.run<Where>({ target: { pid: h.pid }, cgroups: false }, 'where')).pid, pid, `namespace ${i}: same worker as a target without its cgroups`);
    }
    t.equal(w.started.length, 30, 'no worker started for them');

    await pool.close();
    t.same(workerProcesses(), [], 'no worker left');
    t.ok(w.exited.length === 30 && w.exited.slice(-warm.length).every((e) => e.reason === 'closed'), 'all ended');
    t.equal(await eventually(() => {
      if (openFds() !== fds) throw new Error(`${openFds()} fds open, ${fds} before`);
      return openFds();
    }, 30000), fds, 'no fd left open');
  });

  t.test('idle workers end after idleTimeout, and do not keep the pool busy', { skip: needsRoot }, async (t) => {
    const ns = await holders(t, 3, 'idle');
    const { pool, w } = watchedPool(t, { max: 4, idleTimeout: 300 });
    await Promise.all(ns.map((h) => pool.run({ namespaces: h.namespaces() }, 'pid')));
    const exits = await w.exits(3);
    t.same(exits.map((e) => e.reason), ['idle', 'idle', 'idle']);
    t.same(exits.map((e) => e.pid).sort(), w.started.map((s) => s.pid).sort());
    t.equal(pool.size, 0);
    t.same(workerProcesses(), []);
    t.match(await pool.run<Where>({ namespaces: ns[0].namespaces() }, 'where'), { hostname: 'idle-0' }, 'a new one serves later');
  });

  t.test('a target that exits mid-way fails only its own call', { skip: needsRoot }, async (t) => {
    const ns = await holders(t, 4, 'mid');
    const [doomed] = await holders(t, 1, 'doomed');
    const pool = createNamespacePool({ entry, max: 2 });
    t.teardown(() => pool.close());
    const g = gate(t);
    // Two gated calls hold both workers; the target's call waits behind them.
    const held = ns.slice(0, 2).map((h) => pool.run({ namespaces: h.namespaces() }, 'wait-for', g.file));
    const target = pool.run<Where>({ target: { pid: doomed.pid, types: ['net', 'uts'] } }, 'where').catch((err: unknown) => err);
    const after = ns.slice(2).map((h) => pool.run<Where>({ target: { pid: h.pid } }, 'where'));
    await doomed.close();
    g.open();
    t.same(await Promise.all(held), ['opened', 'opened']);
    t.match(await target, { name: 'NamespaceSwitchError', envVar: 'gons_target_pidfd' }, 'its call fails');
    t.same((await Promise.all(after)).map((a) => a.hostname), ['mid-2', 'mid-3'], 'the others are served');
  });

  t.test('a worker whose target exits is evicted: workerExit says target-exited (issue #24)', { skip: needsRoot }, async (t) => {
    const [followed, other] = await holders(t, 2, 'followed');
    const { pool, w } = watchedPool(t, { max: 4, idleTimeout: 600_000 });
    t.match(await pool.run<Where>({ target: { pid: followed.pid, types: ['net', 'uts'] } }, 'where'), { hostname: 'followed-0' });
    t.match(await pool.run<Where>({ target: { pid: other.pid, types: ['net', 'uts'] } }, 'where'), { hostname: 'followed-1' });
    await followed.close();
    const [exit] = await w.exits(1);
    t.match(exit, { reason: 'target-exited', pid: w.started[0].pid, signal: 'SIGKILL' }, 'the idle worker ended with its target');
    t.equal(pool.size, 1, 'the other worker stays');
    t.match(await pool.run<Where>({ target: { pid: other.pid, types: ['net', 'uts'] } }, 'where'), { hostname: 'followed-1', pid: w.started[1].pid });
  });

  t.test('a failed start rejects only the call it was for; another call for the same namespaces starts its own', { skip: needsRoot }, async (t) => {
    const [h] = await holders(t, 1, 'shared');
    const sleeper = spawn('nsenter', [`--net=${h.paths.net}`, 'sleep', '1000'], { stdio: 'ignore' });
    t.teardown(() => { sleeper.kill('SIGKILL'); });
    await eventually(() => {
      if (ino(`/proc/${sleeper.pid}/ns/net`) !== ino(h.paths.net)) throw new Error('not in the namespace yet');
    }, 30000);
    const pool = createNamespacePool({ entry });
    t.teardown(() => pool.close());
    const viaTarget = pool.run<Where>({ target: { pid: sleeper.pid!, types: ['net'] } }, 'where');
    const viaPath = pool.run<Where>({ namespaces: [{ type: '!net', path: h.paths.net }] }, 'where');
    // Same namespaces, so one worker for both, started for the target; which dies before the pool
    // gets to start it (the pool starts workers after the caller's synchronous code).
    sleeper.kill('SIGKILL');
    const until = Date.now() + 30000;
    while (!/State:\s+Z/.test(readFileSync(`/proc/${sleeper.pid}/status`, 'utf8')) && Date.now() < until) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
    await t.rejects(viaTarget, { name: 'NamespaceSwitchError' }, 'the call whose target is gone fails');
    t.equal((await viaPath).net, ino(h.paths.net), 'the other one is served');
  });

});
