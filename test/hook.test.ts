/**
 * The pre-init hook, driven through its environment protocol exactly as a Go
 * gons user would: LD_PRELOAD plus gons_* variables on a child that reports
 * what it sees (test/fixtures/report.ts). Real namespaces, real kernel. The
 * table of scenarios (each error path, LD_PRELOAD scrubbing, the joins of
 * test/hook-scenarios.test.ts) runs there, in Node and in the sanitizer driver.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import t, { type Test } from 'tap';
import { namespaceTypes, preinitPath, type NamespaceType } from '../lib/index';
import { createNamespaces, type CreateNamespacesOptions } from '../testing/index';
import {
  asNobody, fixturePath, hookedReport, ino, needsNobody, needsRoot, plainEnv, projectRoot, spawnAsNobody, stagedHookedReportWaiting,
} from './fixtures/helpers';

const own = hookedReport({});

t.test('the hook is plain C: libc only, no Node, V8 or libuv symbols', async (t) => {
  const undef = execFileSync('nm', ['-D', '--undefined-only', preinitPath], { encoding: 'utf8' });
  t.notMatch(undef, /node|v8|uv_|napi|Nan/i);
  const defined = execFileSync('nm', ['-D', '--defined-only', preinitPath], { encoding: 'utf8' });
  t.same(defined.trim().split('\n').map((l) => l.split(' ').at(-1)).sort(),
    ['dlerror', 'dlmopen', 'dlopen', 'gons_preinit_confine', 'gons_preinit_enter_target_root', 'gons_preinit_join_pid', 'gons_preinit_leave_target_root', 'gons_preinit_seal_target_root', 'gons_preinit_state',
      'sigaction', 'signal'], 'its own interface and the interposed libc functions');
  const needed = execFileSync('readelf', ['-d', preinitPath], { encoding: 'utf8' }).match(/\(NEEDED\).*\[(.*)\]/g);
  t.same(needed?.map((l) => l.replace(/.*\[(.*)\]/, '$1')), ['libc.so.6']);
});

const typeOptions: Partial<Record<NamespaceType, CreateNamespacesOptions>> = {
  uts: { hostname: 'gons-uts-test' },
  time: { clockOffset: 10 * 86400 },
};

t.test('joins each of the eight namespace types', { skip: needsRoot }, async (t) => {
  for (const type of namespaceTypes) {
    t.test(type, async (t) => {
      const ns = await createNamespaces(t, [type], typeOptions[type]);
      const r = hookedReport({ [`gons_${type}`]: ns.paths[type] }, type === 'pid' ? { exec: ['readlink', '/proc/self/ns/pid'] } : {});
      t.equal(r.status, null);
      if (type === 'pid') {
        // As in gons, gons_pid is for children: the process itself stays in our pid namespace (so a container never
        // sees it in its procfs); the hook only kept the namespace, joined late (joinPidNamespace) on the main thread.
        t.equal(r.nsBeforePidJoin?.pid_for_children, own.ns.pid_for_children, 'nothing joined before the late join');
        t.equal(r.ns.pid, own.ns.pid, 'the process stays in our pid namespace');
        t.equal(r.ns.pid_for_children, ino(ns.paths.pid), 'its pid namespace for children is the target\'s');
        t.equal(r.grandchild?.trim(), `pid:[${ino(ns.paths.pid)}]`, 'a program it runs is in the target pid namespace');
        t.equal(r.ppid, process.pid, 'no relay: the process is our own child');
      } else {
        t.equal(r.ns[type], ino(ns.paths[type]), `joined the ${type} namespace`);
      }
      if (type === 'uts') t.equal(r.hostname, 'gons-uts-test');
      if (type === 'time') t.ok(r.uptime - own.uptime > 9 * 86400, 'the boot-time clock carries the offset');
      for (const other of namespaceTypes.filter((o) => o !== type && !(type === 'pid' && o === 'pid'))) {
        if (other !== 'pid') t.equal(r.ns[other], own.ns[other], `${other} namespace unchanged`);
      }
    });
  }
});

t.test('joins several namespaces in the default order', { skip: needsRoot }, async (t) => {
  const ns = await createNamespaces(t, ['user', 'mnt', 'net', 'uts', 'ipc'], { hostname: 'gons-multi' });
  const vars = Object.fromEntries(ns.namespaces().map((n) => [`gons_${n.type.slice(1)}`, n.path]));
  const r = hookedReport(vars);
  t.equal(r.status, null);
  for (const type of ['user', 'mnt', 'net', 'uts', 'ipc'] as const) t.equal(r.ns[type], ino(ns.paths[type]), type);
  t.equal(r.hostname, 'gons-multi');
});

t.test('gons_order', { skip: needsRoot }, async (t) => {
  const net = await createNamespaces(t, ['net']);
  const uts = await createNamespaces(t, ['uts'], { hostname: 'gons-order' });
  // A net namespace reference that exists only inside the target mount namespace.
  const dir = t.testdir({});
  const ref = join(dir, 'netref');
  const mnt = await createNamespaces(t, ['mnt'], { files: { [ref]: '' } });
  execFileSync('nsenter', ['-t', String(mnt.pid), '-m', 'mount', '--bind', net.paths.net, ref]);

  t.test('a path without ! resolves in the namespaces joined before it', async (t) => {
    const r = hookedReport({ gons_mnt: mnt.paths.mnt, gons_net: ref, gons_order: '!mnt,net' });
    t.equal(r.status, null);
    t.equal(r.ns.mnt, ino(mnt.paths.mnt));
    t.equal(r.ns.net, ino(net.paths.net));
  });

  t.test('a path with ! is opened before the first switch', async (t) => {
    const r = hookedReport({ gons_mnt: mnt.paths.mnt, gons_net: ref, gons_order: '!mnt,!net' });
    t.equal(r.status?.message, `package gons: invalid gons_net reference "${ref}": No such file or directory`);
    t.equal(r.ns.mnt, own.ns.mnt, 'nothing was switched');
  });

  t.test('types the order does not name are not switched', async (t) => {
    const r = hookedReport({ gons_net: net.paths.net, gons_uts: uts.paths.uts, gons_order: 'net' });
    t.equal(r.status, null);
    t.equal(r.ns.net, ino(net.paths.net));
    t.equal(r.ns.uts, own.ns.uts);
  });

  t.test('named types whose variable is unset or empty are skipped', async (t) => {
    const r = hookedReport({ gons_net: net.paths.net, gons_uts: '', gons_order: 'uts,ipc,net' });
    t.equal(r.status, null);
    t.equal(r.ns.net, ino(net.paths.net));
    t.equal(r.ns.uts, own.ns.uts);
  });

  t.test('switching stops at the first failure, keeping what was joined', async (t) => {
    const r = hookedReport({ gons_net: net.paths.net, gons_uts: '/nonexistent/uts', gons_ipc: '/proc/self/ns/ipc', gons_order: 'net,uts,ipc' });
    t.equal(r.status?.envVar, 'gons_uts');
    t.equal(r.ns.net, ino(net.paths.net));
    const first = hookedReport({ gons_net: net.paths.net, gons_uts: '/nonexistent/uts', gons_order: 'uts,net' });
    t.equal(first.status?.envVar, 'gons_uts');
    t.equal(first.ns.net, own.ns.net, 'later types are not attempted');
  });
});

t.test('root handoff: Node starts from its own root while in a mount namespace that lacks it', { skip: needsRoot }, async (t) => {
  const only = join(projectRoot, 'gons-target-only.txt');
  const pkg = join(projectRoot, 'package.json');
  const hostname = '/etc/hostname';
  const mnt = await createNamespaces(t, ['mnt'], { hide: [projectRoot], files: { [only]: 'only in the target' } });
  t.equal(execFileSync('nsenter', ['-t', String(mnt.pid), '-m', 'ls', '-A', projectRoot], { encoding: 'utf8' }).trim(),
    'gons-target-only.txt', 'the target does not contain the project');
  const r = hookedReport({ gons_mnt: mnt.paths.mnt }, { files: [only, pkg, hostname], enterRoot: true });
  t.equal(r.status, null);
  t.equal(r.ns.mnt, ino(mnt.paths.mnt), 'its mount namespace is the target');
  t.equal(r.files[only], null, 'started on the original root');
  t.equal(r.files[pkg], readFileSync(pkg, 'utf8'));
  t.same(r.inTarget, { cwd: '/', files: { [only]: 'only in the target', [pkg]: null, [hostname]: r.files[hostname] } },
    'entering moves root and cwd into the target');
  t.same(r.after, { cwd: process.cwd(), files: r.files }, 'leaving restores root and cwd');
});

/** A user namespace made by nobody: root maps to 65534, setgroups denied. */
async function nobodysUserNamespace(t: Test) {
  const holder = spawnAsNobody('unshare', ['-U', '-r', 'sh', '-c', 'echo ready; read _'], { stdio: ['pipe', 'pipe', 'inherit'] });
  await once(holder.stdout!, 'data');
  t.teardown(() => { holder.kill('SIGKILL'); });
  return `/proc/${holder.pid}/ns/user`;
}

