/**
 * Confinement (`confine: true`): a child that holds exactly the credentials
 * of a container-like target process and no way back to the host's root.
 * The targets are real: own mount and pid namespaces on a pivot_root'ed
 * tmpfs, reduced capability sets, a non-zero uid, a user namespace.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { NamespaceSwitchError } from '../lib/index';
import t, { type Test } from 'tap';
import { checkAction, openNamespaceWorker, runReexecAction } from '../reexec/index';
import { containerTarget, type ContainerOptions } from './fixtures/confine-target';
import { type ConfineReport, creds, fromHost } from './fixtures/confine-actions';
import { asNobody, fixturePath, hookedReport, isRoot, needsRoot, plainEnv, projectRoot, rerunStagedIfHidden } from './fixtures/helpers';
import './fixtures/actions';
import './fixtures/confine-actions';

const hostFile = join(projectRoot, 'package.json');
const CAP_SYS_CHROOT = 18n;
const CAP_SYS_ADMIN = 21n;

/**
 * A confined report of a target in a pid namespace of its own: the child is not in the container's procfs (its pid
 * namespace is for children), so a worker answers and the host's procfs shows its credentials, threads and fds.
 */
async function report(pid: number, secretFile: string): Promise<ConfineReport & { pidJoined: boolean }> {
  const worker = await openNamespaceWorker({ target: { pid }, confine: true });
  try {
    const r = await worker.run<ConfineReport>('confine-report', { hostFile: secretFile });
    return { ...fromHost(r, worker.pid, pid), pidJoined: true };
  } finally {
    await worker.close();
  }
}

async function container(t: Test, o: ContainerOptions) {
  const c = await containerTarget(o);
  t.teardown(c.close);
  return c;
}

/** The checks every confined call must pass. */
function checkConfined(t: Test, r: ConfineReport & { pidJoined?: boolean }, secret: string) {
  t.same({ ...r.self, NoNewPrivs: '' }, { ...r.target, NoNewPrivs: '' }, 'uids, gids, groups and capability sets are the target\'s');
  t.equal(r.self.NoNewPrivs, '1', 'no_new_privs, whatever the target has');
  const target = { prm: BigInt(`0x${r.target.CapPrm}`), eff: BigInt(`0x${r.target.CapEff}`) };
  // As the target sees its ids (the child's own view, which are the target's): uid 0 in its user namespace.
  const uid0 = (r.ids ?? r.target.Uid).split(' ').includes('0');
  for (const th of r.threads) {
    t.equal(th.Uid, r.target.Uid, 'every thread has the target\'s uids');
    t.equal(th.CapBnd, r.target.CapBnd, 'every thread has the target\'s bounding set');
    t.equal(th.NoNewPrivs, '1', 'every thread has no_new_privs');
    // Threads Node made before the serve-time step keep CAP_SYS_CHROOT when a uid-0 target lacks it (README), and,
    // when a pid namespace is joined late, CAP_SYS_ADMIN in their permitted set only (raised for that setns alone).
    const allowed = uid0 ? (1n << CAP_SYS_CHROOT) : 0n;
    const permittedOnly = uid0 && r.pidJoined ? (1n << CAP_SYS_ADMIN) : 0n;
    t.equal(BigInt(`0x${th.CapPrm}`) & ~target.prm & ~allowed & ~permittedOnly, 0n, `thread permitted ${th.CapPrm} within the target's`);
    t.equal(BigInt(`0x${th.CapEff}`) & ~target.eff & ~allowed, 0n, `thread effective ${th.CapEff} within the target's`);
  }
  t.same(r.hostReachable, [], 'no path, fd or .. reaches the host\'s files');
  const foreignDirs = r.fds.filter((f) => f.dir && !r.targetDevs.includes(f.dev));
  t.same(foreignDirs, [], 'no fd is a directory outside the target\'s mounts');
  t.equal(r.secret, secret, 'reads a file only the target\'s user may read');
  t.same(r.root, ['bin', 'etc', 'lib', 'lib64', 'old', 'proc', 'usr'], 'on the target\'s root');
}

