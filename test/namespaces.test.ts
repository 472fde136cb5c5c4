/** The TypeScript core without the kernel: the namespace table, the env protocol, argument checks. */
import t from 'tap';
import { enterTargetRoot, hasTargetRoot, leaveTargetRoot, namespaceEnv, namespaceTypes, status, validateNamespaces } from '../lib/index';
import { type NamespaceType, envVarOf, isNamespaceType, namespaceKinds } from '../lib/namespaces';
import { addon } from '../lib/native';
import { errnoName } from '../lib/errors';
import * as gons from '../lib/index';
import * as reexec from '../reexec/index';
import * as testing from '../testing/index';

t.test("namespaceTypes is gons's default order, plus time", async (t) => {
  t.same(namespaceTypes, ['user', 'mnt', 'cgroup', 'ipc', 'net', 'pid', 'time', 'uts']);
  t.equal(envVarOf('net'), 'gons_net');
  t.ok(isNamespaceType('time'));
  t.notOk(isNamespaceType('!net'));
  t.notOk(isNamespaceType('toString'));
});

t.test("NamespaceType is the hook's table of kinds: names, order and flags", async (t) => {
  // Compiles only while its keys are exactly NamespaceType's members; the values are the kernel's CLONE_NEW* flags.
  const flags: Record<NamespaceType, number> = {
    user: 0x10000000, mnt: 0x00020000, cgroup: 0x02000000, ipc: 0x08000000, net: 0x40000000, pid: 0x20000000, time: 0x00000080, uts: 0x04000000,
  };
  t.same(addon.namespaceKinds.map((k) => [k.type, k.flag]), Object.entries(flags), 'the addon exports the same names, in order, with the same flags');
  t.same(namespaceTypes, Object.keys(flags));
  t.same(addon.namespaceKinds.filter((k) => k.procname !== k.type).map((k) => k.procname), ['pid_for_children', 'time_for_children']);
  for (const k of addon.namespaceKinds) {
    t.same(namespaceKinds[k.type as NamespaceType], { ...k, unshare: k.type === 'mnt' ? '--mount' : `--${k.type}` }, `${k.type}: derived from the addon's row`);
    t.equal(k.envVar, `gons_${k.type}`);
    t.same(addon.nsType(`/proc/self/ns/${k.procname}`), { nstype: k.flag }, `the kernel reports /proc/self/ns/${k.procname} as ${k.type}`);
  }
  t.ok(Object.isFrozen(namespaceKinds) && Object.isFrozen(namespaceKinds.net));
});

t.test('namespaceEnv builds the env as Go RunReexecAction does', async (t) => {
  t.same(namespaceEnv([
    { type: '!user', path: '/proc/1/ns/user' },
    { type: 'mnt', path: '/proc/1/ns/mnt' },
    { type: '!net', path: '/run/netns/x' },
  ]), {
    gons_user: '/proc/1/ns/user',
    gons_mnt: '/proc/1/ns/mnt',
    gons_net: '/run/netns/x',
    gons_order: '!user,mnt,!net',
  });
  t.same(namespaceEnv([]), { gons_order: '' }, 'an empty order means the default order');
  t.throws(() => namespaceEnv([{ type: 'foo' as 'net', path: '/x' }]), {
    name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: 'package gons: unknown namespace type "foo"',
  });
  t.throws(() => namespaceEnv([{ type: '!!net' as 'net', path: '/x' }]), { message: /unknown namespace type "!net"/ });
  t.throws(() => namespaceEnv([{ type: 'net', path: 42 as unknown as string }]), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => namespaceEnv({} as never), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => namespaceEnv([null as never]), { code: 'ERR_INVALID_ARG_VALUE' });
});