t.test('a child in a foreign namespace is not dumpable', { skip: needsNobody() }, async (t) => {
  const userns = await nobodysUserNamespace(t);
  // Becoming root of the user namespace (setresuid) resets dumpable to fs.suid_dumpable: with 1 the
  // child would be dumpable again unless the hook re-asserts it. The sysctl is global: restored at once.
  const sysctl = '/proc/sys/fs/suid_dumpable';
  const saved = readFileSync(sysctl, 'utf8');
  for (const suidDumpable of ['0', '1']) {
    await t.test(`with fs.suid_dumpable = ${suidDumpable}`, async (t) => {
      writeFileSync(sysctl, suidDumpable);
      t.teardown(() => writeFileSync(sysctl, saved));
      const child = await stagedHookedReportWaiting({ gons_user: userns });
      writeFileSync(sysctl, saved);
      // A successful PTRACE_ATTACH (a failing test) leaves the child stopped: continue it before ending it.
      t.teardown(() => { process.kill(child.pid, 'SIGCONT'); return child.end(); });
      t.equal(child.report.ids.uid, 0);
      // The owner of the user namespace (nobody) may not read the child's memory or environment.
      for (const file of ['environ', 'mem']) {
        const res = asNobody('head', ['-c', '1', `/proc/${child.pid}/${file}`]);
        t.not(res.status, 0, `${file} is not readable`);
        t.match(res.stderr, /Permission denied/);
      }
      // Nor attach to it: PTRACE_ATTACH (16) fails with EPERM (1).
      const attach = `import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); r = libc.ptrace(16, ${child.pid}, 0, 0); print(r, ctypes.get_errno())`;
      await t.test('ptrace attach is refused', { skip: !existsSync('/usr/bin/python3') && 'no /usr/bin/python3 to try it with' }, async (t) => {
        t.equal(asNobody('/usr/bin/python3', ['-c', attach]).stdout.trim(), '-1 1');
      });
    });
  }
});