// Its children run as other uids (a hidden checkout is theirs to read only in the stage).
if (!rerunStagedIfHidden(__filename)) void checkAction().then(() => {
  t.test('a root target with a reduced capability set, no user namespace', { skip: needsRoot }, async (t) => {
    const c = await container(t, {
      setpriv: ['--inh-caps=-all,+chown', '--bounding-set=-all,+chown,+setuid,+setgid,+dac_override'],
      owner: '0:0', secret: 'root-secret',
    });
    const r = await report(c.pid, hostFile);
    checkConfined(t, r, 'root-secret');
    t.same({ ...r.self, NoNewPrivs: '0' }, creds(readFileSync(`/proc/${c.pid}/status`, 'utf8')), 'equal to the target as the host sees it');
    t.equal(r.self.CapBnd, '00000000000000c3');
  });

  t.test('a non-root target with groups and an ambient capability: every thread drops everything else', { skip: needsRoot }, async (t) => {
    const c = await container(t, {
      setpriv: ['--reuid=1000', '--regid=1000', '--groups=1000,2000', '--inh-caps=-all,+net_bind_service', '--ambient-caps=+net_bind_service',
        '--bounding-set=-all,+net_bind_service,+chown'],
      owner: '1000:1000', secret: 'user-secret',
    });
    const r = await report(c.pid, hostFile);
    checkConfined(t, r, 'user-secret');
    t.equal(r.self.Uid, '1000 1000 1000 1000');
    t.equal(r.self.Groups, '1000 2000');
    t.equal(r.self.CapAmb, '0000000000000400');
  });

  t.test('a target in its own user namespace: ids as the target sees them', { skip: needsRoot }, async (t) => {
    const c = await container(t, {
      userns: true,
      setpriv: ['--inh-caps=-all', '--bounding-set=-all,+chown,+fowner,+sys_chroot'],
      owner: '0:0', secret: 'userns-secret',
    });
    const r = await report(c.pid, hostFile);
    checkConfined(t, r, 'userns-secret');
    t.equal(r.ids, '0 0 0 0', 'root inside (its own view)');
    t.equal(r.self.Uid, '100000 100000 100000 100000', 'host uid 100000 outside (the host\'s view of the child)');
    t.match(readFileSync(`/proc/${c.pid}/status`, 'utf8'), /^Uid:\s+100000\s/m, 'host uid 100000 outside');
    t.equal(r.self.CapEff, '0000000000040009', 'its reduced set, in its user namespace');
  });

  t.test('a confined worker serves several calls', { skip: needsRoot }, async (t) => {
    const c = await container(t, { setpriv: ['--inh-caps=-all', '--bounding-set=-all,+kill'], owner: '0:0', secret: 'w' });
    const worker = await openNamespaceWorker({ target: { pid: c.pid }, confine: true });
    t.teardown(() => worker.close());
    for (let i = 0; i < 3; i++) checkConfined(t, { ...fromHost(await worker.run<ConfineReport>('confine-report', { hostFile }), worker.pid, c.pid), pidJoined: true }, 'w');
    t.equal(await worker.run('echo', 'still'), 'still');
  });

  t.test('a target sharing all our namespaces: its credentials, on our root', async (t) => {
    const r = await runReexecAction<{ creds: Record<string, string>; cwd: string; root: number }>('confine-creds', { target: { pid: process.pid }, confine: true });
    t.same(r.creds, { ...creds(readFileSync('/proc/self/status', 'utf8')), NoNewPrivs: '1' });
    t.equal(r.cwd, '/');
    t.equal(r.root, readdirSync('/').length);
  });

  t.test('as nobody: a target in a user namespace nobody made', async (t) => {
    const env = plainEnv();
    const args = [...process.execArgv.filter((a) => !a.includes('processinfo')), fixturePath('confine-nobody.ts')];
    const res = asNobody(process.execPath, args, env);
    t.equal(res.status, 0, 'exits normally', { stderr: res.stderr });
    const r = JSON.parse(res.stdout) as { self: Record<string, string>; target: Record<string, string> };
    t.same({ ...r.self, NoNewPrivs: '0' }, r.target, "the holder's credentials");
    t.equal(r.self.Uid, '0 0 0 0', 'root of that user namespace');
    t.equal(r.self.NoNewPrivs, '1');
  });

  t.test('confine needs a target process', async (t) => {
    await t.rejects(runReexecAction('action', { namespaces: [], confine: true }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /confine needs target.*namespaces have none/ });
    await t.rejects(runReexecAction('action', { confine: true }), { code: 'ERR_INVALID_ARG_VALUE' });
    await t.rejects(openNamespaceWorker({ confine: 1 as unknown as boolean }), { code: 'ERR_INVALID_ARG_TYPE' });
  });

  t.test('a target whose user or mount namespace the child would not join is refused', { skip: needsRoot }, async (t) => {
    const c = await container(t, { userns: true, setpriv: [], owner: '0:0', secret: 'x' });
    await t.rejects(runReexecAction('action', { target: { pid: c.pid, types: ['net', 'mnt'] }, confine: true }), {
      code: 'ERR_INVALID_ARG_VALUE', message: /user namespace of its own/,
    });
    await t.rejects(runReexecAction('action', { target: { pid: c.pid, types: ['user'] }, confine: true }), { message: /mnt namespace of its own/ });
  });

  t.test('a target whose uid its own user namespace does not map is refused', { skip: needsRoot }, async (t) => {
    const holder = spawn('unshare', ['--user', 'sh', '-c', 'echo ready; read _'], { stdio: ['pipe', 'pipe', 'ignore'] });
    t.teardown(() => holder.stdin.end());
    await once(holder.stdout, 'data');
    await t.rejects(runReexecAction('action', { target: { pid: holder.pid!, types: ['user'] }, confine: true }), {
      code: 'ERR_GONS_CONFINE_UNMAPPED', message: /uid 0 of process \d+ is not mapped/,
    });
  });

  t.test('a confinement that fails in the hook runs nothing (fail closed)', async (t) => {
    // Bit 63 is no capability: the kernel drops it, and the hook's read-back sees the sets did not take.
    const bad = '0,0,0;0,0,0;;0,8000000000000000,0,0,0';
    if (isRoot) t.match(hookedReport({ gons_confine: bad }).status, { envVar: 'gons_confine', syscall: 'capget', message: /did not take/ });
    const marker = join(mkdtempSync(join(tmpdir(), 'gons-confine-')), 'ran');
    t.teardown(() => rmSync(dirname(marker), { recursive: true, force: true }));
    const err = await runReexecAction('mark', { param: marker, env: { gons_confine: bad } }).catch((e) => e);
    t.type(err, NamespaceSwitchError);
    t.match(err, { envVar: 'gons_confine' });
    t.notOk(existsSync(marker), 'the action did not run');
  });

  t.test('the hook refuses a malformed gons_confine and runs nothing', async (t) => {
    // Each is a cold start of a hooked child (seconds under tap): a few shapes here, the rest in the native scenarios.
    for (const bad of ['', 'x', '0,0,0;0,0,0;1,;0,0,0,0,0', '0,0,0;0,0,0;;0,0,1,0,0' /* effective beyond permitted */,
      '4294967295,0,0;0,0,0;;0,0,0,0,0', '0,0,0;0,0,0;;0,0,0,0,10000000000000000']) {
      const r = hookedReport({ gons_confine: bad });
      if (bad === '') {
        t.equal(r.status, null, 'empty is unset');
        continue;
      }
      t.match(r.status, { envVar: 'gons_confine', code: 'EINVAL', message: /malformed gons_confine/ }, JSON.stringify(bad));
    }
  });
});
