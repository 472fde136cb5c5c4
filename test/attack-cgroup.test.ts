/**
 * Issue 22, item 1 — device nodes: a container (real root, Docker's default
 * capability set, a v1 device cgroup with Docker's default allow list) plants
 * a block device node whose major:minor is a "host disk" (a loop device
 * backed by a temporary file: never a real disk). The container cannot open
 * it; a gons child that stayed in the host program's cgroup could. Every
 * child joins the target's cgroups before anything else, so its plain
 * readFileSync/writeFileSync of that node fail with EPERM — one-shot calls,
 * workers and pools, with and without `confine`. The controls opt out with
 * `cgroups: false` and read the disk: this is what the test would see
 * without the join. Also: a confined child cannot create a user namespace.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { seccompValue } from '../lib/confine';
import { addon } from '../lib/native';
import { checkAction, createNamespacePool, openNamespaceWorker, runReexecAction } from '../reexec/index';
import './fixtures/attack/actions';
import { Lines, type Tools, buildTools, createContainer, madeCgroup, missingTools } from './fixtures/attack/target';
import { fixturePath, needsRoot } from './fixtures/helpers';

const DEVICES = '/sys/fs/cgroup/devices';
/** Docker's default device allow list (after denying all). */
const DOCKER_ALLOW = ['c *:* m', 'b *:* m', 'c 1:3 rwm', 'c 1:5 rwm', 'c 1:7 rwm', 'c 1:8 rwm', 'c 1:9 rwm', 'c 5:0 rwm', 'c 5:1 rwm',
  'c 5:2 rwm', 'c 136:* rwm', 'c 10:200 rwm'];
const MARKER = 'GONS-HOST-DISK-0';
const DOCKER_DROP = ['setpriv', '--bounding-set', '-sys_ptrace,-sys_admin', '--inh-caps', '-sys_ptrace,-sys_admin', '--'];

function skipReason(): string | false {
  if (needsRoot) return needsRoot;
  const missing = missingTools();
  if (missing) return missing;
  if (!existsSync(`${DEVICES}/devices.deny`)) return 'needs a cgroup v1 devices hierarchy at /sys/fs/cgroup/devices';
  if (spawnSync('sh', ['-c', 'command -v losetup && test -e /dev/loop-control']).status !== 0) return 'needs losetup and /dev/loop-control';
  return false;
}

interface DeviceIo { read: string; write: string }

