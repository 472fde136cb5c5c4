/**
 * The cgroups a child joins (lib/cgroup.ts, native/cgroup.c): the `cgroups`
 * option's checks, the strict reading of /proc/<pid>/cgroup and mountinfo,
 * and real joins — a target in a cgroup v2 directory of its own, a target
 * in a v1 hierarchy that is not mounted here. The device-cgroup attack is in
 * attack-cgroup.test.ts.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { cgroupDir, cgroupMounts, parseProcCgroup } from '../lib/cgroup';
import { checkAction, createNamespacePool, register, runReexecAction } from '../reexec/index';
import { whereKey } from '../reexec/pool';
import { asNobody, cgroupKeyOf, fixturePath, needsRoot, plainEnv } from './fixtures/helpers';
import { type Teardown, madeCgroup, until } from './fixtures/attack/target';

register('cg-self', () => readFileSync('/proc/self/cgroup', 'utf8'));

const V2 = '/sys/fs/cgroup/unified';

/** A sleeping process (as nobody: setpriv execs sleep, same pid), killed at teardown; its pid. */
async function sleeper(t: Teardown, nobody = false): Promise<number> {
  const p = nobody
    ? spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', 'sleep', '600'], { stdio: 'ignore' })
    : spawn('sleep', ['600'], { stdio: 'ignore' });
  t.teardown(async () => {
    if (p.exitCode === null && p.signalCode === null) {
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await gone;
    }
  });
  await until(() => p.pid, 10000, 'sleep started');
  // Until setpriv has exec'd sleep, the process is root's: nobody could not inspect it.
  if (nobody) await until(() => readFileSync(`/proc/${p.pid}/comm`, 'utf8') === 'sleep\n', 10000, 'sleep exec\'d as nobody');
  return p.pid!;
}

