/** listNamespaces: every namespace of every process and of bind mounts, on a real host, as root and as nobody. */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { type NamespaceInfo, listNamespaces, namespaceTypes } from '../lib/index';
import { nsfsMounts } from '../lib/discover';
import { createNamespaces } from '../testing/index';
import { asNobody, eventually, fixturePath, ino, needsRoot, plainEnv } from './fixtures/helpers';

const ipWorks = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).status === 0;
const byIno = (list: NamespaceInfo[], type: string, i: number) => list.filter((n) => n.type === type && n.ino === i);

/** `ip netns add NAME` (a bind mount under /run/netns), deleted at teardown. */
function ipNetns(t: { teardown(fn: () => void): void }, name: string): string {
  const res = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`ip netns add ${name}: ${res.stderr}`);
  t.teardown(() => { spawnSync('ip', ['netns', 'delete', name]); });
  return `/run/netns/${name}`;
}

t.test('finds the net namespaces of 30 holders and of an `ip netns add`, each once, with a ready reference', { skip: needsRoot }, async (t) => {
  const holders = await Promise.all(Array.from({ length: 30 }, (_, i) => createNamespaces(t, ['net', 'uts'], { hostname: `discover-${i}` })));
  const netns = ipWorks ? ipNetns(t, `gons-discover-${process.pid}`) : undefined;
  const list = listNamespaces('net');
  t.ok(list.every((n) => n.type === 'net'), 'only net namespaces');
  t.equal(new Set(list.map((n) => `${n.dev}:${n.ino}`)).size, list.length, 'each namespace once');
  const userns = ino('/proc/self/ns/user');
  for (const h of holders) {
    const found = byIno(list, 'net', ino(h.paths.net));
    t.equal(found.length, 1, `holder ${h.pid} found`);
    const [n] = found;
    // unshare and its forked holder are both in it.
    t.ok(n.pidCount >= 1 && n.pid !== undefined && n.pid <= h.pid, 'a count and the lowest pid');
    t.equal(ino(`/proc/${n.pid}/ns/net`), n.ino, 'the representative pid is in it');
    t.same(n.target, { pid: n.pid, types: ['net'] });
    t.same(n.namespace, { type: '!net', path: `/proc/${n.pid}/ns/net` });
    t.equal(ino(n.namespace.path), n.ino, 'the reference leads to it');
    t.same(n.mounts, []);
    t.same(n.owner, { dev: n.dev, ino: userns }, 'owned by our user namespace');
  }
  t.equal(byIno(list, 'net', ino('/proc/self/ns/net')).length, 1, 'ours too');
  if (netns === undefined) {
    t.comment('ip netns: `ip` is not usable here');
    return;
  }
  const [mounted] = byIno(list, 'net', ino(netns));
  t.match(mounted, { type: 'net', pidCount: 0, pid: undefined, target: undefined, mounts: [netns], namespace: { type: '!net', path: netns } },
    'a namespace only a bind mount keeps: its mount is the reference');
  t.same(mounted.owner, { dev: mounted.dev, ino: userns });
});

t.test('types: one, several, all by default; unknown ones refused', async (t) => {
  const all = listNamespaces();
  const present = namespaceTypes.filter((type) => {
    try {
      return statSync(`/proc/self/ns/${type}`).ino > 0;
    } catch {
      return false;
    }
  });
  for (const type of present) t.equal(byIno(all, type, ino(`/proc/self/ns/${type}`)).length, 1, `our ${type} namespace`);
  t.same([...new Set(all.map((n) => n.type))], present, "every type this kernel has, in gons's order");
  const some = listNamespaces(['uts', 'net']);
  t.same([...new Set(some.map((n) => n.type))], ['net', 'uts'], "only those asked for, in gons's order");
  const sorted = some.filter((n) => n.type === 'net').map((n) => n.ino);
  t.same(sorted, [...sorted].sort((a, b) => a - b), 'then by inode');
  t.throws(() => listNamespaces('nett' as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /"nett"/ });
  t.throws(() => listNamespaces(['net', 3] as never), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => listNamespaces({} as never), { code: 'ERR_INVALID_ARG_VALUE' });
});

