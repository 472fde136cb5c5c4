/**
 * Real container engines (issue #24): runc 1.1 (rootful, with a user namespace, and rootless as nobody) and dockerd
 * 20.10, as Debian packages them (scripts/ci-engines.sh installs them in CI), with containers made by the test from a
 * busybox root filesystem. Containers by name, a worker that ends with its container, the README's calls
 * (`runReexecAction`, workers, pools, `connectIn`/`listenIn`/`openIn`) and the defects of the issue. Everything started
 * is stopped by pid and removed; the containers have no network but their own loopback.
 *
 * Slow (an engine start, image import, containers): the test matrix runs it once, on the machine's Node line
 * (GONS_ENGINE_TESTS=skip elsewhere). Skipped with the reason where an engine is missing or cannot start.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, closeSync, copyFileSync, existsSync, openSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import t, { type Test } from 'tap';
import { listNamespaces } from '../lib/index';
import {
  ContainerError, checkAction, connectIn, createNamespacePool, listenIn, openIn, openNamespaceWorker, register, runReexecAction,
} from '../reexec/index';
import { asNobody, eventually, fixturePath, gone, isRoot } from './fixtures/helpers';
import { LONG } from './fixtures/waits';

register('probe', () => ({ hostname: hostname(), etc: readFileSync('/etc/hostname', 'utf8').trim(), uid: process.getuid!(), pid: process.pid }));
// Never settles (the container's filesystem is the action's: no file on the host can say it started; a call still
// pending in the parent is failed the same way).
register('hang', () => {
  setInterval(() => {}, 1000);
  return new Promise(() => {});
});
register('echo', (p: unknown) => p);
// /proc/self/net/dev lists the interfaces of the reader's network namespace (the README's visit example).
register('interfaces', () => readFileSync('/proc/self/net/dev', 'utf8').split('\n').slice(2).map((line) => line.split(':')[0].trim()).filter(Boolean));

t.setTimeout(600_000);

/** The first of these that exists. */
function which(...paths: string[]): string | undefined {
  return paths.find((p) => existsSync(p));
}
const runc = which('/usr/sbin/runc', '/usr/bin/runc');
const dockerd = which('/usr/sbin/dockerd', '/usr/bin/dockerd');
// Debian's client, matched to its dockerd (another docker in PATH may be of another release).
const dockerCli = which('/usr/bin/docker');
const busybox = which('/bin/busybox', '/usr/bin/busybox');

const skipAll = process.env.GONS_ENGINE_TESTS === 'skip' ? 'engine tests run once, on the machine\'s Node line (GONS_ENGINE_TESTS=skip)'
  : !isRoot ? 'needs root: starts runc and dockerd'
    : !busybox || !/not a dynamic/.test(spawnSync('ldd', [busybox], { encoding: 'utf8' }).stdout + spawnSync('ldd', [busybox], { encoding: 'utf8' }).stderr)
      ? 'needs busybox-static (scripts/ci-engines.sh installs it)' : false;

/** A busybox root filesystem: one static binary and its applets' links, a hostname file. */
function makeRootfs(dir: string, name: string): string {
  for (const d of ['bin', 'proc', 'sys', 'dev', 'etc', 'tmp']) mkdirSync(join(dir, d), { recursive: true, mode: 0o755 });
  copyFileSync(busybox!, join(dir, 'bin', 'busybox'));
  chmodSync(join(dir, 'bin', 'busybox'), 0o755);
  execFileSync('chroot', [dir, '/bin/busybox', '--install', '-s', '/bin']);
  writeFileSync(join(dir, 'etc', 'hostname'), `${name}\n`);
  return dir;
}

/** A runc bundle from `runc spec` (`--rootless` for nobody's), running `sleep`, with a hostname of its own. */
function makeBundle(dir: string, name: string, opts: { userns?: boolean; rootless?: boolean } = {}): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  makeRootfs(join(dir, 'rootfs'), name);
  execFileSync(runc!, ['spec', ...(opts.rootless ? ['--rootless'] : [])], { cwd: dir });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  config.process.terminal = false;
  config.process.args = ['sleep', '3600'];
  config.hostname = name;
  const nss: Array<{ type: string }> = config.linux.namespaces;
  if (opts.userns && !nss.some((n) => n.type === 'user')) nss.push({ type: 'user' });
  if (opts.userns) {
    config.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    config.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    execFileSync('chown', ['-R', '100000:100000', join(dir, 'rootfs')]);
  }
  if (opts.rootless) {
    config.linux.uidMappings = [{ containerID: 0, hostID: 65534, size: 1 }];
    config.linux.gidMappings = [{ containerID: 0, hostID: 65534, size: 1 }];
    execFileSync('chown', ['-R', '65534:65534', dir]);
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
}

const asNobodyArgs = ['--reuid=65534', '--regid=65534', '--clear-groups'];