t.test('the hook removes itself and the gons_* variables from the environment', async (t) => {
  const r = hookedReport({
    LD_PRELOAD: `${preinitPath} libm.so.6 ${dirname(preinitPath)}/./${basename(preinitPath)}`,
    gons_uts: '/proc/self/ns/uts', gons_order: 'uts', gons_preserve_credentials: '0', gons_parent_pid: String(process.pid),
  }, { exec: ['env'] });
  t.equal(r.status, null);
  t.equal(r.hookLoaded, true);
  t.equal(r.env.LD_PRELOAD, 'libm.so.6', 'other preloads are kept');
  t.same(r.env.gons, []);
  t.notMatch(r.grandchild, /gons_|gons_preinit/);
  t.match(r.grandchild, /^LD_PRELOAD=libm\.so\.6$/m);
});

t.test('as an unprivileged user: joins an unprivileged user namespace with its own net, uts and mnt', { skip: needsNobody() }, async (t) => {
  const args = [...process.execArgv.filter((a) => !a.includes('processinfo')), fixturePath('unprivileged.ts')];
  const env = plainEnv();
  const res = asNobody(process.execPath, args, env);
  t.equal(res.status, 0, 'the child exits normally', { stderr: res.stderr });
  const { report, paths, target } = JSON.parse(res.stdout);
  t.equal(report.status, null);
  t.equal(report.ids.uid, 0);
  for (const type of ['user', 'net', 'uts', 'mnt']) t.equal(report.ns[type], paths[type], type);
  t.equal(report.hostname, 'gons-nobody');
  t.same(report.inTarget.files, { [target]: 'nobody was here' });
});
