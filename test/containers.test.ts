/**
 * `target: { container, engine }` against an engine API served by the test on a unix socket (Node's http server):
 * each of the engine's answers that gons must handle, including a container whose init changes between the two
 * questions (the race the second question closes). Real processes stand for the containers' inits. The same calls
 * against real engines (runc, dockerd) are in engines.test.ts.
 */
import { once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { ContainerError, checkAction, createNamespacePool, openIn, openNamespaceWorker, runReexecAction } from '../reexec/index';
import { engineSocket } from '../lib/container';
import { createNamespaces } from '../testing/index';
import { asNobody, fixturePath, needsRoot } from './fixtures/helpers';
import './fixtures/actions';

type Answer = (req: IncomingMessage, res: ServerResponse) => void;
let engines = 0;

/** An engine API on a unix socket whose answers the test scripts, one function per request (the last repeats). */
async function fakeEngine(tt: { teardown(fn: () => unknown): void }, answers: Answer[]) {
  // A unix socket's path holds at most 107 bytes: not under tap's long fixture names.
  const dir = mkdtempSync('/tmp/gons-engine-');
  tt.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sock = join(dir, `engine-${++engines}.sock`);
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    (answers.length > 1 ? answers.shift()! : answers[0])(req, res);
  });
  server.listen(sock);
  await once(server, 'listening');
  tt.teardown(() => new Promise((r) => server.close(r)));
  return { sock, seen };
}

const json = (status: number, body: unknown): Answer => (_req, res) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
};
const running = (pid: number) => json(200, { Id: 'abc', State: { Running: true, Pid: pid } });