/** Starts a runc container; resolves to its init's pid. Its teardown kills and deletes it. */
async function runcContainer(tt: Test, work: string, id: string, opts: { userns?: boolean; rootless?: boolean } = {}): Promise<number> {
  const bundle = join(work, id);
  const state = join(work, `${id}-state`);
  makeBundle(bundle, id, opts);
  mkdirSync(state, { mode: 0o700 });
  if (opts.rootless) execFileSync('chown', ['65534:65534', state]);
  const argv = [runc!, '--root', state, 'run', '-d', '--pid-file', join(state, 'pid'), '-b', bundle, id];
  const cmd = opts.rootless ? ['setpriv', ...asNobodyArgs, 'env', `XDG_RUNTIME_DIR=${state}`, ...argv] : argv;
  // The container inherits runc's stdio: a pipe would stay open as long as it runs. Its errors go to a file.
  const errFile = join(work, `${id}.err`);
  const errFd = openSync(errFile, 'w');
  const res = spawnSync(cmd[0], cmd.slice(1), { stdio: ['ignore', 'ignore', errFd], timeout: LONG });
  closeSync(errFd);
  tt.teardown(() => {
    const del = [runc!, '--root', state, 'delete', '-f', id];
    const c = opts.rootless ? ['setpriv', ...asNobodyArgs, 'env', `XDG_RUNTIME_DIR=${state}`, ...del] : del;
    spawnSync(c[0], c.slice(1), { stdio: 'ignore', timeout: LONG });
  });
  if (res.status !== 0) throw new Error(`runc run ${id} failed (${res.status}): ${readFileSync(errFile, 'utf8')}`);
  return Number(readFileSync(join(state, 'pid'), 'utf8'));
}

