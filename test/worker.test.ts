/** Warm namespace workers and entering a process's namespaces by pidfd. */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import t from 'tap';
import { NamespaceSwitchError } from '../lib/index';
import { resolveTarget, kernelHasPidfdSetns } from '../lib/target';
import { type NamespaceType, namespaceKinds } from '../lib/namespaces';
import { ReexecError, checkAction, createNamespacePool, openNamespaceWorker, register, runReexecAction } from '../reexec/index';
import { planReexec, processOf, startWorker } from '../reexec/internal';
import { coverageRun } from '../reexec/role';
import { createNamespaces } from '../testing/index';
import { asNobody, eventually, fixturePath, gone, ino, needsNobody, needsRoot, plainEnv, projectRoot } from './fixtures/helpers';
import { settledChildren } from './fixtures/hygiene';
import { LONG, startedPid } from './fixtures/waits';
import { doubleIn } from './fixtures/actions';



void checkAction().then(() => {
  t.test("register()'s handle stands for its name in runReexecAction, worker.run and pool.run", async (t) => {
    t.same(Object.keys(doubleIn), ['name'], 'a handle carries its name, nothing else at run time');
    t.equal(doubleIn.name, 'double-in');
    t.ok(Object.isFrozen(doubleIn));
    const once = await runReexecAction(doubleIn, { param: { n: 4 } });
    t.equal(once.doubled, 8, 'a one-shot call');
    t.not(once.pid, process.pid, 'ran in a child');
    const worker = await openNamespaceWorker();
    t.teardown(() => worker.close());
    const warm = await worker.run(doubleIn, { n: 5 }, { timeout: LONG });
    t.same(warm, { doubled: 10, pid: worker.pid }, 'a worker call');
    t.same(await worker.run('double-in', { n: 6 }), { doubled: 12, pid: worker.pid }, 'its name still works');
    const pool = createNamespacePool({ max: 1 });
    t.teardown(() => pool.close());
    const pooled = await pool.run({ namespaces: [] }, doubleIn, { n: 7 });
    t.equal(pooled.doubled, 14, 'a pool call');
    t.not(pooled.pid, process.pid);
    // Only handles register() made stand for a name: a look-alike is an invalid name, as any other object.
    const forged = { name: 'double-in' } as typeof doubleIn;
    for (const call of [() => runReexecAction(forged, { param: { n: 1 } }), () => worker.run(forged, { n: 1 }), () => pool.run({ namespaces: [] }, forged, { n: 1 })]) {
      await t.rejects(call(), { code: 'ERR_INVALID_ARG_VALUE', message: /invalid action name \{"name":"double-in"\}/ });
    }
    t.throws(() => register('double-in', () => 0), { code: 'ERR_GONS_DUPLICATE_ACTION' }, 'a handle is no second registration');
  });

  t.test('one worker serves many calls, sequential and concurrent, each matched to its reply', async (t) => {
    const worker = await openNamespaceWorker();
    t.teardown(() => worker.close());
    const pid = await worker.run<number>('pid');
    for (let i = 0; i < 50; i++) t.equal(await worker.run('echo', i), i);
    t.equal(await worker.run<number>('pid'), pid, 'the same child served them all');
    const params = Array.from({ length: 64 }, (_, i) => ({ value: { i, tag: `call-${i}` }, ms: (i * 7) % 20 }));
    t.same(await Promise.all(params.map((p) => worker.run('delayed-echo', p))), params.map((p) => p.value));
    await t.rejects(worker.run('throw-null-proto'), { cause: { message: 'non-error thrown: [object Object]' } }, 'even an unprintable throw');
    const failed = await worker.run('fail-fs').catch((e) => e);
    t.match(failed, { code: 'ERR_GONS_ACTION_FAILED', action: 'fail-fs', cause: { code: 'ENOENT' } }, "an action's error rejects only that call");
    t.equal(await worker.run('action'), 'done', 'the worker still serves');
  });

  t.test('a worker answers plain values at once and promises once settled, as await would', async (t) => {
    const worker = await openNamespaceWorker();
    t.teardown(() => worker.close());
    t.same(await worker.run('thenable', 7), { via: 'thenable', p: 7 }, 'a thenable that is no Promise is awaited');
    await t.rejects(worker.run('thenable-rejects'), { code: 'ERR_GONS_ACTION_FAILED', cause: { name: 'RangeError', message: 'no thanks' } });
    await t.rejects(worker.run('then-getter-throws'), { code: 'ERR_GONS_ACTION_FAILED', cause: { name: 'SyntaxError', message: 'no then here' } });
    await t.rejects(worker.run('fail-type'), { code: 'ERR_GONS_ACTION_FAILED', cause: { name: 'TypeError' } }, 'a synchronous throw');
    // Sent together, in one chunk: each is answered, in whatever order they finish.
    const mixed = await Promise.all([worker.run('echo', 1), worker.run('delayed-echo', { value: 2, ms: 30 }), worker.run('thenable', 3), worker.run('echo', 4)]);
    t.same(mixed, [1, 2, { via: 'thenable', p: 3 }, 4]);
  });

  t.test('calls are checked before they are sent', async (t) => {
    const worker = await openNamespaceWorker();
    t.teardown(() => worker.close());
    await t.rejects(worker.run('not-registered'), { code: 'ERR_GONS_UNREGISTERED_ACTION' });
    await t.rejects(worker.run('echo', () => 1), { code: 'ERR_GONS_NOT_CLONEABLE' });
    await t.rejects(worker.run('echo', 1, { timeout: 0 }), { code: 'ERR_OUT_OF_RANGE' });
    await t.rejects(worker.run(''), { code: 'ERR_INVALID_ARG_VALUE' });
    await t.rejects(worker.run('echo', 1, { signal: AbortSignal.abort() }), { name: 'AbortError' });
    t.equal(await worker.run('echo', 'still fine'), 'still fine');
  });

  t.test("a call's timeout or abort rejects only that call", async (t) => {
    const worker = await openNamespaceWorker();
    t.teardown(() => worker.close());
    const dir = t.testdir({});
    // gated-echo replies only once its gate file exists (and then removes it): no reply can beat the timeout.
    const late = { value: 1, started: join(dir, 'late.started'), gate: join(dir, 'late.gate') };
    await t.rejects(worker.run('gated-echo', late, { timeout: 100 }), { name: 'ReexecError', code: 'ERR_GONS_TIMEOUT' });
    await startedPid(late.started);
    writeFileSync(late.gate, '');
    await eventually(() => { if (existsSync(late.gate)) throw new Error('the action has not replied yet'); }, LONG);
    // Its late reply went out before this request was read: it arrives first and is dropped.
    t.equal(await worker.run('echo', 2), 2);
    const ac = new AbortController();
    const aborted = { value: 1, started: join(dir, 'aborted.started'), gate: join(dir, 'aborted.gate') };
    const call = worker.run('gated-echo', aborted, { signal: ac.signal });
    await startedPid(aborted.started);
    ac.abort();
    await t.rejects(call, { name: 'AbortError', code: 'ABORT_ERR' });
    writeFileSync(aborted.gate, '');
    t.equal(await worker.run('echo', 3), 3);
  });

  t.test('a crashed worker rejects all pending calls and refuses new ones', async (t) => {
    const worker = await openNamespaceWorker();
    const exited = once(worker, 'exit');
    const dir = t.testdir({});
    const pending = [worker.run('hang', join(dir, '1.pid')), worker.run('hang', join(dir, '2.pid'))];
    const crash = worker.run('kill9');
    for (const p of [...pending, crash]) {
      await t.rejects(p, { name: 'ReexecError', code: 'ERR_GONS_CHILD_DIED', signal: 'SIGKILL' });
    }
    t.same(await exited, [null, 'SIGKILL']);
    await t.rejects(worker.run('action'), { code: 'ERR_GONS_CHILD_DIED' });
    await worker.close();

    const exiting = await openNamespaceWorker({ output: 'ignore' });
    await t.rejects(exiting.run('exit3'), {
      code: 'ERR_GONS_CHILD_DIED', exitCode: 3, stderr: /about to exit/, message: /^gons\/reexec: namespace worker \d+ exited with code 3 without a result \(its stderr is in \.stderr\)$/,
    });
  });

  t.test('close() lets calls in flight finish, then ends the child; await using closes too', async (t) => {
    const worker = await openNamespaceWorker();
    const inFlight = worker.run('delayed-echo', { value: 'finished', ms: 200 });
    const closing = worker.close();
    await t.rejects(worker.run('action'), { code: 'ERR_GONS_WORKER_CLOSED' });
    t.equal(await inFlight, 'finished');
    await closing;
    await gone(worker.pid, LONG);
    let pid = 0;
    {
      await using scoped = await openNamespaceWorker();
      pid = scoped.pid;
      t.equal(await scoped.run('action'), 'done');
    }
    await gone(pid, LONG);
  });

  t.test('kill() ends a worker whose action never settles', async (t) => {
    const worker = await openNamespaceWorker();
    const stuck = worker.run('hang', join(t.testdir({}), 'pid'));
    const closing = worker.close(); // would wait for ever
    await worker.kill();
    await t.rejects(stuck, { code: 'ERR_GONS_CHILD_DIED', signal: 'SIGKILL' });
    await closing;
    await gone(worker.pid, LONG);
  });

  t.test('unref() lets the parent exit with an idle worker', async (t) => {
    const worker = await openNamespaceWorker();
    t.equal(worker.unref(), worker);
    t.equal(worker.ref(), worker);
    await worker.close();
    const res = spawnSync(process.execPath, [...process.execArgv, fixturePath('unref-worker.ts')], { encoding: 'utf8', timeout: LONG });
    t.equal(res.status, 0, 'the program ended on its own', { stderr: res.stderr, signal: res.signal });
    t.match(res.stdout, /^worker \d+ open\n$/);
  });

  t.test('unref() with a call or a close in flight still waits for it (issue #24: the program exited with 13)', async (t) => {
    for (const [mode, last] of [['call', 'call: answered\n'], ['close', 'closed\n']]) {
      const res = spawnSync(process.execPath, [...process.execArgv, fixturePath('unref-worker.ts'), mode], { encoding: 'utf8', timeout: LONG });
      t.equal(res.status, 0, `${mode}: the program ended on its own`, { stderr: res.stderr, signal: res.signal });
      t.match(res.stdout, new RegExp(`^worker \\d+ open\n${last}$`), `${mode}: it settled before the program ended`);
    }
  });

  t.test('close() also waits out a call that timed out in the caller but still runs in the child', async (t) => {
    const worker = await openNamespaceWorker();
    const dir = t.testdir({});
    const slow = { value: 1, started: join(dir, 'started'), gate: join(dir, 'gate') };
    await t.rejects(worker.run('gated-echo', slow, { timeout: 50 }), { code: 'ERR_GONS_TIMEOUT' });
    await startedPid(slow.started);
    const closing = worker.close();
    writeFileSync(slow.gate, ''); // the action ends while the worker closes
    await closing;
    await gone(worker.pid, LONG);
  });

  t.test('the start of a worker can time out or be aborted; the child does not stay', async (t) => {
    const entry = fixturePath('never-checks.ts');
    await t.rejects(openNamespaceWorker({ entry, timeout: 1500, output: 'ignore' }), { code: 'ERR_GONS_TIMEOUT' });
    await t.rejects(openNamespaceWorker({ entry, signal: AbortSignal.timeout(1500), output: 'ignore' }), { name: 'AbortError' });
    t.same(await settledChildren(LONG), [], 'both children were killed');
  });

  t.test('a child whose hook never ran refuses to run actions', async (t) => {
    const plan = planReexec('openNamespaceWorker', '', { namespaces: [{ type: 'uts', path: '/proc/self/ns/uts' }], output: 'ignore' });
    plan.env.LD_PRELOAD = '';
    const err = await startWorker(plan).catch((e) => e);
    t.type(err, NamespaceSwitchError);
    t.match(err, { envVar: 'gons_uts', code: 'ENOSYS', message: 'package gons: the pre-init hook did not run, so gons_uts was not switched' });
  });

  t.test('a worker in namespaces, with the target root for a mount namespace', { skip: needsRoot }, async (t) => {
    const only = join(projectRoot, 'worker-target-only.txt');
    const ns = await createNamespaces(t, ['mnt', 'net', 'uts', 'pid'], { hostname: 'gons-worker', files: { [only]: 'w' } });
    const worker = await openNamespaceWorker({ namespaces: ns.namespaces() });
    t.teardown(() => worker.close());
    for (let i = 0; i < 3; i++) {
      const r = (await worker.run('whereami')) as { cwd: string; mnt: string };
      t.equal(r.cwd, '/');
      t.equal(r.mnt, `mnt:[${ino(ns.paths.mnt)}]`);
    }
    t.equal(await worker.run('echo', readFileSync(join(projectRoot, 'package.json'), 'utf8').length), readFileSync(join(projectRoot, 'package.json'), 'utf8').length);
    // gons_pid is for children (as in gons): the worker itself stays in our pid namespace, invisible to the target's.
    const view = await worker.run<{ pid: number; ns: string; forChildren: string; spawned: [string, string] }>('pid-view');
    t.equal(view.pid, worker.pid, 'the worker is the process we started (no relay), numbered by our pid namespace');
    t.equal(view.ns, readlinkSync('/proc/self/ns/pid'), 'the worker itself is in our pid namespace');
    t.equal(view.forChildren, `pid:[${ino(ns.paths.pid)}]`, 'its pid namespace for children is the target\'s');
    t.equal(view.spawned[1], `pid:[${ino(ns.paths.pid)}]`, 'a program an action runs is in the target pid namespace');
    t.ok(Number(view.spawned[0]) > 1 && Number(view.spawned[0]) < 100, `numbered by the target pid namespace (${view.spawned[0]})`);
  });

  t.test('a worker whose namespace switch fails is not opened, and leaves no process', { skip: needsRoot }, async (t) => {
    const ns = await createNamespaces(t, ['mnt']);
    const err = await openNamespaceWorker({ namespaces: [{ type: '!mnt', path: ns.paths.mnt }, { type: 'net', path: '/nonexistent' }] }).catch((e) => e);
    t.type(err, NamespaceSwitchError);
    t.match(err, { envVar: 'gons_net', code: 'ENOENT' });
  });

  t.test('target: the namespaces of a running process, by pidfd', { skip: needsRoot }, async (t) => {
    const ns = await createNamespaces(t, ['user', 'mnt', 'net', 'uts', 'ipc'], { hostname: 'gons-target' });
    // A user and mount namespace of its own in our pid namespace: a rootless container run with --pid=host.
    await t.rejects(runReexecAction('nsinodes', { target: { pid: ns.pid } }), { code: 'ERR_GONS_UNSAFE_TARGET', risk: 'host-pid', message: /target\.allow: \['host-pid'\]/ });
    const inodes = (await runReexecAction('nsinodes', { target: { pid: ns.pid, allow: ['host-pid'] } })) as number[];
    t.same(inodes, [ino(ns.paths.user), ino(ns.paths.mnt), ino(ns.paths.net)], "'all' joins every namespace that differs");
    const some = (await runReexecAction('nsinodes', { target: { pid: ns.pid, types: ['net'] } })) as number[];
    t.same(some, [ino('/proc/self/ns/user'), ino('/proc/self/ns/mnt'), ino(ns.paths.net)], 'only the named types');
    const worker = await openNamespaceWorker({ target: { pid: ns.pid, types: ['uts', 'net'] } });
    t.teardown(() => worker.close());
    t.same(await worker.run('nsinodes'), some);
    const same = (await runReexecAction('nsinodes', { target: { pid: process.pid } })) as number[];
    t.same(same, ['user', 'mnt', 'net'].map((n) => ino(`/proc/self/ns/${n}`)), 'a process sharing all our namespaces joins nothing');
  });

  t.test('target: a process that is gone yields a clear error, never a recycled pid', { skip: needsRoot }, async (t) => {
    const ns = await createNamespaces(['net']);
    const pid = ns.pid;
    await ns.close();
    await t.rejects(runReexecAction('action', { target: { pid } }), {
      name: 'NamespaceSwitchError', code: 'ESRCH', message: `package gons: cannot open process ${pid}: No such process`,
    });
    // The holder dies between the call (pidfd opened) and the child's switch.
    const ns2 = await createNamespaces(['net', 'uts']);
    const plan = planReexec('openNamespaceWorker', '', { target: { pid: ns2.pid } });
    t.ok(plan.pidfd !== undefined);
    await ns2.close();
    const err = await startWorker(plan).catch((e) => e);
    t.type(err, NamespaceSwitchError);
    t.match(err, { envVar: 'gons_target_pidfd', syscall: 'setns', code: 'ESRCH' });
  });

  t.test('a worker made from a target ends when the target exits (issue #24)', { skip: needsRoot }, async (t) => {
    const ns = await createNamespaces(t, ['uts', 'net'], { hostname: 'followed' });
    const worker = await openNamespaceWorker({ target: { pid: ns.pid, types: ['uts', 'net'] } });
    t.equal(worker.targetPid, ns.pid);
    t.equal(worker.endReason, undefined);
    const pidFile = join(t.testdir({}), 'pid');
    const stuck = worker.run('hang', pidFile);
    await startedPid(pidFile);
    const exited = once(worker, 'exit');
    await ns.close();
    t.same(await exited, [null, 'SIGKILL', 'target-exited'], "'exit' says why");
    t.equal(worker.endReason, 'target-exited');
    await t.rejects(stuck, { name: 'ReexecError', code: 'ERR_GONS_TARGET_EXITED', message: `gons/reexec: namespace worker ${worker.pid} ended: its target process ${ns.pid} exited` });
    await t.rejects(worker.run('action'), { code: 'ERR_GONS_TARGET_EXITED' }, 'and so does a later call');
    await gone(worker.pid, LONG);
    // A worker that was closed before its target exited says nothing of the target.
    const ns2 = await createNamespaces(t, ['uts'], { hostname: 'closed-first' });
    const closed = await openNamespaceWorker({ target: { pid: ns2.pid, types: ['uts'] } });
    const exit2 = once(closed, 'exit');
    await closed.close();
    t.same((await exit2).slice(2), [], 'no reason');
    await ns2.close();
  });

  t.test('target: argument checks and the pre-5.8 fallback', async (t) => {
    await t.rejects(runReexecAction('action', { target: { pid: 0 } }), { code: 'ERR_INVALID_ARG_VALUE' });
    await t.rejects(runReexecAction('action', { target: { pid: '17638\n' as unknown as number } }), {
      code: 'ERR_INVALID_ARG_TYPE', message: 'gons: target.pid must be a number, not the string "17638\\n" (convert it with Number())',
    }, 'a pid read from a command says it got a string (issue #24)');
    await t.rejects(runReexecAction('action', { target: { pid: process.pid, types: ['bogus' as 'net'] } }), { code: 'ERR_INVALID_ARG_VALUE' });
    await t.rejects(runReexecAction('action', { target: { pid: process.pid, types: [] } }), { code: 'ERR_INVALID_ARG_VALUE' });
    await t.rejects(runReexecAction('action', { target: { pid: process.pid }, namespaces: [] }), { message: /cannot be combined/ });
    t.ok(kernelHasPidfdSetns('6.1.0'));
    t.ok(kernelHasPidfdSetns('5.8.0-1'));
    t.notOk(kernelHasPidfdSetns('5.7.19'));
    t.notOk(kernelHasPidfdSetns('4.19.0'));
  });

  t.test('target: a process that exited but was not reaped yet', { skip: needsRoot }, async (t) => {
    // `true` becomes a zombie under `sleep`, which never waits for it.
    const parent = spawn('sh', ['-c', 'true & exec sleep 3600'], { stdio: 'ignore' });
    t.teardown(() => { parent.kill('SIGKILL'); });
    const zombie = await eventually(() => {
      const pid = Number(readFileSync(`/proc/${parent.pid}/task/${parent.pid}/children`, 'utf8').trim());
      if (!pid || !/State:\s+Z/.test(readFileSync(`/proc/${pid}/status`, 'utf8'))) throw new Error('no zombie yet');
      return pid;
    }, LONG);
    await t.rejects(runReexecAction('action', { target: { pid: zombie } }), {
      name: 'NamespaceSwitchError', code: 'ENOENT', syscall: 'stat', envVar: 'gons_target_pidfd',
      message: new RegExp(`cannot inspect the \\w+ namespace of process ${zombie}: No such file or directory`),
    });
  });

  t.test('target: a process we may not inspect is an error, not a silent no-op', { skip: needsNobody() }, async (t) => {
    const env = plainEnv();
    const args = [...process.execArgv.filter((a) => !a.includes('processinfo')), fixturePath('nobody-target.ts'), String(process.pid)];
    const res = asNobody(process.execPath, args, env);
    t.equal(res.status, 0, 'exits normally', { stderr: res.stderr });
    t.same(JSON.parse(res.stdout), {
      name: 'NamespaceSwitchError', code: 'EACCES', syscall: 'stat',
      message: `package gons: cannot inspect the net namespace of process ${process.pid}: Permission denied (not running as root: run as root, or join the user namespace that owns the target as well — a container's: include 'user' in target.types or namespaces; gons joins it first when another join needs it)`,
    });
  });

  t.test('target: before Linux 5.8 the paths of /proc/<pid>/ns are used', { skip: needsRoot }, async (t) => {
    const ns = await createNamespaces(t, ['net', 'uts']);
    const fallback = resolveTarget({ pid: ns.pid, types: ['net', 'uts', 'ipc'] }, false);
    t.same(fallback, { namespaces: [{ type: '!net', path: ns.paths.net }, { type: '!uts', path: ns.paths.uts }], close: fallback.close },
      'shared namespaces (ipc) are left out');
    fallback.close();
  });

  t.test('workers refuse to start from a re-executed child', async (t) => {
    const err = (await runReexecAction('open-worker').catch((e) => e)) as ReexecError;
    t.match(err, { code: 'ERR_GONS_RECURSIVE_REEXEC' });
    t.match(err.cause, { message: 'gons/reexec: openNamespaceWorker: tried to re-execute in already re-executing child process' });
  });

  t.test('an action that drops privileges: its result stands, the worker ends normally and logs that it stayed', { skip: needsRoot }, async (t) => {
    const ns = await createNamespaces(t, ['mnt']);
    const worker = await openNamespaceWorker({ namespaces: ns.namespaces(), env: { DEBUG: 'gons:child' }, output: 'ignore' });
    const exited = new Promise<unknown[]>((resolve) => worker.once('exit', (...end) => resolve(end)));
    t.equal(await worker.run('drop-privileges'), 65534);
    await worker.close();
    t.same(await exited, [0, null], 'exit code 0, no uncaught exception');
    const stderr = processOf(worker).stderr();
    // A coverage run keeps the way back, and tries it at exit; otherwise the child sealed the target root and never tries.
    if (coverageRun()) t.match(stderr, /staying on the target's root: package gons: cannot return to the original root: Operation not permitted/);
    else t.notMatch(stderr, /staying on the target's root/, 'sealed: no way back to try');
    t.notMatch(stderr, /Uncaught|NamespaceSwitchError: package/);
  });

  t.test('a target that dies while its namespaces are inspected, its pid reused: ESRCH, never a call without namespaces', { skip: needsRoot }, async (t) => {
    // Not our child (its shell exits at once), so it is reaped as soon as it is killed, as a container's process would be.
    const out = spawnSync('sh', ['-c', 'unshare -n sleep 600 >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' });
    const pid = Number(out.stdout.trim());
    await eventually(() => {
      if (readlinkSync(`/proc/${pid}/ns/net`) === readlinkSync('/proc/self/ns/net')) throw new Error('not yet in its net namespace');
    }, 30000);
    let killed = false;
    // The reads happen after the pidfd was opened: kill the target, wait until it is reaped, then answer as a process
    // that took over its pid and shares all our namespaces would.
    const recycled = (p: number, type: string) => {
      if (!killed) {
        killed = true;
        process.kill(p, 'SIGKILL');
        const until = Date.now() + 30000;
        while (existsSync(`/proc/${p}`) && Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      }
      return statSync(`/proc/self/ns/${namespaceKinds[type as NamespaceType].procname}`).ino;
    };
    t.throws(() => resolveTarget({ pid }, true, recycled), { name: 'NamespaceSwitchError', code: 'ESRCH', path: `/proc/${pid}`, envVar: 'gons_target_pidfd' });
  });
});