void checkAction().then(() => {
  t.setTimeout(30 * 60 * 1000);
  t.test('a container\'s planted device node, its device cgroup and the gons child', { skip: skipReason() }, async (t) => {
    const tools: Tools = buildTools(t);
    // The "host disk": a loop device on a temporary file, detached at teardown.
    const diskDir = mkdtempSync(join(tmpdir(), 'gons-disk-'));
    const backing = join(diskDir, 'disk.img');
    writeFileSync(backing, Buffer.concat([Buffer.from(MARKER), Buffer.alloc((1 << 20) - MARKER.length)]));
    const loop = execFileSync('losetup', ['-f', '--show', backing], { encoding: 'utf8' }).trim();
    t.teardown(() => {
      spawnSync('losetup', ['-d', loop]);
      rmSync(diskDir, { recursive: true, force: true });
    });
    const [major, minor] = readFileSync(`/sys/class/block/${loop.replace('/dev/', '')}/dev`, 'utf8').trim().split(':');

    const c = await createContainer(t, tools, { userns: false });
    const cg = `${DEVICES}/gons-test-${process.pid}-${c.pid}`;
    madeCgroup(t, cg, () => c.close()); // the container's processes leave the cgroup as they die
    writeFileSync(`${cg}/devices.deny`, 'a');
    for (const rule of DOCKER_ALLOW) writeFileSync(`${cg}/devices.allow`, rule);
    writeFileSync(`${cg}/cgroup.procs`, String(c.pid));
    c.runSync(['mknod', '/tmp/disk', 'b', major, minor]);
    c.runSync(['chmod', '666', '/tmp/disk']);
    const target = { pid: c.pid };
    const param = { path: '/tmp/disk', marker: 'GONS-WROTE-HERE!' };
    const diskHead = () => readFileSync(backing).subarray(0, MARKER.length).toString('latin1');

    t.test('the container itself cannot open the node (its device cgroup)', async (t) => {
      const r = spawnSync('sh', ['-c', `echo $$ > ${cg}/cgroup.procs && exec nsenter -t ${c.pid} -a -- ${DOCKER_DROP.join(' ')} head -c 16 /tmp/disk`], { encoding: 'utf8' });
      t.not(r.status, 0, 'head fails');
      t.match(r.stderr, /Operation not permitted/);
    });

    t.test('control: a child that opts out (cgroups: false) reads and writes the host disk', async (t) => {
      const r = await runReexecAction<DeviceIo>('device-io', { target, cgroups: false, param: { ...param, marker: MARKER }, timeout: 120000 });
      t.equal(r.read, `ok:${MARKER}`, 'without the join the child reads the disk');
      t.equal(r.write, 'ok:written', 'and writes it');
    });

    for (const confine of [false, true]) {
      const how = confine ? 'confined' : 'unconfined';
      t.test(`one-shot, ${how}: EPERM`, async (t) => {
        const r = await runReexecAction<DeviceIo>('device-io', { target, confine, param, timeout: 120000 });
        t.same(r, { read: 'EPERM', write: 'EPERM' });
        t.equal(diskHead(), MARKER, 'the disk is untouched');
      });
      t.test(`worker, ${how}: EPERM`, async (t) => {
        const w = await openNamespaceWorker({ target, confine, timeout: 120000 });
        t.teardown(() => w.close());
        t.same(await w.run<DeviceIo>('device-io', param), { read: 'EPERM', write: 'EPERM' });
        t.same(await w.run<DeviceIo>('device-io', param), { read: 'EPERM', write: 'EPERM' }, 'a second call too');
        t.equal(diskHead(), MARKER, 'the disk is untouched');
      });
    }

    t.test('pool: EPERM; a where that opts out is another worker', async (t) => {
      const pool = createNamespacePool({ max: 2 });
      t.teardown(() => pool.close());
      t.same(await pool.run<DeviceIo>({ target }, 'device-io', param), { read: 'EPERM', write: 'EPERM' });
      const control = await pool.run<DeviceIo>({ target, cgroups: false }, 'device-io', { ...param, marker: MARKER });
      t.equal(control.read, `ok:${MARKER}`, 'the opted-out worker reads the disk (what the pool would do without the join)');
      t.same(await pool.run<DeviceIo>({ target }, 'device-io', param), { read: 'EPERM', write: 'EPERM' }, 'the joined worker still refuses');
      t.equal(diskHead(), MARKER);
    });

    t.test('namespaces by path: the cgroups option joins the named cgroup, { pid } the target\'s', async (t) => {
      const namespaces = (['mnt', 'pid'] as const).map((type) => ({ type: `!${type}` as const, path: `/proc/${c.pid}/ns/${type}` }));
      const none = await runReexecAction<DeviceIo>('device-io', { namespaces, param: { ...param, marker: MARKER }, timeout: 120000 });
      t.equal(none.read, `ok:${MARKER}`, 'namespace paths alone join no cgroup: the device policy does not apply');
      t.same(await runReexecAction<DeviceIo>('device-io', { namespaces, cgroups: [cg], param, timeout: 120000 }), { read: 'EPERM', write: 'EPERM' });
      t.same(await runReexecAction<DeviceIo>('device-io', { namespaces, cgroups: { pid: c.pid }, param, timeout: 120000 }), { read: 'EPERM', write: 'EPERM' });
      t.equal(diskHead(), MARKER);
    });

    t.test('the child\'s cgroups (/proc/<pid>/cgroup on the host) equal the target\'s, every hierarchy', async (t) => {
      // The child is not in the container's pid namespace (joined late, for its children only): the container's
      // procfs has no /proc/self for it. Its pid is a host pid: the host's procfs shows its cgroups while it runs.
      for (const confine of [false, true]) {
        const r = await runReexecAction<{ self: string; init: string }>('cgroups', { target, confine, timeout: 120000 });
        t.equal(r.self, r.init, `${confine ? 'confined' : 'unconfined'}: the same lines`);
        t.equal(r.self, readFileSync(`/proc/${c.pid}/cgroup`, 'utf8'), 'as the host sees the target');
        t.match(r.self, new RegExp(`^\\d+:devices:/${cg.slice(DEVICES.length + 1)}$`, 'm'));
        // The child itself, as the host's procfs shows it (a program it runs inherits its cgroups, above).
        const w = await openNamespaceWorker({ target, confine, timeout: 120000 });
        t.teardown(() => w.close());
        t.equal(readFileSync(`/proc/${w.pid}/cgroup`, 'utf8'), readFileSync(`/proc/${c.pid}/cgroup`, 'utf8'), 'the worker itself');
        await w.close();
      }
    });

    t.test('a confined child takes the target\'s own seccomp filter too, and leaves the target running', async (t) => {
      const bin = join(tools.hostDir, 'filtered');
      execFileSync('cc', ['-O1', '-o', bin, fixturePath('filtered.c')]);
      const proc = new Lines(spawn(bin, [], { stdio: 'pipe' }));
      t.teardown(() => proc.end());
      await proc.waitFor((l) => l === `ready ${proc.proc.pid}`, 30000, 'filtered process ready');
      const filtered = { pid: proc.proc.pid! };
      const dir = join(tools.hostDir, 'made-by-child');
      t.equal(await runReexecAction('mkdir', { target: filtered, confine: true, param: dir, timeout: 120000 }), 'EPERM', 'confined: its mkdir is refused');
      t.equal(await runReexecAction('mkdir', { target: filtered, param: dir, timeout: 120000 }), 'ok:made', 'control: unconfined, mkdir works');
      // The filters are read by pid, the process stopped under ptrace: the plan's pidfd must still show that pid.
      // A pidfd of another process (what the pidfd of a target whose pid was reused shows: not this pid) fails closed.
      const hex = seccompValue(filtered.pid);
      t.match(hex, /^[0-9a-f]+$/, 'seccompValue with a pidfd of its own: the filter');
      const mine = addon.pidfdOpen(filtered.pid);
      if ('fd' in mine) {
        t.equal(seccompValue(filtered.pid, mine.fd), hex, 'with the plan\'s pidfd: the same filter');
        addon.closeFd(mine.fd);
      } else t.fail('pidfd_open');
      const other = addon.pidfdOpen(process.pid);
      if ('fd' in other) {
        t.same(addon.seccompFilters(filtered.pid, other.fd), { errno: 3, syscall: 'pidfd' }, 'another process\'s pidfd: ESRCH, nothing read');
        t.throws(() => seccompValue(filtered.pid, other.fd), { name: 'NamespaceSwitchError', code: 'ESRCH', envVar: 'gons_seccomp', syscall: 'pidfd' }, 'seccompValue fails closed');
        addon.closeFd(other.fd);
      } else t.fail('pidfd_open');
      const status = readFileSync(`/proc/${filtered.pid}/status`, 'utf8');
      t.match(status, /^TracerPid:\s+0$/m, 'no tracer left on the target');
      // Not left stopped: back to its wait on stdin (S). On a loaded machine it may still be running (R) a moment
      // after the detach, so wait for the sleep, bounded; a stopped process (T, t) would never get there.
      let state = '';
      for (const end = Date.now() + 30000; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) {
        state = /^State:\s+(\S)/m.exec(readFileSync(`/proc/${filtered.pid}/status`, 'utf8'))?.[1] ?? '';
        if (state === 'S' || state === 'T' || state === 't') break;
      }
      t.equal(state, 'S', 'the target is not left stopped');
      // A target someone traces already: the kernel hands its filter to nobody else; the child has gons's filter only.
      const traced = new Lines(spawn(bin, ['traced'], { stdio: 'pipe' }));
      t.teardown(() => traced.end());
      const tracedPid = Number((await traced.waitFor((l) => l.startsWith('ready '), 30000, 'traced filtered process ready')).split(' ')[1]);
      t.equal(await runReexecAction('mkdir', { target: { pid: tracedPid }, confine: true, param: dir, timeout: 120000 }), 'ok:made', 'residue: its filter is not copied');
      t.match(await runReexecAction('run-program', { target: { pid: tracedPid }, confine: true, param: ['unshare', '-U', 'true'], timeout: 120000 }), { stderr: /Operation not permitted/ }, 'gons\'s own filter still applies');
      // What the hook does with a gons_seccomp it cannot install: confinement fails, nothing runs.
      for (const bad of ['zz', '00', '0000000000000000', '0600000000000000,', 'ab'.repeat(8 * 4097)]) {
        const err = await runReexecAction('mkdir', { target: { pid: process.pid }, confine: true, env: { gons_seccomp: bad }, param: dir, timeout: 120000 }).then(() => null, (e: unknown) => e);
        t.match(err, { name: 'NamespaceSwitchError', envVar: 'gons_confine', code: 'EINVAL' }, `gons_seccomp ${JSON.stringify(bad.slice(0, 20))}: fails closed`);
      }
      t.notOk(existsSync(dir), 'no action ran');
    });

    t.test('a confined child cannot create a user namespace; an unconfined one (and the container, unfiltered here) can', async (t) => {
      const argv = ['unshare', '-U', 'true'];
      const confined = await runReexecAction<{ status: number; stderr: string }>('run-program', { target, confine: true, param: argv, timeout: 120000 });
      t.not(confined.status, 0, 'unshare -U fails');
      t.match(confined.stderr, /Operation not permitted/);
      const open = await runReexecAction<{ status: number }>('run-program', { target, param: argv, timeout: 120000 });
      t.equal(open.status, 0, 'control: the same program in an unconfined child');
      const w = await openNamespaceWorker({ target, confine: true, timeout: 120000 });
      t.teardown(() => w.close());
      t.match(await w.run('run-program', argv), { status: 1, stderr: /Operation not permitted/ }, 'a confined worker neither');
      t.match(await w.run('run-program', ['unshare', '-n', 'true']), { stderr: /Operation not permitted/ }, 'nor any other namespace');
      // Programs still start (clone3 → clone). A thread cannot: since the late pid join, a child whose pid namespace
      // for children is the target's may make no thread (the kernel refuses CLONE_THREAD: README, environment protocol).
      t.match(await w.run('thread-and-program'), { answer: /^ERR_WORKER_INIT_FAILED: .*EINVAL/, program: 0 }, 'while programs still start (clone3 → clone); a worker thread is refused (late pid join)');
      // Threads, where the pid namespace is not joined (where it is, no child may start one: see the README).
      const nopid = await openNamespaceWorker({ target: { pid: c.pid, types: ['mnt', 'net', 'uts', 'ipc'] }, confine: true, timeout: 120000 });
      t.teardown(() => nopid.close());
      t.same(await nopid.run('thread-and-program'), { answer: 42, program: 0 }, 'and threads start under the filter');
    });
  });
});