/** A dockerd of the test's own: its sockets, state and logs under `dir`; stopped by pid and removed by the teardown. */
async function startDockerd(tt: Test, dir: string): Promise<{ sock: string; docker(...args: string[]): string } | string> {
  const sock = join(dir, 'docker.sock');
  const pidfile = join(dir, 'dockerd.pid');
  const log = join(dir, 'dockerd.log');
  // Its output goes to a file: dockerd writes a lot, and a pipe nobody reads would stall it.
  const logFd = openSync(log, 'w');
  // Should this test die before its teardown, dockerd (and the containerd it runs) dies with it.
  const out = spawn('setpriv', ['--pdeathsig', 'KILL', '--', dockerd!,
    '--bridge=none', '--iptables=false', '--ip6tables=false', '--storage-driver=vfs',
    `--data-root=${join(dir, 'data')}`, `--exec-root=${join(dir, 'exec')}`, '-H', `unix://${sock}`, `--pidfile=${pidfile}`,
  ], { stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  const exited = once(out, 'exit');
  tt.teardown(async () => {
    if (out.exitCode === null && out.signalCode === null) {
      out.kill('SIGTERM');
      const bound = setTimeout(() => out.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(bound);
    }
    // dockerd unmounts what it mounted as it stops; whatever is left under its roots is unmounted here.
    const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1]).filter((m) => m?.startsWith(dir)).reverse();
    for (const m of mounts) spawnSync('umount', ['-l', m]);
  });
  const docker = (...args: string[]) => execFileSync(dockerCli!, ['-H', `unix://${sock}`, ...args], { encoding: 'utf8', timeout: LONG }).trim();
  try {
    await eventually(() => {
      if (out.exitCode !== null) return; // reported below
      docker('version', '--format', '{{.Server.Version}}');
    }, 60_000);
  } catch (err) {
    return `dockerd did not come up: ${(err as Error).message.split('\n')[0]}; its log: ${readFileSync(log, 'utf8').slice(-2000)}`;
  }
  if (out.exitCode !== null) return `dockerd exited with ${out.exitCode}`;
  return { sock, docker };
}

void checkAction().then(() => {
  t.test('container engines', { skip: skipAll }, async (t) => {
    const work = mkdtempSync('/tmp/gons-engines-');
    chmodSync(work, 0o755); // the containers' roots, reachable by their users
    t.teardown(() => rmSync(work, { recursive: true, force: true }));
    const started = performance.now();
    t.teardown(() => t.comment(`engine tests: ${Math.round(performance.now() - started)} ms`));

    await t.test('runc, rootful: a target by pid, a worker that ends with its container', { skip: runc ? false : 'needs runc (scripts/ci-engines.sh installs it)' }, async (t) => {
      const pid = await runcContainer(t, work, 'gons-rootful');
      t.match(await runReexecAction('probe', { target: { pid } }), { hostname: 'gons-rootful', etc: 'gons-rootful', uid: 0 });
      const worker = await openNamespaceWorker({ target: { pid } });
      t.match(await worker.run('probe'), { hostname: 'gons-rootful' });
      const stuck = worker.run('hang');
      const exit = once(worker, 'exit');
      execFileSync(runc!, ['--root', join(work, 'gons-rootful-state'), 'kill', 'gons-rootful', 'KILL']);
      t.same((await exit).slice(2), ['target-exited'], "the worker's 'exit' says its target exited");
      await t.rejects(stuck, { code: 'ERR_GONS_TARGET_EXITED' });
      await gone(worker.pid, LONG);
    });

    await t.test('runc with a user namespace: the child is the container\'s root (host uid 100000) before Node loads', { skip: runc ? false : 'needs runc' }, async (t) => {
      const pid = await runcContainer(t, work, 'gons-userns', { userns: true });
      // A program in a directory uid 100000 cannot search is refused before anything is spawned.
      const hidden = mkdtempSync(join(work, 'hidden-'));
      chmodSync(hidden, 0o700);
      const entry = join(hidden, 'main.js');
      writeFileSync(entry, '');
      await t.rejects(runReexecAction('probe', { target: { pid }, entry }), {
        code: 'ERR_GONS_PROGRAM_UNREADABLE', path: hidden, uid: 100000, gid: 100000,
        message: new RegExp(`joining the user namespace of process ${pid} makes the child its root, host uid 100000 \\(gid 100000\\), before Node loads the program, and "${hidden}" is a directory it cannot search`),
      });
      // Without the user namespace the child stays root on the host.
      t.match(await runReexecAction('probe', { target: { pid, types: ['uts', 'mnt', 'ipc'] }, entry: process.argv[1] }), { hostname: 'gons-userns', uid: 0 });
      // This checkout: readable by others (then the call works) or not (a 0700 clone: then the same clear error).
      const unreadable = ancestorsOf(process.argv[1]).find((p) => (statSync(p).mode & (p === process.argv[1] ? 0o4 : 0o1)) === 0);
      if (unreadable) {
        await t.rejects(runReexecAction('probe', { target: { pid } }), { code: 'ERR_GONS_PROGRAM_UNREADABLE' }, `the checkout is not readable by others (${unreadable})`);
      } else {
        t.match(await runReexecAction('probe', { target: { pid } }), { hostname: 'gons-userns', uid: 0 }, 'the container\'s root, as it sees itself');
      }
    });

    await t.test('runc rootless, as nobody: [uts, user] works as [user, uts] does', { skip: runc ? false : 'needs runc' }, async (t) => {
      const pid = await runcContainer(t, work, 'gons-rootless', { rootless: true });
      const res = asNobody(process.execPath, [...process.execArgv, fixturePath('engines-nobody.ts'), String(pid)]);
      t.equal(res.status, 0, 'the fixture ran', { stderr: res.stderr });
      const out = JSON.parse(res.stdout);
      t.match(out['uts,user'], { hostname: 'gons-rootless', uid: 0 }, 'uts before user: the hook joined user first, as nsenter');
      t.match(out['user,uts'], { hostname: 'gons-rootless', uid: 0 });
      t.match(out.uts, { code: 'EPERM', message: /include 'user' in target\.types or namespaces/ }, 'uts alone: EPERM, and the hint says what to do');
      t.match(out.target, { hostname: 'gons-rootless' });
      t.match(out.worker, { hostname: 'gons-rootless' });
    });

    await t.test('dockerd: containers by name', { skip: dockerd && dockerCli ? false : 'needs docker.io (scripts/ci-engines.sh installs it)' }, async (t) => {
      const dir = join(work, 'docker');
      mkdirSync(dir, { mode: 0o700 });
      const d = await startDockerd(t, dir);
      if (typeof d === 'string') return void t.comment(`skip: ${d}`);
      const engine = d.sock;
      const rootfs = makeRootfs(join(work, 'image-rootfs'), 'from-the-image');
      execFileSync('sh', ['-c', `tar -C "${rootfs}" -c . | "${dockerCli}" -H "unix://${d.sock}" import - gons-busybox:test`], { timeout: LONG });
      const run = (name: string) => d.docker('run', '-d', '--network', 'none', '--name', name, '--hostname', name, 'gons-busybox:test', 'sleep', '3600');
      run('gons-a');
      run('gons-b');
      const target = (container: string) => ({ container, engine });

      // runReexecAction, by name and by id.
      t.match(await runReexecAction('probe', { target: target('gons-a') }), { hostname: 'gons-a', uid: 0 });
      const id = d.docker('inspect', '-f', '{{.Id}}', 'gons-b');
      t.match(await runReexecAction('probe', { target: target(id.slice(0, 12)) }), { hostname: 'gons-b' }, 'by a short id');

      // A worker: its start and calls, measured.
      const t0 = performance.now();
      const worker = await openNamespaceWorker({ target: target('gons-a') });
      const startMs = performance.now() - t0;
      const times: number[] = [];
      for (let i = 0; i < 200; i++) {
        const s = performance.now();
        await worker.run('echo', i);
        times.push(performance.now() - s);
      }
      times.sort((a, b) => a - b);
      t.comment(`docker worker: start ${startMs.toFixed(0)} ms, calls p50 ${times[100].toFixed(3)} ms, p99 ${times[198].toFixed(3)} ms`);
      t.equal(worker.targetPid, Number(d.docker('inspect', '-f', '{{.State.Pid}}', 'gons-a')));

      // Handles from inside the container: a server on its loopback, a connection to it, a file.
      const server = await listenIn({ target: target('gons-a') }, { host: '127.0.0.1', port: 0 });
      t.teardown(() => server.close());
      server.on('connection', (s) => s.end('hello from the container\'s loopback'));
      const { port } = server.address() as { port: number };
      const sock = await connectIn(worker, { host: '127.0.0.1', port });
      const chunks: Buffer[] = [];
      for await (const c of sock) chunks.push(c as Buffer);
      t.equal(Buffer.concat(chunks).toString(), 'hello from the container\'s loopback');
      const fh = await openIn({ target: target('gons-b') }, '/etc/hostname');
      t.equal((await fh.readFile('utf8')).trim(), 'gons-b');
      await fh.close();

      // A pool over both, by name.
      const pool = createNamespacePool({ max: 2 });
      t.teardown(() => pool.close());
      const exits: Array<{ reason: string }> = [];
      pool.on('workerExit', (e: { reason: string }) => exits.push(e));
      t.same((await Promise.all(['gons-a', 'gons-b', 'gons-a'].map((n) => pool.run<{ hostname: string }>({ target: target(n) }, 'probe')))).map((p) => p.hostname),
        ['gons-a', 'gons-b', 'gons-a']);

      // The README's visit of every container: listNamespaces finds the container's network namespace (and Docker's
      // bind mount of it under its exec root), and the pool visits it: loopback only, as --network none makes it.
      const netIno = statSync(`/proc/${worker.targetPid}/ns/net`).ino;
      const net = listNamespaces('net').find((n) => n.ino === netIno);
      t.ok(net, "listNamespaces finds the container's network namespace");
      t.ok(net?.mounts.some((m) => m.startsWith(join(dir, 'exec'))), "and Docker's bind mount of it under its exec root", { mounts: net?.mounts });
      const visit = createNamespacePool({ max: 1 });
      t.same(await visit.run({ namespaces: [net!.namespace] }, 'interfaces'), ['lo'], 'a pool visits it by path');
      await visit.close();

      // docker stop: the worker and the pool's worker end with their container.
      const stuck = worker.run('hang');
      const exit = once(worker, 'exit');
      d.docker('stop', '-t', '0', 'gons-a');
      t.same((await exit).slice(2), ['target-exited']);
      await t.rejects(stuck, { code: 'ERR_GONS_TARGET_EXITED' });
      await eventually(() => {
        if (!exits.some((e) => e.reason === 'target-exited')) throw new Error('no target-exited yet');
      }, LONG);
      t.equal(pool.size, 1, 'the pool evicted the stopped container\'s worker');

      // Errors, typed.
      await t.rejects(runReexecAction('probe', { target: target('gons-a') }), { name: 'ContainerError', code: 'ERR_GONS_CONTAINER_NOT_RUNNING', container: 'gons-a' });
      await t.rejects(runReexecAction('probe', { target: target('no-such-container') }), { code: 'ERR_GONS_NO_SUCH_CONTAINER', statusCode: 404 });
      await t.rejects(runReexecAction('probe', { target: { container: 'x', engine: join(dir, 'nothing.sock') } }), { code: 'ERR_GONS_ENGINE_UNAVAILABLE' });
      await t.rejects(runReexecAction('probe', { target: { container: 'x', engine: '/etc/hostname' } }), { code: 'ERR_GONS_ENGINE_UNAVAILABLE' }, 'not a socket');
      await t.rejects(pool.run({ target: target('gons-a') }, 'probe'), { code: 'ERR_GONS_CONTAINER_NOT_RUNNING' }, 'the pool says so too');
      t.type(await runReexecAction('probe', { target: target('gons-a') }).catch((e) => e), ContainerError);
      d.docker('rm', '-f', 'gons-a', 'gons-b');
      await eventually(() => {
        if (pool.size !== 0) throw new Error(`${pool.size} workers left`);
      }, LONG);
      t.equal(exits.filter((e) => e.reason === 'target-exited').length, 2, 'gons-b\'s worker ended with its container too');
    });
  });
});

function ancestorsOf(path: string): string[] {
  const out = [path];
  for (let d = dirname(path); ; d = dirname(d)) {
    out.push(d);
    if (dirname(d) === d) return out;
  }
}