t.test('validateNamespaces names the entry at fault', async (t) => {
  t.doesNotThrow(() => validateNamespaces([]));
  t.doesNotThrow(() => validateNamespaces([{ type: '!net', path: '/proc/self/ns/net' }, { type: 'uts', path: '/proc/self/ns/uts' }]));
  t.throws(() => validateNamespaces('x' as never), { code: 'ERR_INVALID_ARG_TYPE' });
  const cases: Array<[string, Parameters<typeof validateNamespaces>[0], object]> = [
    ['missing', [{ type: 'net', path: '/foo' }], { envVar: 'gons_net', syscall: 'open', code: 'ENOENT', errno: -2 }],
    ['directory', [{ type: 'net', path: '/proc/self/ns' }], { code: 'EINVAL', message: /not a namespace file/ }],
    ['regular file', [{ type: 'uts', path: '/etc/passwd' }], { envVar: 'gons_uts', code: 'EINVAL', message: /not a namespace file/ }],
    ['wrong type', [{ type: 'ipc', path: '/proc/self/ns/net' }], { message: /a net namespace, not ipc/ }],
    ['relative', [{ type: 'net', path: 'ns/net' }], { code: 'EINVAL', message: /must be an absolute path/ }],
    ['empty', [{ type: 'net', path: '' }], { code: 'EINVAL' }],
    ['NUL', [{ type: 'net', path: '/proc/self/ns/net\0' }], { code: 'EINVAL' }],
    ['not a string', [{ type: 'net', path: 7 as unknown as string }], { code: 'EINVAL' }],
    ['duplicate', [{ type: 'net', path: '/proc/self/ns/net' }, { type: '!net', path: '/proc/self/ns/net' }], {
      envVar: 'gons_order', message: 'package gons: duplicate namespace order type net',
    }],
    ['long path', [{ type: 'net', path: '/' + 'a'.repeat(5000) }], { code: 'ENAMETOOLONG' }],
  ];
  for (const [name, input, expected] of cases) t.throws(() => validateNamespaces(input), { name: 'NamespaceSwitchError', ...expected }, name);
  // After a mount namespace, a path without `!` resolves in the target: only its shape is checked.
  t.doesNotThrow(() => validateNamespaces([{ type: 'mnt', path: '/proc/self/ns/mnt' }, { type: 'net', path: '/only/in/target' }]));
});

t.test('status() is null without the hook', async (t) => {
  t.equal(status(), null);
  t.equal(errnoName(2), 'ENOENT');
  t.equal(errnoName(9999), 'EUNKNOWN');
});

t.test('the root handoff needs the hook', async (t) => {
  t.notOk(hasTargetRoot());
  t.throws(() => enterTargetRoot(), {
    name: 'NamespaceSwitchError', code: 'ENOSYS',
    message: 'package gons: cannot enter the root of the joined mount namespace: the pre-init hook is not loaded',
  });
  t.doesNotThrow(() => leaveTargetRoot(), 'leaving without entering does nothing');
});

t.test('the public API of gons, gons/reexec and gons/testing', async (t) => {
  const names = (m: object) => Object.keys(m).filter((k) => (m as Record<string, unknown>)[k] !== undefined).sort();
  t.same(names(gons), [
    'ContainerError', 'NamespaceSwitchError', 'enterTargetRoot', 'hasTargetRoot', 'joinPidNamespace', 'leaveTargetRoot', 'listNamespaces', 'namespaceEnv',
    'namespaceTypes', 'preinitPath', 'status', 'validateNamespaces',
  ]);
  t.same(names(reexec), [
    'AbortError', 'ContainerError', 'NamespaceSwitchError', 'ReexecError', 'TransferredFd', 'bindIn', 'checkAction', 'connectIn', 'createNamespacePool',
    'listenIn', 'openIn', 'openNamespaceWorker', 'register', 'runAction', 'runReexecAction', 'socketConstants', 'socketIn', 'transferFd',
  ]);
  t.same(names(testing), ['createNamespaces']);
  t.equal(reexec.NamespaceSwitchError, gons.NamespaceSwitchError, 'gons/reexec re-exports the class its calls reject with');
});
