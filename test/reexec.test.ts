/**
 * gons/reexec, end to end: every case of Go's reexec_test.go and gons_test.go,
 * then the behaviour the Node port adds. The actions live in
 * test/fixtures/actions.ts, which this file imports: a re-executed copy of
 * this file runs only the requested action, never the tests below.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Duplex } from 'node:stream';
import t from 'tap';
import { NamespaceSwitchError } from '../lib/index';
import { AbortError, ReexecError, checkAction, register, runReexecAction } from '../reexec/index';
import { encodeFrame } from '../reexec/channel';
import { FD, stdioByFd } from '../reexec/fds';
import { planReexec, startProcess } from '../reexec/internal';
import { coverageRun } from '../reexec/role';
import { filterFlags, formatNodeOptions, parseNodeOptions, sanitizeChildEnv } from '../reexec/flags';
import { createNamespaces } from '../testing/index';
import { asNobody, eventually, fixturePath, gone, ino, needsNobody, needsRoot, plainEnv, projectRoot } from './fixtures/helpers';
import { settledChildren } from './fixtures/hygiene';
import { LONG, startedPid } from './fixtures/waits';
import './fixtures/actions';

const actionsEntry = fixturePath('actions.ts');
const fixture = (name: string) => [...process.execArgv, fixturePath(name)];


void checkAction().then(() => {
  t.test('ported from Go gons/reexec', async (t) => {
    t.test('runs action and exits with code 0', async (t) => {
      const { child } = await startProcess(planReexec('runReexecAction', 'action'));
      const frame = encodeFrame({ id: 1, action: 'action', param: undefined });
      const channel = child.stdio[3] as Duplex;
      channel.resume();
      child.stdout?.resume();
      child.stderr?.resume();
      channel.write(frame[0]);
      channel.end(frame[1]);
      const [code] = await once(child, 'exit');
      t.equal(code, 0);
    });
    t.test('runs action and decodes answer', async (t) => {
      t.equal(await runReexecAction('action'), 'done');
    });
    t.test('runs action and passes env var', async (t) => {
      t.equal(await runReexecAction('envvar', { env: { foobar: 'baz!' } }), 'baz!');
    });
    t.test('runs action with an 8192-char random parameter', async (t) => {
      const letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
      const p = Array.from({ length: 8192 }, () => letters[Math.floor(Math.random() * letters.length)]).join('');
      t.equal(await runReexecAction('withparam', { param: p }), 'xx' + p);
    });
    t.test('throws when re-execution was not enabled by checkAction()', async (t) => {
      const res = spawnSync(process.execPath, fixture('not-enabled.ts'), { encoding: 'utf8' });
      t.same(JSON.parse(res.stdout), ['runReexecAction', 'openNamespaceWorker'].map((where) => ({
        code: 'ERR_GONS_NOT_ENABLED',
        message: `gons/reexec: ${where}: application does not support forking and restarting, needs to call checkAction() first`,
      })));
    });
    t.test('does not accept registering the same action name twice', async (t) => {
      register('twice', () => {});
      t.throws(() => register('twice', () => {}), {
        name: 'ReexecError', code: 'ERR_GONS_DUPLICATE_ACTION',
        message: 'gons/reexec: register: re-execution action "twice" already registered',
      });
    });
    t.test('does not trigger a non-registered action', async (t) => {
      await t.rejects(runReexecAction('xxx'), {
        code: 'ERR_GONS_UNREGISTERED_ACTION',
        message: 'gons/reexec: runReexecAction: attempting to re-execute into unregistered action "xxx"',
      });
    });
    t.test('the child fails for an action registered only after start', async (t) => {
      register('barx', () => 'never');
      const err = await runReexecAction('barx').catch((e: ReexecError) => e);
      t.type(err, ReexecError);
      t.match(err, { code: 'ERR_GONS_UNREGISTERED_ACTION', action: 'barx' });
      t.match((err as ReexecError).cause, { message: 'unregistered gons/reexec re-execution action "barx": register actions at the top level of the main module, before checkAction()' });
    });
    t.test('rejects an invalid namespace reference', async (t) => {
      await t.rejects(runReexecAction('action', { namespaces: [{ type: 'net', path: '/foo' }] }), {
        name: 'NamespaceSwitchError', envVar: 'gons_net', path: '/foo', code: 'ENOENT',
        message: 'package gons: invalid gons_net reference "/foo": No such file or directory',
      });
    });
    t.test('joining its own user namespace succeeds (already-current namespaces are skipped)', async (t) => {
      t.equal(await runReexecAction('action', { namespaces: [{ type: 'user', path: '/proc/self/ns/user' }] }), 'done');
    });
    t.test('does not re-execute from a re-executed child', async (t) => {
      const err = (await runReexecAction('reexec').catch((e) => e)) as ReexecError;
      t.match(err, { code: 'ERR_GONS_RECURSIVE_REEXEC' });
      t.match(err.cause, { message: /tried to re-execute in already re-executing child process/ });
    });
    t.test('terminates a hanging child after its result, and the result counts', async (t) => {
      const r = (await runReexecAction('sleepy')) as { text: string; pid: number };
      t.equal(r.text, 'sleeping');
      t.ok(existsSync(`/proc/${r.pid}`), 'the call settles with the reply, before the child has exited');
      await gone(r.pid, LONG); // it never exits on its own
    });
    t.test('rejects a result that cannot be cloned', async (t) => {
      const err = (await runReexecAction('uncloneable').catch((e) => e)) as ReexecError;
      t.match(err, { code: 'ERR_GONS_NOT_CLONEABLE' });
    });
    t.test('switches into user+mnt+net namespaces made by unshare -Umn', { skip: needsRoot }, async (t) => {
      const ns = await createNamespaces(t, ['user', 'mnt', 'net']);
      const inodes = await runReexecAction('nsinodes', { namespaces: ns.namespaces() });
      t.same(inodes, [ino(ns.paths.user), ino(ns.paths.mnt), ino(ns.paths.net)]);
    });
  });

  t.test('parameters and results travel with V8 structured serialization', async (t) => {
    const value = {
      map: new Map<unknown, unknown>([['a', 1], [2, { b: [3] }]]),
      set: new Set(['x', 'y']),
      big: 2n ** 70n,
      date: new Date('2026-11-29T07:00:00Z'),
      re: /gons\d+/gi,
      buf: Buffer.from('buffer'),
      u16: new Uint16Array([1, 2, 65535]),
      f64: new Float64Array([0.5, -Infinity]),
      undef: undefined,
      nested: [null, undefined, NaN, -0],
    };
    t.same(await runReexecAction('echo', { param: value }), value);
    t.equal(await runReexecAction('echo'), undefined);
    const echoed = (await runReexecAction('echo', { param: Buffer.from('b') })) as Buffer;
    t.ok(Buffer.isBuffer(echoed), 'a Buffer comes back as a Buffer');
  });

  t.test('a 64 MiB Buffer goes there and back', async (t) => {
    const big = Buffer.alloc(64 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
    const back = (await runReexecAction('echo', { param: big })) as Buffer;
    t.equal(back.length, big.length);
    t.ok(back.equals(big), 'identical contents');
  });

  t.test('an uncloneable param is rejected before anything is spawned', async (t) => {
    await t.rejects(runReexecAction('echo', { param: () => 1 }), { code: 'ERR_GONS_NOT_CLONEABLE', name: 'ReexecError' });
  });

  t.test('bad options are rejected before anything is spawned', async (t) => {
    await t.rejects(runReexecAction('action', { timeout: -1 }), { code: 'ERR_OUT_OF_RANGE' });
    await t.rejects(runReexecAction('action', { timeout: Number.NaN }), { code: 'ERR_OUT_OF_RANGE' });
    await t.rejects(runReexecAction('action', { env: { x: 1 as unknown as string } }), { code: 'ERR_INVALID_ARG_VALUE' });
    await t.rejects(runReexecAction('action', { env: { 'a=b': 'c' } }), { code: 'ERR_INVALID_ARG_VALUE' });
    await t.rejects(runReexecAction(''), { code: 'ERR_INVALID_ARG_VALUE' });
    await t.rejects(runReexecAction('a=b'), { code: 'ERR_INVALID_ARG_VALUE' });
    await t.rejects(runReexecAction('action', { namespaces: [{ type: 'bogus' as 'net', path: '/proc/self/ns/net' }] }), {
      code: 'ERR_INVALID_ARG_VALUE',
    });
    await t.rejects(runReexecAction('action', { namespaces: [{ type: 'net', path: 'proc/self/ns/net' }] }), {
      name: 'NamespaceSwitchError', code: 'EINVAL',
    });
    await t.rejects(runReexecAction('action', { namespaces: [{ type: 'net', path: '/proc/self/ns/mnt' }] }), {
      name: 'NamespaceSwitchError', envVar: 'gons_net', syscall: 'ioctl',
      message: 'package gons: invalid gons_net reference "/proc/self/ns/mnt": a mnt namespace, not net',
    });
    await t.rejects(runReexecAction('action', { namespaces: [{ type: 'net', path: '/dev/null' }] }), {
      message: 'package gons: invalid gons_net reference "/dev/null": not a namespace file',
    });
    t.throws(() => register('bad', 'not a function' as never), { code: 'ERR_INVALID_ARG_TYPE' });
  });

  t.test('errors thrown by the action come back as the cause', async (t) => {
    const fsErr = (await runReexecAction('fail-fs').catch((e) => e)) as ReexecError;
    t.type(fsErr, ReexecError);
    t.match(fsErr, { code: 'ERR_GONS_ACTION_FAILED', action: 'fail-fs', message: /action "fail-fs" failed: ENOENT/ });
    t.match(fsErr.cause, { name: 'Error', code: 'ENOENT', errno: -2, syscall: 'open', path: '/nonexistent/gons' });
    t.match((fsErr.cause as Error).stack, /actions\.ts/);
    const custom = (await runReexecAction('fail-custom').catch((e) => e)) as ReexecError;
    t.match(custom, { code: 'ERR_GONS_ACTION_FAILED' }, "the action's own code is the cause's");
    t.match(custom.cause, { name: 'MyError', message: 'mine', code: 'EMINE' });
    const str = (await runReexecAction('throw-string').catch((e) => e)) as ReexecError;
    t.match(str.cause, { name: 'Error', message: 'non-error thrown: boom' });
    const typeErr = (await runReexecAction('fail-type').catch((e) => e)) as ReexecError;
    t.type(typeErr.cause, TypeError);
    t.match(typeErr, { code: 'ERR_GONS_ACTION_FAILED' });
  });

  t.test('a child that dies without a result', async (t) => {
    await t.rejects(runReexecAction('exit3', { output: 'ignore' }), {
      code: 'ERR_GONS_CHILD_DIED', exitCode: 3, signal: null, stderr: /about to exit/,
      message: /^gons\/reexec: child \d+ of action "exit3" exited with code 3 without a result \(its stderr is in \.stderr\)$/,
    });
    await t.rejects(runReexecAction('kill9', { output: 'ignore' }), { code: 'ERR_GONS_CHILD_DIED', exitCode: null, signal: 'SIGKILL' });
    const flood = (await runReexecAction('stderr-flood', { output: 'ignore' }).catch((e) => e)) as ReexecError;
    t.ok(flood.stderr.length <= 64 * 1024, 'stderr tail is at most 64 KiB');
    t.match(flood.stderr, /END-OF-STDERR$/);
  });

  t.test('the tail of a dying child\'s stderr is never lost, on any Node line, under load', async (t) => {
    const errs = (await Promise.all(Array.from({ length: 4 }, () => runReexecAction('stderr-flood', { output: 'ignore' }).catch((e) => e)))) as ReexecError[];
    t.same(errs.map((e) => /END-OF-STDERR$/.test(e.stderr)), errs.map(() => true), 'every call has the last line');
  });

  t.test('a grandchild that holds the pipes and keeps writing does not hold the call', async (t) => {
    const err = (await runReexecAction('orphan-writer').catch((e) => e)) as ReexecError;
    t.match(err, { code: 'ERR_GONS_CHILD_DIED', exitCode: 2 });
    t.match(err.stderr, /child exits/);
    t.match(err.stderr, /tick/, 'what the grandchild wrote while the pipes were drained');
  });

  t.test('timeout and abort kill the child', async (t) => {
    const dir = t.testdir({});
    // The timeout runs from the spawn, and a cold start may outlast it: the child is killed then too, but
    // before its action ran. Until the action had started when the timeout fired, retry with twice the time.
    const timedOutWhileRunning = async (action: 'hang' | 'stubborn', signal: NodeJS.Signals): Promise<number> => {
      for (let timeout = 1500; ; timeout *= 2) {
        const pidFile = join(dir, `${action}-${timeout}.pid`);
        const err = (await runReexecAction(action, { param: pidFile, timeout }).catch((e) => e)) as ReexecError;
        // The call settles once the child has ended: the file is as the child left it.
        const text = existsSync(pidFile) ? readFileSync(pidFile, 'utf8') : '';
        if (/^[1-9][0-9]*$/.test(text)) {
          t.match(err, { name: 'ReexecError', code: 'ERR_GONS_TIMEOUT', exitCode: null, signal }, `${action}: timed out after ${timeout} ms, ended by ${signal}`);
          return Number(text);
        }
        // Same checks, without adding to the count of a run that needed no retry.
        if (!(err instanceof ReexecError && err.code === 'ERR_GONS_TIMEOUT')) throw err;
        const left = await settledChildren(LONG);
        if (left.length > 0) throw new Error(`${action} timed out before it started, and left ${JSON.stringify(left)}`);
        if (timeout >= 24_000) throw new Error(`${action} never started within ${timeout} ms`);
      }
    };
    await gone(await timedOutWhileRunning('hang', 'SIGTERM'), LONG);

    const ac = new AbortController();
    const abortFile = join(dir, 'abort.pid');
    const call = runReexecAction('hang', { param: abortFile, signal: ac.signal });
    const pid = await startedPid(abortFile);
    ac.abort();
    await t.rejects(call, { name: 'AbortError', code: 'ABORT_ERR', exitCode: null, signal: 'SIGTERM' });
    t.type(await call.catch((e) => e), AbortError);
    await gone(pid, LONG);

    // Ignores SIGTERM (from before it wrote its pid): only the SIGKILL after the grace period ends it.
    await gone(await timedOutWhileRunning('stubborn', 'SIGKILL'), LONG);

    const aborted = AbortSignal.abort();
    await t.rejects(runReexecAction('action', { signal: aborted }), { name: 'AbortError' });
  });

  t.test('the child dies when its parent dies', async (t) => {
    const pidFile = join(t.testdir({}), 'orphan.pid');
    const parent = spawn(process.execPath, [...fixture('parent-dies.ts'), pidFile], { stdio: 'ignore' });
    const pid = await startedPid(pidFile);
    parent.kill('SIGKILL');
    await once(parent, 'exit');
    await gone(pid, LONG);
  });

  t.test("the child's output never reaches the parent's stdout; DEBUG=gons:* shows the child's debug lines", async (t) => {
    const res = spawnSync(process.execPath, fixture('stdio-parent.ts'), { encoding: 'utf8', env: { ...process.env, DEBUG: 'gons:*' } });
    t.equal(res.stdout, 'result=quiet\n');
    t.match(res.stderr, /NOISE-ON-STDOUT/);
    t.match(res.stderr, /NOISE-ON-STDERR/);
    t.match(res.stderr, /gons:child running action noisy/);
    t.match(res.stderr, /gons:reexec re-executing/);
  });

  t.test('DEBUG=gons:* shows, per call, the child\'s pid, the namespaces its hook joined and how long the call took', { skip: needsRoot }, async (t) => {
    const res = spawnSync(process.execPath, fixture('debug-parent.ts'), { encoding: 'utf8', env: { ...process.env, DEBUG: 'gons:*' } });
    t.equal(res.status, 0, 'the parent ran', { stderr: res.stderr });
    const { once, warm } = JSON.parse(res.stdout) as { once: number; warm: number };
    // The pids are the children's own, as their pid namespace (the host's here) numbers them.
    t.match(res.stderr, new RegExp(`gons:child child ${once} serving; the hook joined: net,uts`));
    t.match(res.stderr, new RegExp(`gons:reexec child ${once} of action "pid": call 1 \\(pid\\) settled after \\d+ ms: ok`));
    t.match(res.stderr, new RegExp(`gons:child child ${warm} serving; the hook joined: net,uts`));
    t.match(res.stderr, new RegExp(`gons:reexec namespace worker ${warm}: call \\d+ \\(pid\\) settled after \\d+ ms: ok`));
  });

  t.test('no fds leak in the parent, and the child has only stdio and its channel', async (t) => {
    const before = readdirSync('/proc/self/fd').length;
    const seen = (await runReexecAction('environment', { env: { LD_PRELOAD: 'libm.so.6' } })) as {
      env: Record<string, string>; maps: boolean; fds: number[];
    };
    for (let i = 0; i < 5; i++) await runReexecAction('action');
    // Calls settle with the reply; the last child's pipes close once it has exited.
    t.same(await settledChildren(LONG), []);
    for (let i = 0; i < LONG / 20 && readdirSync('/proc/self/fd').length !== before; i++) await new Promise((r) => setTimeout(r, 20));
    t.equal(readdirSync('/proc/self/fd').length, before);
    t.same(seen.env, { LD_PRELOAD: 'libm.so.6' }, 'the hook removed itself and the gons_* variables, keeping the user preload');
    t.ok(seen.maps, 'the hook and the user preload were both loaded');
  });

  t.test('re-execution uses the same Node flags, minus those that listen or write files', async (t) => {
    const saved = [...process.execArgv];
    t.teardown(() => process.execArgv.splice(0, process.execArgv.length, ...saved));
    process.execArgv.push('--inspect=0', '--inspect-brk', '--max-old-space-size=100');
    const reexecCommand = (entry?: string | URL) => planReexec('openNamespaceWorker', '', { entry }).args;
    const cmd = reexecCommand();
    t.same(cmd.slice(0, saved.length), saved);
    const sigusr1 = process.allowedNodeEnvironmentFlags.has('--disable-sigusr1') ? ['--disable-sigusr1'] : [];
    t.same(cmd.slice(saved.length), ['--max-old-space-size=100', ...sigusr1, ...process.argv.slice(1)]);
    t.equal(reexecCommand(new URL(`file://${actionsEntry}`)).at(-1), actionsEntry);
    t.equal(reexecCommand(relative(process.cwd(), actionsEntry)).at(-1), actionsEntry, 'a relative entry is resolved');
    const argv = [...process.argv];
    t.teardown(() => process.argv.splice(0, process.argv.length, ...argv));
    process.argv.splice(1);
    t.throws(() => reexecCommand(), { message: /no main script to re-execute; pass options.entry/ });
    t.throws(() => planReexec('openNamespaceWorker', '', { entry: 'no/such/entry.js' }), { code: 'ENOENT' }, 'an entry is checked as the command is made');
  });

  t.test('one fd table: the keep list the hook reads and the spawn layout come from it', { skip: needsRoot }, async (t) => {
    t.same(FD, { channel: 3, targetPidfd: 4, handles: 5, hook: 6 }, 'the numbers the hook and the child agree on');
    const byPath = planReexec('openNamespaceWorker', '', { namespaces: [{ type: 'uts', path: '/proc/self/ns/uts' }] });
    t.teardown(() => byPath.release());
    t.equal(byPath.env.gons_keep_fds, '3,5', 'namespaces by path: the channel and the handle channel stay');
    const ns = await createNamespaces(t, ['uts']);
    const byTarget = planReexec('openNamespaceWorker', '', { target: { pid: ns.pid, types: ['uts'] } });
    t.teardown(() => byTarget.release());
    t.equal(byTarget.env.gons_keep_fds, '3,4,5', 'a target: its pidfd stays too');
    t.equal(byTarget.env.gons_target_pidfd, '4');
    t.same(stdioByFd<string | number>(['ignore', 'pipe', 'pipe'], { channel: 'pipe', targetPidfd: 'ignore', handles: 9 }), ['ignore', 'pipe', 'pipe', 'pipe', 'ignore', 9]);
    t.same(stdioByFd<string | number>(['ignore', 'pipe', 'pipe'], { channel: 'pipe', handles: 9, hook: 8 }), ['ignore', 'pipe', 'pipe', 'pipe', 'ignore', 9, 8], 'a gap is ignored');
  });

  t.test('a process that looks like a child but has no channel fails clearly', async (t) => {
    const res = spawnSync(process.execPath, fixture('actions.ts'), { encoding: 'utf8', env: { ...process.env, gons_reexec: '1' } });
    t.not(res.status, 0);
    t.match(res.stderr, /re-executed child has no channel on fd 3/);
  });

  t.test('entry: re-executes a module other than the main script', async (t) => {
    const r = (await runReexecAction('from-entry', { entry: actionsEntry })) as { main: string; doubled: number };
    t.same(r, { main: actionsEntry, doubled: 42 });
  });

  t.test('ESM and CommonJS main programs, using the package by name', async (t) => {
    for (const main of ['esm-main.mjs', 'cjs-main.cjs']) {
      const res = spawnSync(process.execPath, [fixturePath(main)], { encoding: 'utf8' });
      t.equal(res.status, 0, main, { stderr: res.stderr });
      t.same(JSON.parse(res.stdout), { result: 'hello from ' + main, pid: 'different' }, main);
    }
  });

  t.test('mount namespace whose filesystem lacks the program', { skip: needsRoot }, async (t) => {
    const only = join(projectRoot, 'only-in-target.txt');
    const ns = await createNamespaces(t, ['mnt', 'uts'], {
      hostname: 'gons-target', files: { '/etc/hostname': 'gons-target\n', [only]: 'x' },
    });
    const marker = join(t.testdir({}), 'exit-marker');
    const r = (await runReexecAction('whereami', { namespaces: ns.namespaces(), param: marker })) as Record<string, unknown>;
    t.equal(r.cwd, '/', 'the action runs with the target root as cwd');
    t.equal(r.hostname, 'gons-target\n', "reads the target's /etc/hostname");
    t.equal(r.mnt, `mnt:[${ino(ns.paths.mnt)}]`);
    // A coverage run keeps the way back to write its coverage at exit; otherwise the child seals the target's root
    // and ends without exit handlers (test/seal.test.ts).
    if (coverageRun()) {
      // The exit handler's writeFileSync creates the file before it writes: an empty file is not written yet.
      const written = () => {
        const text = readFileSync(marker, 'utf8');
        if (text === '') throw new Error('the marker is created, not yet written');
        return text;
      };
      t.equal(await eventually(written, LONG), 'written at exit', 'the child was back on its original root when it exited');
    }
    t.notOk(existsSync(only), 'the target file is not on the host');
  });

  t.test('a failed switch in the child rejects with a NamespaceSwitchError; the action never runs', { skip: needsRoot }, async (t) => {
    const ns = await createNamespaces(t, ['mnt']);
    // Opened after joining mnt, so the parent cannot check it: only the child's hook finds it missing.
    const err = await runReexecAction('whereami', {
      namespaces: [{ type: '!mnt', path: ns.paths.mnt }, { type: 'net', path: '/nonexistent/net' }],
      param: join(t.testdir({}), 'never'),
    }).catch((e) => e);
    t.type(err, NamespaceSwitchError);
    t.match(err, {
      envVar: 'gons_net', path: '/nonexistent/net', syscall: 'open', code: 'ENOENT',
      message: 'package gons: invalid gons_net reference "/nonexistent/net": No such file or directory',
    });
  });

  t.test('as nobody: an unprivileged user namespace with net and uts', { skip: needsNobody() }, async (t) => {
    const env = plainEnv();
    const args = [...process.execArgv.filter((a) => !a.includes('processinfo')), fixturePath('unprivileged-reexec.ts')];
    const res = asNobody(process.execPath, args, env);
    t.equal(res.status, 0, 'exits normally', { stderr: res.stderr });
    t.same(JSON.parse(res.stdout), { hostname: 'gons-nobody', uid: 0, inodesMatch: true });
  });

  t.test('an action whose promise can never settle is reported as such, in CommonJS and ESM (top-level await) programs', async (t) => {
    const unsettled = { code: 'ERR_GONS_ACTION_UNSETTLED', message: /action "unsettled" returned a promise that never settled: nothing kept the child's event loop alive/ };
    await t.rejects(runReexecAction('unsettled'), unsettled);
    const res = spawnSync(process.execPath, [fixturePath('unsettled-main.mjs')], { encoding: 'utf8' });
    t.equal(res.status, 0, 'the ESM program ran', { stderr: res.stderr });
    t.match(JSON.parse(res.stdout), unsettled);
  });

  t.test('flags and variables that make Node listen or write files do not reach the child', { skip: needsRoot }, async (t) => {
    const dir = t.testdir({});
    const risky = [
      '--report-on-signal', '--report-signal=SIGUSR2', `--report-directory=${dir}`, '--heapsnapshot-signal=SIGUSR2',
      `--diagnostic-dir=${dir}`, '--cpu-prof', '--cpu-prof-dir', dir, `--redirect-warnings=${dir}/warnings.txt`,
    ];
    // Tracing itself (--trace-events-enabled) stays out of the parent: Node's trace buffer crashes it now and then
    // (SIGSEGV in NodeTraceBuffer::AddTraceEvent, seen on 20.20); the filter test below shows the flag is dropped.
    const nodeOptions = `${process.env.NODE_OPTIONS ?? ''} --inspect=127.0.0.1:0 "--heap-prof" --heap-prof-dir "${dir}" --trace-event-file-pattern "${dir}/trace-\${pid}.log" --max-old-space-size=200`;
    const res = spawnSync(process.execPath, [...process.execArgv, ...risky, fixturePath('flags-parent.ts'), dir], {
      env: { ...process.env, NODE_OPTIONS: nodeOptions, NODE_REDIRECT_WARNINGS: `${dir}/warnings.txt` }, encoding: 'utf8',
    });
    t.equal(res.status, 0, 'the parent ran', { stderr: res.stderr, signal: res.signal });
    const out = JSON.parse(res.stdout);
    t.same(out.seen.listening, [], 'nothing listens in the child\'s net namespace');
    t.same(out.written, [], 'no report, profile, snapshot or warnings file');
    t.same(out.signalled, { code: null, signal: 'SIGUSR2' }, 'the report signal just ends the child');
    t.equal(out.seen.redirect, null);
    t.notMatch(out.seen.nodeOptions, /inspect|heap-prof|trace-event|--\S*dir/);
    t.match(out.seen.nodeOptions, /max-old-space-size=200/, 'harmless options stay');
    t.notMatch(out.seen.execArgv.join(' '), /report|heapsnapshot|diagnostic|prof|redirect/);
    t.equal(out.seen.execArgv.includes('--disable-sigusr1'), process.allowedNodeEnvironmentFlags.has('--disable-sigusr1'));
  });

  t.test('NODE_OPTIONS is parsed as Node parses it and filtered flag by flag', async (t) => {
    t.same(parseNodeOptions('"a\\'), ['a'], 'a trailing backslash in a string');
    t.same(parseNodeOptions('  --a  "--b=x y" "q\\"\\\\" --c\\d "" "unterminated'), ['--a', '--b=x y', 'q"\\', '--c\\d', 'unterminated']);
    const args = ['--import', 'file:///a b.mjs', '--inspect-port', '9229', '--require=./r.js', '--max_old_space_size=64', '--no-warnings',
      '--no-inspect', '-r', 'x', '--watch-path', 'src', '--experimental-network-inspection', '--enable-source-maps', '--trace-events-enabled',
      '--trace-event-categories', 'v8', 'stray'];
    const dropped: string[] = [];
    t.same(filterFlags(args, dropped), ['--import', 'file:///a b.mjs', '--require=./r.js', '--max_old_space_size=64', '--no-warnings', '-r', 'x', '--enable-source-maps']);
    t.same(dropped, ['--inspect-port', '9229', '--no-inspect', '--watch-path', 'src', '--experimental-network-inspection', '--trace-events-enabled',
      '--trace-event-categories', 'v8', 'stray']);
    t.same(parseNodeOptions(formatNodeOptions(args)), args, 'formatting round-trips');
    const env = sanitizeChildEnv({ NODE_OPTIONS: '--import "file:///a b.mjs" --cpu-prof --cpu-prof-dir /tmp', NODE_COMPILE_CACHE: '.', KEEP: '1' });
    t.same(env, { NODE_OPTIONS: '"--import" "file:///a b.mjs"', KEEP: '1' });
    t.same(sanitizeChildEnv({ NODE_OPTIONS: '--no-deprecation' }), { NODE_OPTIONS: '--no-deprecation' }, 'left alone when nothing is dropped');
  });

  t.test('the library reads nothing lazily from the target: a FIFO at its /etc/localtime, DEBUG=gons:*', { skip: needsRoot }, async (t) => {
    // A plain Node in a minimal environment: tap's (TZ, colors for debug) would keep Node from reading /etc/localtime.
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
    const res = spawnSync(process.execPath, [fixturePath('tz-main.cjs')], { env, encoding: 'utf8' });
    t.equal(res.status, 0, 'the program ran', { stderr: res.stderr });
    t.equal(JSON.parse(res.stdout), 'done');
  });

  t.test('an action cannot load modules from the target\'s filesystem (this TypeScript program)', { skip: needsRoot }, async (t) => {
    const dir = t.testdir({});
    const ns = await createNamespaces(t, ['mnt'], { files: { [`${dir}/evil.cjs`]: 'module.exports = "code from the target";' } });
    for (const how of ['require', 'import']) {
      t.match(await runReexecAction('load', { namespaces: ns.namespaces(), param: { how, path: `${dir}/evil.cjs` } }), {
        builtin: 'linux', code: 'ERR_GONS_LOAD_REFUSED', message: /refused to load module/,
      }, how);
    }
    t.match(await runReexecAction('load', { param: { how: 'require', path: `${dir}/missing.cjs` } }), { code: 'MODULE_NOT_FOUND' }, 'not refused off the target root');
  });

  t.test('an action cannot load modules from the target\'s filesystem, in CommonJS and ESM programs', { skip: needsRoot }, async (t) => {
    // An empty directory here, covered in the target by a tmpfs that holds the modules.
    const dir = t.testdir({});
    const files = { [`${dir}/evil.cjs`]: 'module.exports = "code from the target";', [`${dir}/evil.mjs`]: 'export default "code from the target";' };
    const loads = [['require', `${dir}/evil.cjs`], ['import', `${dir}/evil.mjs`], ['import', `${dir}/evil.cjs`]];
    for (const main of ['load-main.cjs', 'load-main.mjs']) {
      const res = spawnSync(process.execPath, [fixturePath(main), JSON.stringify(files), JSON.stringify(loads)], { encoding: 'utf8' });
      t.equal(res.status, 0, main, { stderr: res.stderr });
      const out = JSON.parse(res.stdout);
      for (const [how, path] of loads) {
        t.match(out[`${how} ${path}`], {
          builtin: 'linux', code: 'ERR_GONS_LOAD_REFUSED',
          message: new RegExp(`refused to load module "${path}" while on the target's root.*load it at the top level of the module`),
        }, `${main}: ${how} ${path}`);
      }
    }
  });
});