void checkAction().then(() => {
  t.test('a container by name: resolved through the engine, joined by pidfd', { skip: needsRoot }, async (t) => {
    const ns = await createNamespaces(t, ['uts'], { hostname: 'by-name' });
    const engine = await fakeEngine(t, [running(ns.pid)]);
    const target = { container: 'web-1', engine: engine.sock, types: ['uts' as const] };
    const worker = await openNamespaceWorker({ target });
    t.teardown(() => worker.close());
    t.equal(worker.targetPid, ns.pid);
    t.same(engine.seen, ['GET /containers/web-1/json', 'GET /containers/web-1/json'], 'asked twice: before and after the pidfd');
    const fh = await openIn({ target: { container: 'web-1', engine: engine.sock } }, '/etc/hostname');
    t.ok((await fh.readFile('utf8')).length > 0);
    await fh.close();
    const pool = createNamespacePool({ max: 1 });
    t.teardown(() => pool.close());
    t.equal(await pool.run({ target }, 'echo', 7), 7);
    await t.rejects(pool.run({ target, namespaces: [] } as never, 'echo', 1), { code: 'ERR_INVALID_ARG_VALUE' }, 'a pool where with a container and more');
  });

  t.test("the engine's answers, each its own error", async (t) => {
    const target = (engine: string, container = 'db') => ({ target: { container, engine } });
    const cases: Array<[string, Answer[], Record<string, unknown>]> = [
      ['404', [json(404, { message: 'No such container: db' })], { code: 'ERR_GONS_NO_SUCH_CONTAINER', statusCode: 404, message: /No such container: db/ }],
      ['500', [json(500, { message: 'boom' })], { code: 'ERR_GONS_ENGINE_API', statusCode: 500, message: /answered HTTP 500: boom/ }],
      ['not JSON', [json(200, 'not json')], { code: 'ERR_GONS_ENGINE_API', message: /without State\.Running and State\.Pid/ }],
      ['no State', [json(200, { Id: 'x' })], { code: 'ERR_GONS_ENGINE_API' }],
      ['stopped', [json(200, { State: { Running: false, Pid: 0 } })], { code: 'ERR_GONS_CONTAINER_NOT_RUNNING', message: /container "db" is not running/ }],
      ['running with pid 0', [json(200, { State: { Running: true, Pid: 0 } })], { code: 'ERR_GONS_CONTAINER_NOT_RUNNING' }],
      ['a pid that does not exist', [running(2 ** 22 + 1)], { code: 'ERR_GONS_CONTAINER_NOT_RUNNING' }],
      ['stopped between the two questions', [running(process.pid), json(200, { State: { Running: false, Pid: 0 } })], { code: 'ERR_GONS_CONTAINER_NOT_RUNNING' }],
      ['another init by the second question', [running(process.pid), running(1)], { code: 'ERR_GONS_CONTAINER_NOT_RUNNING' }],
      ['an answer too large', [(_req, res) => {
        res.writeHead(200);
        const chunk = Buffer.alloc(1 << 20, 0x20);
        for (let i = 0; i < 9; i++) res.write(chunk);
        res.end();
      }], { code: 'ERR_GONS_ENGINE_API', message: /answered more than/ }],
      ['a connection closed without an answer', [(req) => req.socket.destroy()], { code: 'ERR_GONS_ENGINE_API', message: /cannot talk to the engine/ }],
    ];
    for (const [name, answers, expected] of cases) {
      const engine = await fakeEngine(t, answers);
      await t.rejects(runReexecAction('mark', target(engine.sock)), { name: 'ContainerError', container: 'db', socketPath: engine.sock, ...expected }, name);
    }
    // Where no engine listens (in a short directory: a unix socket's path has room for 107 bytes).
    const nowhere = mkdtempSync('/tmp/gons-engine-');
    t.teardown(() => rmSync(nowhere, { recursive: true, force: true }));
    const err = await runReexecAction('mark', target(join(nowhere, 'none.sock'))).catch((e) => e);
    t.type(err, ContainerError);
    t.match(err, { code: 'ERR_GONS_ENGINE_UNAVAILABLE', message: /no container engine listens on .*none\.sock \(ENOENT\)/ });
    await t.rejects(runReexecAction('mark', target('/etc/hostname')), { code: 'ERR_GONS_ENGINE_UNAVAILABLE' }, 'a file that is no socket');
    await t.rejects(runReexecAction('mark', target(`/tmp/${'x'.repeat(108)}.sock`)), { code: 'ERR_INVALID_ARG_VALUE', message: /at most 107 bytes/ }, 'a socket path too long for a unix socket');
    await t.rejects(runReexecAction('mark', { target: { container: 'db', engine: 'docker' }, signal: AbortSignal.abort() }), { name: 'AbortError' }, 'aborted before asking');
  });

  t.test('container targets are checked before the engine is asked', async (t) => {
    const bad: Array<[string, unknown, string, RegExp]> = [
      ['a name with a space', { container: 'my app' }, 'ERR_INVALID_ARG_VALUE', /target\.container "my app" is no container name or id/],
      ['a name with a slash', { container: '../etc' }, 'ERR_INVALID_ARG_VALUE', /is no container name/],
      ['an empty name', { container: '' }, 'ERR_INVALID_ARG_VALUE', /is no container name/],
      ['a name not a string', { container: 42 }, 'ERR_INVALID_ARG_TYPE', /target\.container must be a container's name or id, not number/],
      ['a relative socket', { container: 'db', engine: 'docker.sock' }, 'ERR_INVALID_ARG_VALUE', /target\.engine must be 'docker', 'podman' or the absolute path/],
      ['an unknown engine', { container: 'db', engine: 'containerd' }, 'ERR_INVALID_ARG_VALUE', /target\.engine/],
      ['a pid too', { container: 'db', pid: 1 }, 'ERR_INVALID_ARG_VALUE', /unknown target option key "pid"/],
      ['bad types', { container: 'db', types: ['nett'] }, 'ERR_INVALID_ARG_VALUE', /target\.types/],
    ];
    for (const [name, target, code, message] of bad) {
      await t.rejects(runReexecAction('mark', { target: target as never }), { code, message }, name);
      await t.rejects(openNamespaceWorker({ target: target as never }), { code }, `${name} (worker)`);
      await t.rejects(createNamespacePool().run({ target: target as never }, 'echo'), { code }, `${name} (pool)`);
    }
  });

  t.test("the engines' default sockets", async (t) => {
    t.equal(engineSocket(), '/var/run/docker.sock');
    t.equal(engineSocket('docker'), '/var/run/docker.sock');
    t.equal(engineSocket('/x/y.sock'), '/x/y.sock');
    t.equal(engineSocket('podman'), process.geteuid!() === 0 ? '/run/podman/podman.sock' : `${process.env.XDG_RUNTIME_DIR || `/run/user/${process.geteuid!()}`}/podman/podman.sock`);
  });

  t.test('a socket that refuses us: permission denied, with what to do', { skip: needsRoot }, async (t) => {
    const engine = await fakeEngine(t, [running(1)]);
    chmodSync(engine.sock, 0o600);
    const res = asNobody(process.execPath, [...process.execArgv, fixturePath('engine-permission.ts'), engine.sock]);
    t.equal(res.status, 0, 'the fixture ran', { stderr: res.stderr });
    t.match(JSON.parse(res.stdout), {
      code: 'ERR_GONS_ENGINE_PERMISSION', message: /permission denied on the engine socket .*: run as root or as a member of its group/,
      // podman's socket for a user who is not root: its rootless one.
      podman: '/run/user/65534/podman/podman.sock', fallback: '/run/user/65534/podman/podman.sock',
    });
  });
});