t.test('the owning user namespace, as NS_GET_USERNS tells', { skip: needsRoot }, async (t) => {
  const ns = await createNamespaces(t, ['net'], { user: true });
  const list = listNamespaces(['user', 'net']);
  const [user] = byIno(list, 'user', ino(ns.paths.user));
  const [net] = byIno(list, 'net', ino(ns.paths.net));
  t.same(net.owner, { dev: user.dev, ino: user.ino }, 'a net namespace made inside a user namespace is owned by it');
  t.same(user.owner, { dev: user.dev, ino: ino('/proc/self/ns/user') }, 'the user namespace by its parent');
  const [initial] = byIno(list, 'user', ino('/proc/self/ns/user'));
  t.equal(initial.owner, undefined, 'ours has no owner we may see');
});

t.test('bind mounts anywhere, with escaped paths; a mount over one hides it', { skip: needsRoot }, async (t) => {
  const ns = await createNamespaces(t, ['uts'], { hostname: 'discover-mount' });
  const dir = mkdtempSync(join(tmpdir(), 'gons-discover-'));
  const spaced = join(dir, 'with space\tand tab');
  const hidden = join(dir, 'hidden');
  const underDir = join(dir, 'covered');
  const under = join(underDir, 'ns');
  writeFileSync(spaced, '');
  writeFileSync(hidden, '');
  mkdirSync(underDir);
  writeFileSync(under, '');
  const mount = (...args: string[]) => t.equal(spawnSync('mount', args).status, 0, `mount ${args.join(' ')}`);
  t.teardown(() => {
    for (const p of [hidden, hidden, spaced, underDir, under]) spawnSync('umount', [p]);
    rmSync(dir, { recursive: true, force: true });
  });
  mount('--bind', ns.paths.uts, spaced);
  mount('--bind', ns.paths.uts, hidden);
  mount('--bind', '/proc/self/ns/uts', hidden); // our own uts namespace, mounted over the first one
  mount('--bind', ns.paths.uts, under);
  mount('-t', 'tmpfs', 'gons-cover', underDir); // its directory covered: the mount's path no longer exists
  const [n] = byIno(listNamespaces('uts'), 'uts', ino(ns.paths.uts));
  t.same(n.mounts, [spaced], 'found through the unescaped path; not through a covered one');
  t.same(n.namespace, { type: '!uts', path: spaced }, 'the mount is the reference');
  t.ok(n.pidCount >= 1 && n.pid !== undefined && n.pid <= ns.pid, 'and its processes still count');
  t.same(nsfsMounts('1 2 0:4 garbage /x rw - nsfs nsfs rw\nno separator here\n'), [], 'lines that are not an nsfs mount are skipped');
});

t.test('zombies are skipped: a process without namespaces is not counted', { skip: needsRoot }, async (t) => {
  // sh forks `sleep 0`, then becomes `sleep 1000`, which never reaps it: a zombie in the new net namespace.
  const child = spawn('unshare', ['--net', 'sh', '-c', 'sleep 0 & exec sleep 1000'], { stdio: 'ignore' });
  t.teardown(() => { child.kill('SIGKILL'); });
  const zombie = await eventually(() => {
    const pid = Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim());
    if (!/State:\s+Z/.test(readFileSync(`/proc/${pid}/status`, 'utf8'))) throw new Error('not a zombie yet');
    return pid;
  }, 30000);
  const net = ino(`/proc/${child.pid}/ns/net`);
  const [n] = byIno(listNamespaces('net'), 'net', net);
  t.ok(zombie > 0);
  t.match(n, { pidCount: 1, pid: child.pid }, 'only the live process counts');
});

t.test('as nobody: what nobody may see, without errors', { skip: needsRoot }, async (t) => {
  const ns = await createNamespaces(t, ['net']);
  const netns = ipWorks ? ipNetns(t, `gons-nobody-${process.pid}`) : undefined;
  const args = [...process.execArgv.filter((a) => !a.includes('processinfo')), fixturePath('discover-nobody.ts')];
  const res = asNobody(process.execPath, args, plainEnv());
  t.equal(res.status, 0, 'exits 0', { stderr: res.stderr });
  const { pid, list } = JSON.parse(res.stdout) as { pid: number; list: NamespaceInfo[] };
  t.equal(byIno(list, 'net', ino(ns.paths.net)).length, 0, "a namespace only root's processes are in stays unseen");
  const [own] = byIno(list, 'net', ino('/proc/self/ns/net'));
  t.ok(own && own.pid !== undefined && own.pid <= pid, 'its own namespaces are seen, through its own processes');
  if (netns !== undefined) {
    t.match(byIno(list, 'net', ino(netns)), [{ mounts: [netns], pidCount: 0 }], 'a bind mount anyone may stat is seen');
  }
});