void checkAction().then(() => {
  t.test('reading /proc/<pid>/cgroup: every line well formed, every hierarchy once, no path outside', async (t) => {
    const good = '9:name=systemd:/\n5:devices:/docker/abc\n2:cpu,cpuacct:/\n0::/x y\n';
    t.same(parseProcCgroup(good, 7), [
      { id: 9, controllers: ['name=systemd'], path: '/' },
      { id: 5, controllers: ['devices'], path: '/docker/abc' },
      { id: 2, controllers: ['cpu', 'cpuacct'], path: '/' },
      { id: 0, controllers: [], path: '/x y' },
    ]);
    for (const bad of [
      '5:devices:/a\n5:devices:/', // a sub-cgroup named "a\n5:devices:" forges a line: the hierarchy repeats
      '5:devices:/a\nx', '5:devices:relative', '5:devices:/a/../..', '0::/..', '5::/a', '0:devices:/a', '5:devices:/a//b', '',
    ]) {
      t.throws(() => parseProcCgroup(bad, 7), { code: 'ERR_GONS_CGROUP_UNRESOLVED', path: '/proc/7/cgroup' }, JSON.stringify(bad));
    }
  });

  t.test('mapping a hierarchy to its mount point', async (t) => {
    const mountinfo = [
      '30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs ro,mode=755',
      '35 30 0:31 / /sys/fs/cgroup/devices rw,nosuid - cgroup cgroup rw,devices',
      '36 30 0:32 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct',
      '37 30 0:33 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw',
      '40 25 0:31 /docker /mnt/my\\040devices rw - cgroup cgroup rw,devices',
      '41 25 0:34 /only/this /mnt/named rw - cgroup cgroup rw,name=gons',
      '42 25 0:35 / /mnt/new\\012line rw - cgroup cgroup rw,name=odd',
      '43 25 0:36 / /mnt/short rw - cgroup',
      'garbage line',
    ].join('\n');
    const m = cgroupMounts(mountinfo);
    t.equal(m.length, 7);
    t.equal(cgroupDir({ id: 8, controllers: ['name=odd'], path: '/x' }, m), undefined, 'a mount point with a newline: none the hook could take');
    t.equal(cgroupDir({ id: 5, controllers: ['devices'], path: '/docker/abc' }, m), '/sys/fs/cgroup/devices/docker/abc', 'a mount of the whole hierarchy first');
    t.equal(cgroupDir({ id: 2, controllers: ['cpu', 'cpuacct'], path: '/' }, m), '/sys/fs/cgroup/cpu,cpuacct');
    t.equal(cgroupDir({ id: 0, controllers: [], path: '/a' }, m), '/sys/fs/cgroup/unified/a');
    t.equal(cgroupDir({ id: 7, controllers: ['name=gons'], path: '/only/this/sub' }, m), '/mnt/named/sub', 'a mount of a subtree, by its root');
    t.equal(cgroupDir({ id: 7, controllers: ['name=gons'], path: '/only/this' }, m), '/mnt/named');
    t.equal(cgroupDir({ id: 7, controllers: ['name=gons'], path: '/elsewhere' }, m), undefined, 'outside the mounted subtree');
    t.equal(cgroupDir({ id: 4, controllers: ['memory'], path: '/' }, m), undefined, 'not mounted');
    const onlyBind = cgroupMounts('40 25 0:31 /docker /mnt/my\\040devices rw - cgroup cgroup rw,devices');
    t.equal(cgroupDir({ id: 5, controllers: ['devices'], path: '/docker/abc' }, onlyBind), '/mnt/my devices/abc', 'mount points unescaped');
  });

  t.test('the cgroups option is checked before anything is spawned', async (t) => {
    const ns = { namespaces: [{ type: 'net' as const, path: '/proc/self/ns/net' }] };
    const cases: Array<[unknown, object, string | RegExp]> = [
      ['x', ns, 'ERR_INVALID_ARG_TYPE'],
      [[], ns, 'ERR_INVALID_ARG_VALUE'],
      [['rel/dir'], ns, 'ERR_INVALID_ARG_VALUE'],
      [['/sys/fs/cgroup/../x'], ns, 'ERR_INVALID_ARG_VALUE'],
      [[7], ns, 'ERR_INVALID_ARG_VALUE'],
      [['/tmp'], ns, 'ERR_INVALID_ARG_VALUE'],
      [['/nonexistent/cgroup'], ns, 'ENOENT'],
      [{ pid: -1 }, ns, 'ERR_INVALID_ARG_VALUE'],
      [{ pid: 1, other: 2 }, ns, 'ERR_INVALID_ARG_VALUE'],
      [null, ns, 'ERR_INVALID_ARG_TYPE'],
      [true, ns, 'ERR_INVALID_ARG_VALUE'],
    ];
    for (const [cgroups, where, code] of cases) {
      const err = await runReexecAction('cg-self', { ...where, cgroups } as never).then(() => null, (e: { code?: string }) => e);
      t.match(err, { code }, JSON.stringify(cgroups));
    }
    const gone = await runReexecAction('cg-self', { ...ns, cgroups: { pid: 0x3ffffff0 } }).then(() => null, (e: unknown) => e);
    t.match(gone, { name: 'NamespaceSwitchError', envVar: 'gons_cgroup_dirs', code: 'ESRCH' }, 'a process that does not exist');
    t.equal(await runReexecAction('cg-self', { ...ns, cgroups: { pid: process.pid } }), readFileSync('/proc/self/cgroup', 'utf8'), 'our own: nothing to join');
  });

  t.test('a target in a cgroup v2 directory of its own: the child is there too', { skip: needsRoot || (!existsSync(`${V2}/cgroup.procs`) && 'needs cgroup v2 at /sys/fs/cgroup/unified') }, async (t) => {
    const dir = madeCgroup(t, `${V2}/gons-test-${process.pid}`);
    const pid = await sleeper(t);
    writeFileSync(`${dir}/cgroup.procs`, String(pid));
    const want = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    t.match(want, new RegExp(`^0::/gons-test-${process.pid}$`, 'm'));
    t.equal(await runReexecAction('cg-self', { target: { pid, types: ['uts'] } }), want, 'target: its cgroups by default');
    t.equal(await runReexecAction('cg-self', { target: { pid, types: ['uts'] }, cgroups: true }), want, 'cgroups: true says the same');
    t.equal(await runReexecAction('cg-self', { target: { pid, types: ['uts'] }, cgroups: false }), readFileSync('/proc/self/cgroup', 'utf8'), 'cgroups: false stays in ours');
    t.equal(await runReexecAction('cg-self', { namespaces: [], cgroups: [dir] }), want, 'a directory by name');
    // The pool's key: a worker in other cgroups is another worker (told apart by all of the process's lines).
    const theirs = cgroupKeyOf(pid);
    t.equal(whereKey({ target: { pid, types: ['uts'] } }), theirs, 'pool key: the target\'s own cgroups');
    t.equal(whereKey({ target: { pid, types: ['uts'] }, cgroups: true }), theirs, 'pool key: cgroups: true');
    t.equal(whereKey({ target: { pid, types: ['uts'] }, cgroups: false }), '', 'pool key: cgroups: false');
    t.equal(whereKey({ namespaces: [], cgroups: { pid } }), theirs, 'pool key: another process\'s cgroups');
    t.equal(whereKey({ namespaces: [], cgroups: [dir] }), `cgroups=${JSON.stringify([dir])}`, 'pool key: a directory by name');
    t.equal(whereKey({ target: { pid: await sleeper(t), types: ['uts'] } }), cgroupKeyOf('self'), 'pool key: a target in our cgroups names them too');
  });

  t.test('a pool worker serves a target only in the target\'s cgroups, after this process moved too', { skip: needsRoot || (!existsSync(`${V2}/cgroup.procs`) && 'needs cgroup v2 at /sys/fs/cgroup/unified') }, async (t) => {
    const ours = readFileSync('/proc/self/cgroup', 'utf8');
    const v2 = parseProcCgroup(ours, process.pid).find((l) => l.id === 0)!;
    const home = cgroupDir(v2, cgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8')));
    if (!home?.startsWith(V2)) return void t.comment(`our cgroup v2 directory is not below ${V2} (${home}): nothing to check`);
    // Back home before the directory goes (teardowns run last first: the pool is closed before this).
    const dir = madeCgroup(t, `${V2}/gons-test-moved-${process.pid}`, () => writeFileSync(`${home}/cgroup.procs`, String(process.pid)));
    // No idle end: the early worker must still be there for the last call, however slow the starts in between.
    const pool = createNamespacePool({ idleTimeout: 600_000 });
    t.teardown(() => pool.close());
    const early = await pool.run<string>({ namespaces: [] }, 'cg-self');
    t.equal(early, ours, 'a worker started with no cgroups asked: in ours');
    // We move; a process started now is in our new cgroup, and in our namespaces.
    writeFileSync(`${dir}/cgroup.procs`, String(process.pid));
    const pid = await sleeper(t);
    const theirs = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    t.match(theirs, new RegExp(`^0::/gons-test-moved-${process.pid}$`, 'm'));
    t.equal(await pool.run({ target: { pid, types: ['uts'] } }, 'cg-self'), theirs, 'a call for the target: in the target\'s cgroups, not in those the early worker was started in');
    t.equal(await pool.run({ namespaces: [] }, 'cg-self'), early, 'a call that asks for no cgroups may still go to the early worker');
  });

  t.test('as nobody: a target in a cgroup nobody may not enter fails with EACCES, never silently', { skip: needsRoot || (!existsSync(`${V2}/cgroup.procs`) && 'needs cgroup v2 at /sys/fs/cgroup/unified') }, async (t) => {
    const dir = madeCgroup(t, `${V2}/gons-test-nobody-${process.pid}`);
    const elsewhere = await sleeper(t, true);
    writeFileSync(`${dir}/cgroup.procs`, String(elsewhere));
    const alike = await sleeper(t, true);
    const args = [...process.execArgv.filter((a) => !a.includes('processinfo')), fixturePath('cgroup-nobody.ts'), String(elsewhere), String(alike)];
    const res = asNobody(process.execPath, args, plainEnv());
    t.equal(res.status, 0, 'exits normally', { stderr: res.stderr });
    const r = JSON.parse(res.stdout) as Record<string, unknown>;
    t.match(r.elsewhere, { ok: false, name: 'NamespaceSwitchError', code: 'EACCES', envVar: 'gons_cgroup_dirs', syscall: 'open', path: dir });
    t.same(r.optedOut, { ok: true, value: 65534 }, 'cgroups: false runs it in ours');
    t.same(r.alike, { ok: true, value: 65534 }, 'a target in our cgroups: nothing to join');
  });

  t.test('a target in a v1 hierarchy not mounted here fails closed', { skip: needsRoot }, async (t) => {
    const name = `gons-test-${process.pid}`;
    const mnt = mkdtempSync(join(tmpdir(), 'gons-cg-'));
    const mount = () => spawnOk('mount', ['-t', 'cgroup', '-o', `none,name=${name}`, 'gons-test', mnt]);
    if (!mount()) return void t.comment('this kernel mounts no v1 named hierarchy: nothing to check');
    mkdirSync(join(mnt, 'sub'));
    const pid = await sleeper(t);
    writeFileSync(join(mnt, 'sub', 'cgroup.procs'), String(pid));
    spawnOk('umount', [mnt]);
    t.teardown(async () => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch { /* gone */ }
      await until(() => !existsSync(`/proc/${pid}`) || undefined, 10000, 'sleep gone').catch(() => {});
      if (mount()) {
        try {
          rmdirSync(join(mnt, 'sub'));
        } catch { /* still busy: the hierarchy stays until reboot, harmless */ }
        spawnOk('umount', [mnt]);
      }
      rmSync(mnt, { recursive: true, force: true });
    });
    t.match(readFileSync(`/proc/${pid}/cgroup`, 'utf8'), new RegExp(`:name=${name}:/sub$`, 'm'));
    const err = await runReexecAction('cg-self', { target: { pid, types: ['uts'] } }).then(() => null, (e: unknown) => e);
    t.match(err, { code: 'ERR_GONS_CGROUP_UNRESOLVED', path: '/sub', message: new RegExp(`hierarchy "\\d+:name=${name}" is not mounted here`) });
  });
});

function spawnOk(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}
