/**
 * The pre-init hook's scenarios, as one table. Each row is an environment
 * (gons_* variables, LD_PRELOAD, a target fd) and what must come of it, and
 * runs twice:
 *  - through native/test/driver.c built with AddressSanitizer + UBSan (clang,
 *    else gcc; skipped with the reason when neither builds a sanitized binary
 *    that runs): exit status, an empty stderr (any sanitizer report fails the
 *    row) and the driver's JSON line (the hook's state, the environment left);
 *  - through real Node with the hook preloaded (test/fixtures/report.ts): the
 *    hook's status as Node sees it, the namespaces it is in, the environment
 *    and fds it was left with.
 * `npm run test:native` runs just this file.
 */
import { execFileSync, spawn, spawnSync, type StdioOptions } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync, closeSync, copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, openSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import t from 'tap';
import { preinitPath } from '../lib/index';
import { addon } from '../lib/native';
import { cgroupDir, cgroupMounts, parseProcCgroup } from '../lib/cgroup';
import { envVarOf, namespaceKinds, namespaceTypes, type NamespaceType } from '../lib/namespaces';
import { createNamespaces, type Namespaces } from '../testing/index';
import { fixturePath, inStage, ino, needsNobody, needsRoot, projectRoot, type Report } from './fixtures/helpers';
import { LONG } from './fixtures/waits';

type Errno = keyof typeof constants.errno;

/** Where a row runs: paths of the hook (the driver, or a copy of the real hook) and the namespaces made for it. */
interface Ctx {
  /** The hook's file: the driver executable, or gons_preinit.so. */
  hook: string;
  /** Its directory and file name. */
  dir: string;
  name: string;
  /** The test's temporary directory. */
  work: string;
  /** The holders, by the names in `holders` below (root only). */
  ns: Record<string, Namespaces>;
}

type Vars = Record<string, string>;

interface Row {
  name: string;
  /** The environment beside the sanitizer options (driver) or LD_PRELOAD (Node). */
  env?: Vars | ((c: Ctx) => Vars);
  /** LD_PRELOAD to begin with: set inside the driver (so the loader ignores it); Node gets it as is if it names the hook, else after the hook. */
  preload?: (c: Ctx) => string;
  /** gons_target_pidfd: a pidfd of this process or of a holder, of a process that has exited, or an fd open on a file. */
  target?: 'self' | 'exited' | { holder: string } | { file: (c: Ctx) => string };
  /** Enter the joined mount namespace's root and leave it again, checking whether `probe` exists each time. */
  enter?: { probe?: (c: Ctx) => string };
  /** Run in the hook's directory; the driver started by its absolute path, or as `./driver`. */
  inHookDir?: 'absolute' | './driver';
  /** Run as nobody (uid/gid 65534; the driver with group 65534 as its one supplementary group). */
  asNobody?: boolean;
  /** Creates namespaces (or a setuid file): root only. */
  needsRoot?: boolean;
  /** The namespaces `expect.joined` refers to: a holder's name, else this process's own. */
  holder?: string;
  /** Run by the kernel's rules for set-user-ID programs (AT_SECURE). */
  secure?: boolean;
  expect: Expect;
}

interface Expect {
  /** The process is killed (SIGKILL) by the hook. */
  killed?: boolean;
  /** The hook ran (0 only under secure execution). */
  ran?: 0 | 1;
  /** The error recorded; none when absent. */
  error?: { code: Errno; envvar: string; syscall: string; path?: string | ((c: Ctx) => string); message?: string | ((c: Ctx) => string) };
  /** The namespace types joined (in the row's holder, or this process's own). */
  joined?: NamespaceType[];
  /** PR_GET_DUMPABLE after the hook: 0 once anything was joined (driver only). */
  dumpable?: 0 | 1;
  /** LD_PRELOAD left (default none). */
  preload?: string | null | ((c: Ctx) => string);
  /** The gons_* variables left, any case (default none). */
  gonsEnv?: Vars;
  /** What dladdr() names the hook's file (driver only). */
  self?: (c: Ctx) => string;
  nodename?: string;
  ids?: { uid: number; gid: number; ngroups: number };
  /**
   * A pid namespace kept for the late join: the constructor joins none (the process stays in ours, a child of
   * its parent; no relay), the Node half then joins it for children with joinPidNamespace().
   */
  pidPending?: boolean;
  /** After entering: the error of entering (`enter` ENOENT), or whether the probe exists before, inside and after. */
  enter?: 'ENOENT' | { probe: [number, number, number] };
  /** Whether the fd of `target` is still open after the hook. */
  targetFdOpen?: boolean;
}

const E = (code: Errno, envvar: string, syscall: string, more: { path?: string | ((c: Ctx) => string); message?: string | ((c: Ctx) => string) } = {}) =>
  ({ error: { code, envvar, syscall, ...more } });
const unknownType = (item: string, in_: string) => E('EINVAL', in_, '', { message: `package gons: unknown namespace type "${item}" in ${in_}` });
const notPidfd = (bad: string) => E('EBADF', 'gons_target_pidfd', 'pidfd_send_signal', { path: bad, message: `package gons: invalid gons_target_pidfd "${bad}": not a pidfd` });

/** Every gons_<type> variable naming this process's own namespace of that type. */
const alreadyIn = Object.fromEntries(namespaceTypes.map((type) => [envVarOf(type), `/proc/self/ns/${type === 'pid' || type === 'time' ? `${type}_for_children` : type}`]));
const MiB = 1 << 20;
const order1MiB = 'a'.repeat(MiB);
const orderTail = `${namespaceTypes.join(',')},${'x'.repeat(MiB - namespaceTypes.join(',').length - 1)}`;
const path20000 = `/${'a/'.repeat(10000)}`;
const path200000 = `/nonexistent${'b'.repeat(200000)}`;
// Bytes as Latin-1: the driver reads them from a file; Node gets this string UTF-8 encoded.
const pathOdd = '/nonexistent/"quoted" back\\slash\ttab\nnewline %s%n\x01\xff\xe2\x82\xac';
const bigPreload = (c: Ctx) => Array.from({ length: 20000 }, (_, k) => {
  const i = k + 1;
  return `/nonexistent/lib${String(i).padStart(5, '0')}.so${[' ', ':', `\t${c.hook}\t`, '::'][i % 4]}`;
}).join('');
const bigPreloadLeft = Array.from({ length: 20000 }, (_, k) => `/nonexistent/lib${String(k + 1).padStart(5, '0')}.so`).join(':');
const flags = (types: NamespaceType[]) => types.reduce((sum, type) => sum | namespaceKinds[type].flag, 0);
const uptoMulti = ['mnt', 'ipc', 'net', 'uts', 'cgroup', 'time'] as const satisfies NamespaceType[];

/** This process's cgroup directories, every hierarchy (lib/cgroup.ts's mapping of /proc/self/cgroup). */
function ownCgroupDirs(): string[] {
  const mounts = cgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
  return parseProcCgroup(readFileSync('/proc/self/cgroup', 'utf8'), process.pid).map((l) => cgroupDir(l, mounts)).filter((d): d is string => d !== undefined);
}

/** The namespaces the root rows join, by name. */
const holders: Record<string, (c: Ctx) => Promise<Namespaces>> = {
  net: () => createNamespaces(t, ['net']),
  uts: () => createNamespaces(t, ['uts'], { hostname: 'gons-uts-test' }),
  // The marker shows only while the process sits on the target's root.
  multi: (c) => createNamespaces(t, [...uptoMulti], { hostname: 'gons-multi', files: { [join(c.work, 'mnt', 'marker')]: '' } }),
  pid: () => createNamespaces(t, ['pid']),
  user: () => nobodysUserNamespace(),
  userUts: () => nobodysUserNamespace(['uts']),
};

const rows: Row[] = [
  {
    name: 'no variables at all', env: {},
    expect: { dumpable: 1, self: (c) => c.hook },
  },
  { name: 'only unrelated variables', env: { PATH: '/usr/bin:/bin', HOME: '/', LANG: 'C.UTF-8' }, expect: {} },
  { name: 'unknown type', env: { gons_net: '/proc/self/ns/net', gons_order: 'net,foo' }, expect: { error: { ...unknownType('foo', 'gons_order').error, path: 'net,foo' } } },
  { name: 'type names are case-sensitive', env: { gons_net: '/proc/self/ns/net', gons_order: 'NET' }, expect: unknownType('NET', 'gons_order') },
  { name: 'a /proc name is no type (pid_for_children)', env: { gons_order: 'pid_for_children' }, expect: unknownType('pid_for_children', 'gons_order') },
  {
    name: 'duplicate type', env: { gons_net: '/proc/self/ns/net', gons_order: 'net,!net' },
    expect: E('EINVAL', 'gons_order', '', { path: 'net,!net', message: 'package gons: duplicate namespace order type net' }),
  },
  { name: 'duplicate type of unset variables', env: { gons_order: 'ipc,uts,uts' }, expect: E('EINVAL', 'gons_order', '', { message: 'package gons: duplicate namespace order type uts' }) },
  { name: 'empty item', env: { gons_order: 'net,,uts' }, expect: unknownType('', 'gons_order') },
  { name: 'trailing comma', env: { gons_order: 'net,' }, expect: unknownType('', 'gons_order') },
  { name: 'leading comma', env: { gons_order: ',net' }, expect: unknownType('', 'gons_order') },
  { name: 'only a comma', env: { gons_order: ',' }, expect: unknownType('', 'gons_order') },
  { name: 'a lone bang', env: { gons_order: 'net,!' }, expect: unknownType('', 'gons_order') },
  { name: 'double bang (!!net)', env: { gons_net: '/proc/self/ns/net', gons_order: '!!net' }, expect: unknownType('!net', 'gons_order') },
  { name: 'bang after the name (net!)', env: { gons_order: 'net!' }, expect: unknownType('net!', 'gons_order') },
  { name: 'space after a comma', env: { gons_order: 'net, uts' }, expect: unknownType(' uts', 'gons_order') },
  { name: 'trailing space', env: { gons_order: 'net ' }, expect: unknownType('net ', 'gons_order') },
  { name: 'newline in gons_order (JSON escaping)', env: { gons_order: 'net\nuts' }, expect: { error: { ...unknownType('net\nuts', 'gons_order').error, path: 'net\nuts' } } },
  { name: '1 MiB gons_order, one unknown item', env: { gons_order: order1MiB }, expect: { error: { ...unknownType(order1MiB, 'gons_order').error, path: order1MiB } } },
  {
    name: '1 MiB gons_order, all types then a long unknown item', env: { gons_net: '/proc/self/ns/net', gons_uts: '/dev/null', gons_order: orderTail },
    expect: { error: { ...unknownType(orderTail.slice(orderTail.lastIndexOf(',') + 1), 'gons_order').error, path: orderTail } },
  },
  { name: '1 MiB gons_order of commas', env: { gons_order: ','.repeat(MiB) }, expect: { error: { ...unknownType('', 'gons_order').error, path: ','.repeat(MiB) } } },
  { name: 'empty gons_order means the default order', env: { gons_order: '', gons_uts: '/proc/self/ns/uts' }, expect: {} },
  { name: 'types not in gons_order are ignored', env: { gons_order: 'net', gons_net: '/proc/self/ns/net', gons_uts: '/dev/null', gons_user: '/nonexistent' }, expect: {} },
  { name: 'all types in gons_order, no variables', env: { gons_order: 'user,mnt,cgroup,!ipc,net,!pid,time,uts' }, expect: {} },
  {
    name: 'empty variables count as unset',
    env: { ...Object.fromEntries(namespaceTypes.map((type) => [envVarOf(type), ''])), gons_preserve_credentials: '', gons_parent_pid: '' }, expect: {},
  },
  { name: 'namespaces already in are skipped (default order)', env: alreadyIn, expect: { dumpable: 1 } },
  { name: 'namespaces already in are skipped (every order)', env: { ...alreadyIn, gons_order: 'uts,!time,pid,net,!ipc,cgroup,mnt,!user' }, expect: {} },
  { name: 'already in: gons_net=/proc/self/ns/net', env: { gons_net: '/proc/self/ns/net' }, expect: { dumpable: 1 } },
  { name: 'already in: gons_uts=/proc/self/ns/uts, enter/leave without gons_mnt', env: { gons_uts: '/proc/self/ns/uts' }, enter: {}, expect: { enter: 'ENOENT' } },
  {
    name: 'missing path', env: { gons_net: '/nonexistent/net' },
    expect: E('ENOENT', 'gons_net', 'open', { path: '/nonexistent/net', message: 'package gons: invalid gons_net reference "/nonexistent/net": No such file or directory' }),
  },
  { name: 'path of a process that does not exist', env: { gons_ipc: '/proc/2147483647/ns/ipc' }, expect: E('ENOENT', 'gons_ipc', 'open') },
  {
    name: 'path longer than PATH_MAX (20000 chars)', env: { gons_mnt: path20000 },
    expect: E('ENAMETOOLONG', 'gons_mnt', 'open', { path: path20000, message: `package gons: invalid gons_mnt reference "${path20000}": File name too long` }),
  },
  { name: 'path of 200000 chars', env: { gons_net: path200000 }, expect: E('ENAMETOOLONG', 'gons_net', 'open', { path: path200000 }) },
  {
    name: 'path with quotes, backslash, control and non-ASCII bytes, %s', env: { gons_uts: pathOdd },
    expect: E('ENOENT', 'gons_uts', 'open', { path: pathOdd, message: `package gons: invalid gons_uts reference "${pathOdd}": No such file or directory` }),
  },
  {
    name: 'a directory as namespace', env: { gons_net: '/' },
    expect: { ...E('EINVAL', 'gons_net', 'stat', { path: '/', message: 'package gons: invalid gons_net reference "/": not a namespace file' }), dumpable: 1 },
  },
  {
    name: '/dev/null as namespace', env: { gons_uts: '/dev/null' },
    expect: E('EINVAL', 'gons_uts', 'stat', { message: 'package gons: invalid gons_uts reference "/dev/null": not a namespace file' }),
  },
  { name: 'a regular file as namespace', env: (c) => ({ gons_cgroup: c.hook }), expect: E('EINVAL', 'gons_cgroup', 'setns', { path: (c) => c.hook }) },
  // open(2) of a FIFO would block until a writer shows up; the hook opens with O_NONBLOCK.
  { name: 'a FIFO as namespace: an error, no hang', env: (c) => ({ gons_net: join(c.work, 'fifo') }), expect: E('EINVAL', 'gons_net', 'stat') },
  {
    name: 'wrong type: gons_user=/proc/self/ns/net', env: { gons_user: '/proc/self/ns/net' },
    expect: E('EINVAL', 'gons_user', 'setns', { message: 'package gons: cannot join gons_user using reference "/proc/self/ns/net": Invalid argument' }),
  },
  { name: 'wrong type: gons_net=/proc/self/ns/uts', env: { gons_net: '/proc/self/ns/uts' }, expect: E('EINVAL', 'gons_net', 'setns') },
  { name: 'opening up front (!) fails before any join', env: { gons_uts: '/dev/null', gons_net: '/nonexistent', gons_order: 'uts,!net' }, expect: E('ENOENT', 'gons_net', 'open') },
  { name: 'without ! a path is opened when its turn comes', env: { gons_uts: '/dev/null', gons_net: '/nonexistent', gons_order: 'uts,net' }, expect: E('EINVAL', 'gons_uts', 'stat') },
  { name: 'the default order opens every path up front', env: { gons_uts: '/dev/null', gons_net: '/nonexistent' }, expect: E('ENOENT', 'gons_net', 'open') },
  {
    name: 'the first failure wins (default order is user first)', env: { gons_user: '/nonexistent/1', gons_net: '/nonexistent/2', gons_uts: '/nonexistent/3' },
    expect: E('ENOENT', 'gons_user', 'open', { path: '/nonexistent/1' }),
  },
  ...['2', 'true', 'yes', ' 1', '1 ', '01', '-1', 'x"y\\z'].map((bad): Row => ({
    name: `bad gons_preserve_credentials '${bad}'`, env: { gons_preserve_credentials: bad, gons_net: '/nonexistent', gons_order: 'bogus' },
    expect: E('EINVAL', 'gons_preserve_credentials', '', { path: bad, message: `package gons: invalid gons_preserve_credentials value "${bad}": must be 0 or 1` }),
  })),
  ...['0', '1'].map((ok): Row => ({ name: `gons_preserve_credentials=${ok}`, env: { gons_preserve_credentials: ok, gons_uts: '/proc/self/ns/uts' }, expect: {} })),
  { name: 'an empty gons_parent_pid is unset', env: { gons_parent_pid: '', gons_uts: '/proc/self/ns/uts' }, expect: {} },
  ...['abc', '0', '-1', '-2147483648', '12abc', '0x10', ' 1', '+1', '99999999999999999999', '2147483648', '4294967297'].map((bad): Row => ({
    name: `bad gons_parent_pid '${bad}' is an error, not a silent no-op`, env: { gons_parent_pid: bad, gons_uts: '/proc/self/ns/uts' }, expect: E('EINVAL', 'gons_parent_pid', ''),
  })),
  { name: 'gons_parent_pid that is not the parent: killed', env: { gons_parent_pid: '1' }, expect: { killed: true } },
  // Both the driver and Node are this process's children.
  { name: 'gons_parent_pid of the parent', env: { gons_parent_pid: String(process.pid) }, expect: {} },
  { name: 'LD_PRELOAD: only the hook', preload: (c) => c.hook, expect: { preload: null } },
  {
    name: "LD_PRELOAD: others kept, joined with ':'", preload: (c) => `/lib/x/liba.so:${c.hook} /lib/b.so\t\t::${c.hook}\n/c.so  libm.so.6:`,
    expect: { preload: '/lib/x/liba.so:/lib/b.so:/c.so:libm.so.6' },
  },
  { name: 'LD_PRELOAD: without the hook, unchanged', preload: () => '/nonexistent/a.so:b.so', expect: { preload: '/nonexistent/a.so:b.so' } },
  { name: 'LD_PRELOAD: only separators', preload: () => ' :\t\n::  ', expect: { preload: null } },
  { name: 'LD_PRELOAD: empty', preload: () => '', expect: { preload: null } },
  // gons_keep_fds is applied first: the target fd (named by gons_target_pidfd) is closed before it is looked at.
  {
    name: 'gons_keep_fds empty: every fd above 2 is closed first', env: { gons_keep_fds: '', gons_target_types: 'net' }, target: { file: () => '/dev/null' },
    expect: { ...E('EBADF', 'gons_target_pidfd', 'pidfd_send_signal'), targetFdOpen: false },
  },
  {
    name: 'gons_keep_fds malformed: recorded, nothing joined, every fd above 2 closed', env: { gons_keep_fds: '3,', gons_target_types: 'net' }, target: { file: () => '/dev/null' },
    expect: { ...E('EINVAL', 'gons_keep_fds', '', { path: '3,', message: 'package gons: invalid gons_keep_fds "3,": must be a comma list of fd numbers above 2' }), targetFdOpen: false },
  },
  {
    name: 'gons_keep_fds unset: fds are left alone', env: { gons_target_types: 'net' }, target: { file: () => '/dev/null' },
    expect: { ...E('EBADF', 'gons_target_pidfd', 'pidfd_send_signal'), targetFdOpen: true },
  },
  // gons_cgroup_dirs (native/cgroup.c): parsed strictly, every directory opened before the first move; any failure fails closed.
  ...['rel/cgroup', '/sys/fs/cgroup/../cgroup', '/sys//fs', '/sys/./fs', '/', '/sys/fs/cgroup/pids\n', '\n/sys/fs/cgroup/pids', '/sys/fs/cgroup/pids\n\n/sys/fs/cgroup/cpu']
    .map((bad): Row => ({
      name: `gons_cgroup_dirs malformed: ${JSON.stringify(bad)}`, env: { gons_cgroup_dirs: bad },
      expect: E('EINVAL', 'gons_cgroup_dirs', '', { path: bad, message: 'package gons: invalid gons_cgroup_dirs value: must be absolute cgroup directories, one per line, without empty, "." or ".." components' }),
    })),
  {
    name: 'gons_cgroup_dirs: a missing directory', env: { gons_cgroup_dirs: '/nonexistent/cgroup' },
    expect: E('ENOENT', 'gons_cgroup_dirs', 'open', { path: '/nonexistent/cgroup', message: 'package gons: cannot join cgroup "/nonexistent/cgroup": No such file or directory' }),
  },
  {
    name: 'gons_cgroup_dirs: a directory on no cgroup file system', env: { gons_cgroup_dirs: '/tmp' },
    expect: E('ENOTDIR', 'gons_cgroup_dirs', 'fstatfs', { path: '/tmp', message: 'package gons: cannot join cgroup "/tmp": not a cgroup directory' }),
  },
  {
    name: 'gons_cgroup_dirs: a symlink on the way is not followed', env: { gons_cgroup_dirs: '/proc/self/root/tmp' },
    expect: E('ENOTDIR', 'gons_cgroup_dirs', 'open', { path: '/proc/self/root/tmp' }),
  },
  {
    name: 'gons_cgroup_dirs: one bad directory among good ones, nothing joined (uts)', needsRoot: true, holder: 'uts',
    env: (c) => ({ gons_cgroup_dirs: `${ownCgroupDirs().join('\n')}\n/nonexistent/cgroup`, gons_uts: c.ns.uts!.paths.uts }),
    expect: E('ENOENT', 'gons_cgroup_dirs', 'open', { path: '/nonexistent/cgroup' }),
  },
  { name: 'gons_seccomp without gons_confine: scrubbed, never installed', env: { gons_seccomp: 'not hex' }, expect: {} },
  { name: 'gons_cgroup_dirs: the cgroups it is in already, as root', needsRoot: true, env: () => ({ gons_cgroup_dirs: ownCgroupDirs().join('\n') }), expect: {} },
  {
    name: 'gons_cgroup_dirs: nobody may not move itself, and says so', needsRoot: true, asNobody: true, env: () => ({ gons_cgroup_dirs: ownCgroupDirs()[0] }),
    expect: E('EACCES', 'gons_cgroup_dirs', 'open', { path: () => ownCgroupDirs()[0] }),
  },
  {
    name: 'LD_PRELOAD: without the hook, entries are normalized', preload: () => '  /nonexistent/a.so\t/nonexistent/b.so::c.so ',
    expect: { preload: '/nonexistent/a.so:/nonexistent/b.so:c.so' },
  },
  {
    name: 'LD_PRELOAD: other spellings of the hook (same file)', preload: (c) => `${c.dir}/./${c.name}:${c.dir}/../${basename(c.dir)}/${c.name} libm.so.6 ${c.dir}//${c.name}`,
    expect: { preload: 'libm.so.6' },
  },
  { name: 'LD_PRELOAD: symlink and hard link to the hook', preload: (c) => `${c.dir}/hook-symlink:/x.so:${c.dir}/hook-hardlink`, expect: { preload: '/x.so' } },
  {
    name: "LD_PRELOAD: the hook's directory and a path below the hook are kept", preload: (c) => `${c.dir} ${c.dir}/ ${c.hook}/x ${c.hook}`,
    expect: { preload: (c) => `${c.dir}:${c.dir}/:${c.hook}/x` },
  },
  { name: "LD_PRELOAD: a bare name without '/' is kept", inHookDir: 'absolute', preload: (c) => `${c.name}:x.so`, expect: { preload: (c) => `${c.name}:x.so` } },
  {
    name: 'LD_PRELOAD: hook started as ./driver (dladdr reports argv[0])', inHookDir: './driver', preload: (c) => `./${c.name}:${c.hook} x.so`,
    expect: { preload: 'x.so', self: (c) => `./${c.name}` },
  },
  { name: 'LD_PRELOAD: 20000 other entries around the hook', preload: bigPreload, expect: { preload: bigPreloadLeft } },
  { name: 'LD_PRELOAD: scrubbed on a parse error too', env: { gons_order: 'bogus' }, preload: (c) => `${c.hook} y.so`, expect: { ...E('EINVAL', 'gons_order', ''), preload: 'y.so' } },
  {
    name: 'LD_PRELOAD: scrubbed on a bad gons_preserve_credentials', env: { gons_preserve_credentials: 'maybe' }, preload: (c) => c.hook,
    expect: E('EINVAL', 'gons_preserve_credentials', ''),
  },
  // gons_target_pidfd: the namespaces gons_target_types of the process behind a pidfd. The hook accepts only a pidfd
  // (so a hostile value cannot make it close, say, stdout) and closes that pidfd, joined or not.
  { name: 'gons_target_pidfd not a number', env: { gons_target_pidfd: 'abc', gons_target_types: 'net' }, expect: notPidfd('abc') },
  ...['-1', '2147483648', '3x', ' 3 ', '99999999999999999999', '999'].map((bad): Row => ({
    name: `gons_target_pidfd '${bad}'`, env: { gons_target_pidfd: bad, gons_target_types: 'net' }, expect: notPidfd(bad),
  })),
  // The report after the hook ran, on stdout, shows that fd 1 stayed open.
  ...['0', '1', '2'].map((fd): Row => ({
    name: `gons_target_pidfd=${fd} (stdio, no pidfd) is refused`, env: { gons_target_pidfd: fd, gons_target_types: 'net' }, expect: E('EBADF', 'gons_target_pidfd', 'pidfd_send_signal'),
  })),
  {
    name: 'gons_target_pidfd of a file is refused and left open', env: { gons_target_types: 'ipc' }, target: { file: () => '/dev/null' },
    expect: { ...E('EBADF', 'gons_target_pidfd', 'pidfd_send_signal'), targetFdOpen: true, dumpable: 1 },
  },
  {
    name: 'gons_target_pidfd of a namespace file is refused', env: { gons_target_types: 'net' }, target: { file: () => '/proc/self/ns/net' },
    expect: { ...E('EBADF', 'gons_target_pidfd', 'pidfd_send_signal'), targetFdOpen: true },
  },
  {
    name: 'gons_target_pidfd with gons_<type> variables', env: { gons_net: '/proc/self/ns/net', gons_target_types: 'net' }, target: 'self',
    expect: { ...E('EINVAL', 'gons_target_pidfd', '', { message: 'package gons: gons_target_pidfd cannot be combined with gons_<type> variables' }), targetFdOpen: false },
  },
  { name: 'gons_target_pidfd with empty gons_<type> variables', env: { gons_net: '', gons_uts: '', gons_target_types: 'net' }, target: 'exited', expect: E('ESRCH', 'gons_target_pidfd', 'setns') },
  { name: 'gons_target_pidfd wins over gons_order', env: { gons_target_pidfd: 'abc', gons_order: 'bogus' }, expect: E('EBADF', 'gons_target_pidfd', 'pidfd_send_signal') },
  {
    name: 'bad gons_preserve_credentials wins over gons_target_pidfd', env: { gons_preserve_credentials: '2', gons_target_types: 'net' }, target: 'self',
    expect: { ...E('EINVAL', 'gons_preserve_credentials', ''), targetFdOpen: false },
  },
  { name: 'gons_target_types unset', target: 'self', expect: { ...unknownType('', 'gons_target_types'), ...{ error: { ...unknownType('', 'gons_target_types').error, path: '' } }, targetFdOpen: false } },
  {
    name: 'gons_target_types unknown type', env: { gons_target_types: 'net,foo' }, target: 'self',
    expect: { error: { ...unknownType('foo', 'gons_target_types').error, path: 'net,foo' }, targetFdOpen: false },
  },
  {
    name: 'gons_target_types duplicate type', env: { gons_target_types: 'net,uts,net' }, target: 'self',
    expect: { ...E('EINVAL', 'gons_target_types', '', { message: 'package gons: duplicate namespace type "net" in gons_target_types' }), targetFdOpen: false },
  },
  { name: 'gons_target_types has no ! (!net)', env: { gons_target_types: '!net' }, target: 'self', expect: unknownType('!net', 'gons_target_types') },
  { name: 'gons_target_types empty item', env: { gons_target_types: 'net,,uts' }, target: 'self', expect: unknownType('', 'gons_target_types') },
  { name: 'gons_target_types 1 MiB', env: { gons_target_types: order1MiB }, target: 'self', expect: { error: { ...unknownType(order1MiB, 'gons_target_types').error, path: order1MiB } } },
  {
    name: 'gons_target_pidfd of an exited process', env: { gons_target_types: 'net,uts' }, target: 'exited',
    expect: {
      ...E('ESRCH', 'gons_target_pidfd', 'setns', { message: 'package gons: cannot join net,uts namespaces of the process behind gons_target_pidfd PATH: No such process' }),
      targetFdOpen: false,
    },
  },
  { name: 'gons_target_types without gons_target_pidfd is ignored', env: { gons_target_types: 'bogus,,' }, expect: {} },
  {
    name: 'every known gons_* variable is removed, others stay',
    env: {
      gons_order: 'uts', gons_uts: '/proc/self/ns/uts', ...Object.fromEntries(namespaceTypes.filter((type) => type !== 'uts').map((type) => [envVarOf(type), '/nonexistent'])),
      gons_preserve_credentials: '1', gons_parent_pid: 'abc', gons_target_types: 'net', gons_target_pidfd: '',
      gons_unknown: '1', GONS_NET: 'x', gons_netx: 'y', Gons_Uts: 'z', gons_: '', gons: 'no',
    },
    expect: { ...E('EINVAL', 'gons_parent_pid', ''), gonsEnv: { gons_unknown: '1', GONS_NET: 'x', gons_netx: 'y', Gons_Uts: 'z', gons_: '' } },
  },
  {
    name: 'variables are removed after an open failure', env: { gons_time: '/nonexistent', gons_order: 'time,uts', gons_uts: '/proc/self/ns/uts', gons_parent_pid: 'abc' },
    expect: E('ENOENT', 'gons_time', 'open'),
  },

  // Real joins: root only.
  {
    name: 'join its own namespaces by pidfd (no skipping there)', needsRoot: true, env: { gons_target_types: 'net,uts' }, target: 'self',
    expect: { joined: ['net', 'uts'], dumpable: 0, targetFdOpen: false },
  },
  { name: 'join a net namespace', needsRoot: true, holder: 'net', env: (c) => ({ gons_net: c.ns.net!.paths.net }), expect: { joined: ['net'], dumpable: 0 } },
  {
    name: 'join stops at the first failure, joins so far are reported', needsRoot: true, holder: 'net',
    env: (c) => ({ gons_net: c.ns.net!.paths.net, gons_uts: '/nonexistent', gons_order: 'net,uts' }),
    expect: { ...E('ENOENT', 'gons_uts', 'open'), joined: ['net'], dumpable: 0 },
  },
  {
    name: 'default order: nothing is joined when an up-front open fails', needsRoot: true, holder: 'net',
    env: (c) => ({ gons_net: c.ns.net!.paths.net, gons_uts: '/nonexistent' }), expect: { ...E('ENOENT', 'gons_uts', 'open'), dumpable: 1 },
  },
  {
    name: 'join a net namespace by pidfd', needsRoot: true, holder: 'net', env: { gons_target_types: 'net' }, target: { holder: 'net' },
    expect: { joined: ['net'], dumpable: 0, targetFdOpen: false },
  },
  {
    name: 'join a uts namespace (hostname)', needsRoot: true, holder: 'uts', env: (c) => ({ gons_uts: c.ns.uts!.paths.uts, gons_order: '!uts' }),
    expect: { joined: ['uts'], nodename: 'gons-uts-test' },
  },
  {
    name: 'join mnt, ipc, net, uts, cgroup and time; enter and leave the target root', needsRoot: true, holder: 'multi',
    env: (c) => Object.fromEntries(uptoMulti.map((type) => [envVarOf(type), c.ns.multi!.paths[type]])), enter: { probe: (c) => join(c.work, 'mnt', 'marker') },
    expect: { joined: [...uptoMulti], enter: { probe: [0, 1, 0] }, nodename: 'gons-multi' },
  },
  {
    name: 'join mnt, ipc, net, uts and cgroup by pidfd; enter and leave the target root', needsRoot: true, holder: 'multi',
    env: { gons_target_types: 'uts,mnt,ipc,net,cgroup' }, target: { holder: 'multi' }, enter: { probe: (c) => join(c.work, 'mnt', 'marker') },
    expect: { joined: ['mnt', 'ipc', 'net', 'uts', 'cgroup'], enter: { probe: [0, 1, 0] }, nodename: 'gons-multi', targetFdOpen: false },
  },
  // gons_pid is for children: the hook keeps the namespace (no fork, no relay) for the late join on the main thread.
  { name: 'a pid namespace is kept for the late join', needsRoot: true, holder: 'pid', env: (c) => ({ gons_pid: c.ns.pid!.paths.pid }), expect: { pidPending: true } },
  // The holder is the pid namespace's init; the pidfd is closed, its pid namespace kept as an fd of its own.
  {
    name: 'a pid namespace by pidfd is kept for the late join', needsRoot: true, holder: 'pid', env: { gons_target_types: 'pid' }, target: { holder: 'pid' },
    expect: { pidPending: true, targetFdOpen: false },
  },
  // A user namespace made by nobody, its root mapped to uid 100000 and 65534 to itself; the driver has one supplementary group.
  {
    name: 'join a user namespace, become its root', needsRoot: true, asNobody: true, holder: 'user', env: (c) => ({ gons_user: c.ns.user!.paths.user }),
    expect: { joined: ['user'], ids: { uid: 0, gid: 0, ngroups: 0 }, dumpable: 0 },
  },
  {
    name: 'join a user namespace, gons_preserve_credentials=1', needsRoot: true, asNobody: true, holder: 'user',
    env: (c) => ({ gons_user: c.ns.user!.paths.user, gons_preserve_credentials: '1' }), expect: { joined: ['user'], ids: { uid: 65534, gid: 65534, ngroups: 1 } },
  },
  {
    name: 'join a user namespace by pidfd, become its root', needsRoot: true, asNobody: true, holder: 'user', env: { gons_target_types: 'user' }, target: { holder: 'user' },
    expect: { joined: ['user'], ids: { uid: 0, gid: 0, ngroups: 0 }, targetFdOpen: false },
  },
  // A non-root caller entering a rootless container: its uts namespace is owned by its user namespace, so joining uts
  // first fails (EPERM) until the user namespace is joined. As nsenter, the hook joins user first and last (issue #24).
  {
    name: 'nobody: [uts, user] joins user first when uts needs it', needsRoot: true, asNobody: true, holder: 'userUts',
    env: (c) => ({ gons_user: c.ns.userUts!.paths.user, gons_uts: c.ns.userUts!.paths.uts, gons_order: 'uts,user' }),
    expect: { joined: ['user', 'uts'], ids: { uid: 0, gid: 0, ngroups: 0 }, dumpable: 0 },
  },
  {
    name: 'nobody: [user, uts] as before', needsRoot: true, asNobody: true, holder: 'userUts',
    env: (c) => ({ gons_user: c.ns.userUts!.paths.user, gons_uts: c.ns.userUts!.paths.uts, gons_order: 'user,uts' }),
    expect: { joined: ['user', 'uts'], ids: { uid: 0, gid: 0, ngroups: 0 }, dumpable: 0 },
  },
  {
    name: 'nobody: [uts, user] with gons_preserve_credentials=1 keeps the ids', needsRoot: true, asNobody: true, holder: 'userUts',
    env: (c) => ({ gons_user: c.ns.userUts!.paths.user, gons_uts: c.ns.userUts!.paths.uts, gons_order: 'uts,!user', gons_preserve_credentials: '1' }),
    expect: { joined: ['user', 'uts'], ids: { uid: 65534, gid: 65534, ngroups: 1 } },
  },
  {
    name: 'nobody: uts without its user namespace is still EPERM', needsRoot: true, asNobody: true, holder: 'userUts',
    env: (c) => ({ gons_uts: c.ns.userUts!.paths.uts }),
    expect: E('EPERM', 'gons_uts', 'setns', { path: (c) => c.ns.userUts!.paths.uts }),
  },
  // Under AT_SECURE the hook must not trust the environment.
  {
    name: 'secure execution (setuid): the hook does nothing', needsRoot: true, asNobody: true, secure: true, env: { gons_net: '/nonexistent', gons_order: 'bogus' },
    expect: { ran: 0, gonsEnv: { gons_net: '/nonexistent', gons_order: 'bogus' } },
  },
];

/**
 * A user namespace owned by nobody (createNamespaces maps root to its caller; these rows need nobody as owner and a map
 * root writes), and namespaces of `more` types it owns, as a rootless container's.
 */
async function nobodysUserNamespace(more: NamespaceType[] = []): Promise<Namespaces> {
  const holder = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'unshare', '--user', ...more.map((type) => `--${type}`), 'sh', '-c', 'echo ready; read _'],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  await once(holder.stdout!, 'data');
  const pid = holder.pid!;
  // Each map in a single write(2).
  for (const map of ['uid_map', 'gid_map']) writeFileSync(`/proc/${pid}/${map}`, '0 100000 1\n65534 65534 1\n');
  const close = async () => {
    if (holder.exitCode === null && holder.signalCode === null) {
      const exited = once(holder, 'exit');
      holder.kill('SIGKILL');
      await exited;
    }
  };
  t.teardown(close);
  const paths = Object.fromEntries(['user', ...more].map((type) => [type, `/proc/${pid}/ns/${type}`])) as Record<NamespaceType, string>;
  return { pid, paths, namespaces: () => Object.entries(paths).map(([type, path]) => ({ type: `!${type as NamespaceType}` as const, path })), close };
}

// --- the two ways to run a row ------------------------------------------------------------------------------

/** What a run gave: exit, stderr and the parsed line on stdout. */
interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (stdin closed at once), with a bound only a hang reaches. */
async function run(file: string, args: string[], env: NodeJS.ProcessEnv, opts: { cwd?: string; fd4?: number; encoding?: BufferEncoding } = {}): Promise<Outcome> {
  const stdio: StdioOptions = opts.fd4 === undefined ? 'pipe' : ['pipe', 'pipe', 'pipe', 'ignore', opts.fd4];
  const child = spawn(file, args, { env, cwd: opts.cwd, stdio, timeout: LONG, killSignal: 'SIGKILL' });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (d: Buffer) => out.push(d));
  child.stderr!.on('data', (d: Buffer) => err.push(d));
  child.stdin!.end();
  const [code, signal] = await once(child, 'close') as [number | null, NodeJS.Signals | null];
  return { code, signal, stdout: Buffer.concat(out).toString(opts.encoding ?? 'utf8'), stderr: Buffer.concat(err).toString() };
}

const ASAN_OPTIONS = 'detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:detect_invalid_pointer_pairs=1';
const sanitizerEnv = {
  ASAN_OPTIONS,
  UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
};

/** A value the driver reads from a file: above the kernel's limit for one string of a new program, or bytes beyond ASCII. */
const viaFile = (value: string) => value.length > 100_000 || /[^\x00-\x7f]/.test(value);

/**
 * The driver's arguments for a row. It sets every variable itself (-s, or -f from a file), the same way for all:
 * LD_PRELOAD must not reach the loader, and the heap copies the hook makes of the variables in the exec-time
 * environment block are leaked when it removes them (a hook bug, reported; glibc never frees what unsetenv drops),
 * which LeakSanitizer would report and only a suppression, symbolized at ~0.3 s a run, could let pass.
 * Node's half gets them in its exec-time environment.
 */
function driverArgs(row: Row, c: Ctx): string[] {
  const args: string[] = [];
  const vars = { ...val(row.env ?? {}, c), ...(row.preload ? { LD_PRELOAD: row.preload(c) } : {}) };
  for (const [name, value] of Object.entries(vars)) {
    if (!viaFile(value)) {
      args.push('-s', `${name}=${value}`);
      continue;
    }
    const file = join(c.work, 'values', `${name}-${process.hrtime.bigint()}`);
    writeFileSync(file, value, 'latin1');
    args.push('-f', `${name}=${file}`);
  }
  const target = row.target;
  if (target === 'self') args.push('-P', 'self');
  else if (target === 'exited') args.push('-X');
  else if (target && 'holder' in target) args.push('-P', String(c.ns[target.holder]!.pid));
  else if (target) args.push('-F', target.file(c));
  if (row.enter) args.push('-e', ...(row.enter.probe ? ['-p', row.enter.probe(c)] : []));
  return args;
}

/** The line the driver prints (see native/test/driver.c). */
interface DriverState {
  version: number; ran: number; err: number; envvar: string; path: string; syscall: string; message: string;
  joined: number; root_moved: number; pid_pending: number; dumpable: number; pid: number; ppid: number; uid: number; gid: number; ngroups: number;
  nodename: string; self: string; LD_PRELOAD: string | null; gons_env: Vars; target_fd_open?: number;
  enter?: number; root_moved_entered?: number; leave?: number; probe?: number[];
}

const val = <T>(v: T | ((c: Ctx) => T), c: Ctx): T => (typeof v === 'function' ? (v as (c: Ctx) => T)(c) : v);
const messageOf = (e: NonNullable<Expect['error']>, c: Ctx, path: string) => val(e.message!, c).replace(/PATH: No such process$/, `${path}: No such process`);

/** The driver's state as the row expects it: only the fields the row speaks of, plus the ones every row checks. */
function expectedState(row: Row, c: Ctx): Partial<DriverState> {
  const x = row.expect;
  const want: Partial<DriverState> = { version: 2, ran: x.ran ?? 1, root_moved: 0, joined: flags(x.joined ?? []) };
  if (x.ran !== 0) want.gons_env = x.gonsEnv ?? {};
  want.LD_PRELOAD = x.preload === undefined ? null : val(x.preload, c);
  want.err = x.error ? constants.errno[x.error.code] : 0;
  if (x.error) {
    want.envvar = x.error.envvar;
    want.syscall = x.error.syscall;
    if (x.error.path !== undefined) want.path = val(x.error.path, c);
  } else {
    Object.assign(want, { envvar: '', path: '', syscall: '', message: '' });
  }
  if (x.dumpable !== undefined) want.dumpable = x.dumpable;
  if (x.self) want.self = x.self(c);
  if (x.nodename) want.nodename = x.nodename;
  if (x.ids) Object.assign(want, x.ids);
  want.pid_pending = x.pidPending ? 1 : 0;
  if (x.pidPending) want.ppid = process.pid;
  if (x.targetFdOpen !== undefined) want.target_fd_open = Number(x.targetFdOpen);
  if (x.enter === 'ENOENT') Object.assign(want, { enter: -constants.errno.ENOENT, leave: 0 });
  else if (x.enter) Object.assign(want, { enter: 0, root_moved_entered: 1, leave: 0, probe: x.enter.probe });
  return want;
}

/** Runs at most `n` of the functions given at a time, in the order given. */
function pool(n: number) {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    while (active >= n) await new Promise<void>((resolve) => waiting.push(resolve));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

/** `p`, marked handled: it is awaited later, by a subtest (or never, if the test ends first). */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

// --- the test -------------------------------------------------------------------------------------------------

/** The hook's units: binding.gyp's gons_preinit sources, as scripts/hook-sources.mjs reads them (so does scripts/fuzz.sh). */
function hookSources(): string[] {
  const out = execFileSync(process.execPath, [join(projectRoot, 'scripts', 'hook-sources.mjs')], { encoding: 'utf8' });
  return out.trim().split('\n').map((f) => join(projectRoot, f));
}

/** The compiler that builds and runs a sanitized driver here, or why none does. */
function buildDriver(work: string): { driver: string; cc: string } | { skip: string } {
  const driver = join(work, 'bin', 'driver');
  const tried: string[] = [];
  for (const cc of ['clang', 'gcc']) {
    // The driver links the hook's units, with the constructor left to its main() (-DGONS_PREINIT_CONSTRUCTOR=).
    const res = spawnSync(cc, ['-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-fno-omit-frame-pointer', '-g', '-O1', '-Wall', '-Wextra', '-Werror',
      '-DGONS_PREINIT_CONSTRUCTOR=', '-o', driver, join(projectRoot, 'native', 'test', 'driver.c'), ...hookSources()], { encoding: 'utf8' });
    if (res.error) {
      tried.push(`${cc}: not found`);
      continue;
    }
    if (res.status !== 0) {
      tried.push(`${cc} cannot build it: ${res.stderr.trim().split('\n').slice(-3).join(' ')}`);
      continue;
    }
    const probe = spawnSync(driver, [], { env: { ASAN_OPTIONS }, encoding: 'utf8' });
    if (probe.status !== 0) {
      tried.push(`${cc}'s sanitized binary does not run: ${probe.stderr.trim().split('\n')[0]}`);
      continue;
    }
    chmodSync(driver, 0o755);
    return { driver, cc };
  }
  return { skip: `no sanitizer build (${tried.join('; ')}): apt-get install clang, or gcc with libasan and libubsan` };
}

t.test('the hook, scenario by scenario', async (t) => {
  // Reachable by nobody: the rows that run as nobody run these files.
  const work = mkdtempSync(join(tmpdir(), 'gons-scenarios-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  for (const dir of ['', 'bin', 'node', 'mnt', 'values']) {
    mkdirSync(join(work, dir), { recursive: true });
    chmodSync(join(work, dir), 0o755);
  }
  execFileSync('mkfifo', [join(work, 'fifo')]);
  // Node's half loads a copy of the hook, beside which its other names can be made.
  const nodeHook = join(work, 'node', basename(preinitPath));
  copyFileSync(preinitPath, nodeHook);
  chmodSync(nodeHook, 0o755);
  const built = buildDriver(work);
  const driverSkip = 'skip' in built ? built.skip : false;
  if ('skip' in built) t.comment(`sanitizer driver skipped: ${built.skip}`);
  else t.comment(`sanitizer driver built with ${built.cc}`);
  const driver = 'skip' in built ? join(work, 'bin', 'driver') : built.driver;
  // A set-user-ID copy of the driver, for secure execution.
  const setuid = join(work, 'bin', 'driver-setuid');
  if (existsSync(driver)) {
    copyFileSync(driver, setuid);
    chmodSync(setuid, 0o4755);
  }
  for (const hook of [driver, nodeHook]) {
    if (!existsSync(hook)) continue;
    symlinkSync(hook, join(dirname(hook), 'hook-symlink'));
    linkSync(hook, join(dirname(hook), 'hook-hardlink'));
  }

  const ns: Record<string, Namespaces> = {};
  const ctxFor = (hook: string): Ctx => ({ hook, dir: dirname(hook), name: basename(hook), work, ns });
  const driverCtx = ctxFor(driver);
  const nodeCtx = ctxFor(nodeHook);
  if (!needsRoot) {
    for (const name of new Set(rows.map((r) => r.holder).filter((h) => h !== undefined))) ns[name] = await holders[name]!(nodeCtx);
  }
  const own = Object.fromEntries(namespaceTypes.map((type) => [type, ino(`/proc/self/ns/${type}`)]));
  const ownPidForChildren = ino('/proc/self/ns/pid_for_children');
  const reportScript = fixturePath('report.ts');

  /** The fd of a row's target in this process (closed by the caller), and what /proc/self/fd shows for it. */
  async function openTarget(row: Row, c: Ctx): Promise<{ fd: number; link: string } | undefined> {
    const target = row.target;
    if (!target) return undefined;
    let fd: number;
    if (target === 'exited' || target === 'self' || 'holder' in target) {
      let pid = target === 'self' ? process.pid : target === 'exited' ? -1 : c.ns[target.holder]!.pid;
      const exited = target === 'exited' ? spawn('sleep', ['600']) : undefined;
      if (exited) pid = exited.pid!;
      const opened = addon.pidfdOpen(pid);
      if (!('fd' in opened)) throw new Error(`pidfd_open(${pid}) failed: ${opened.errno}`);
      if (exited) {
        const gone = once(exited, 'exit');
        exited.kill('SIGKILL');
        await gone; // and reaped
      }
      fd = opened.fd;
    } else {
      fd = openSync(target.file(c), 'r');
    }
    return { fd, link: readlinkSync(`/proc/self/fd/${fd}`) };
  }

  async function runDriver(row: Row): Promise<Outcome> {
    const c = driverCtx;
    const args = driverArgs(row, c);
    // LeakSanitizer lists the threads from /proc/<getpid()>/task: after joining a pid namespace that pid is one of
    // the namespace's, and the host's procfs shows another process or none ("LeakSanitizer has encountered a fatal
    // error"). ASan and UBSan stay on there.
    const full = row.expect.joined?.includes('pid') ? { ...sanitizerEnv, ASAN_OPTIONS: ASAN_OPTIONS.replace('detect_leaks=1', 'detect_leaks=0') } : sanitizerEnv;
    if (row.secure) return run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', setuid, ...args], full, { encoding: 'latin1' });
    if (row.asNobody) return run('setpriv', ['--reuid=65534', '--regid=65534', '--groups=65534', driver, ...args], full, { encoding: 'latin1' });
    const cwd = row.inHookDir ? c.dir : undefined;
    return run(row.inHookDir === './driver' ? `./${c.name}` : driver, args, full, { cwd, encoding: 'latin1' });
  }

  /** LD_PRELOAD for Node: the row's, if the loader finds the hook in it (by a path, from the cwd), else the hook before it. */
  function nodePreload(row: Row, c: Ctx, cwd: string): string {
    if (row.preload === undefined) return c.hook;
    const preload = row.preload(c);
    const hookIno = ino(c.hook);
    const names = preload.split(/[ :]/).filter((e) => e.includes('/'));
    return names.some((e) => { try { return statSync(resolve(cwd, e)).ino === hookIno; } catch { return false; } }) ? preload : `${c.hook}:${preload}`;
  }

  async function runNode(row: Row, target?: { fd: number }): Promise<Outcome> {
    const c = nodeCtx;
    const cwd = row.inHookDir ? c.dir : process.cwd();
    const env: Vars = { ...val(row.env ?? {}, c), LD_PRELOAD: nodePreload(row, c, cwd) };
    if (target) env.gons_target_pidfd = '4';
    const opts = JSON.stringify(row.expect.enter === 'ENOENT' ? { forceEnter: true } : row.enter ? { enterRoot: true, files: row.enter.probe ? [row.enter.probe(c)] : [] } : {});
    if (row.asNobody) {
      const [file, args, childEnv] = inStage(process.execPath, [reportScript, opts], { PATH: process.env.PATH, ...env });
      return run(file, args, childEnv, { fd4: target?.fd });
    }
    return run(process.execPath, [reportScript, opts], env, { cwd, fd4: target?.fd });
  }

  /** Why a row's Node half cannot run, or false. */
  function nodeSkip(row: Row): string | false {
    const c = nodeCtx;
    const vars = { ...val(row.env ?? {}, c), ...(row.preload ? { LD_PRELOAD: row.preload(c) } : {}) };
    const big = Object.entries(vars).find(([k, v]) => Buffer.byteLength(`${k}=${v}`) >= 128 * 1024);
    if (big) return `${big[0]} (${big[1].length} chars) is over the kernel's 128 KiB limit for one string of a new program's environment; only the driver, which sets it itself, gets it`;
    if (row.secure) return secureNodeSkip;
    return false;
  }
  // The Node half of secure execution is the test after the table: glibc then preloads only from a system directory.
  const secureNodeSkip = 'Node under secure execution needs the hook in a system directory: "under secure execution the hook does nothing (Node)" below';

  /** The Node half's outcome, and the link of its target fd (while it was open here). */
  async function nodeHalf(row: Row): Promise<{ res: Outcome; target?: { link: string } }> {
    const target = await openTarget(row, nodeCtx);
    try {
      return { res: await runNode(row, target), target };
    } finally {
      if (target) closeSync(target.fd);
    }
  }

  // Every row's processes start at once, a few at a time (they mostly wait on the loader and the kernel); the
  // subtests below take their outcomes in order.
  const limit = pool(4);
  const started = rows.map((row) => {
    const skip = (row.needsRoot && needsRoot) || (row.asNobody && needsNobody()) || false;
    const nodeSkipped = nodeSkip(row);
    return {
      skip,
      nodeSkipped,
      driver: skip || driverSkip ? undefined : quiet(limit(() => runDriver(row))),
      node: skip || nodeSkipped ? undefined : quiet(limit(() => nodeHalf(row))),
    };
  });

  for (const [i, row] of rows.entries()) {
    const run = started[i]!;
    await t.test(row.name, { skip: run.skip }, async (t) => {
      await t.test('sanitizer driver', { skip: driverSkip }, async (t) => {
        const res = await run.driver!;
        t.equal(res.stderr, '', 'nothing on stderr: the hook never prints, a sanitizer would');
        if (row.expect.killed) {
          t.equal(res.signal, 'SIGKILL', 'killed');
          t.equal(res.stdout, '', 'before it printed anything');
          return;
        }
        t.equal(res.code, 0, 'exit status 0');
        t.match(res.stdout, /^[^\n]*\n$/, 'one line');
        const j = JSON.parse(res.stdout) as DriverState;
        const want = expectedState(row, driverCtx);
        t.same(Object.fromEntries(Object.keys(want).map((k) => [k, j[k as keyof DriverState]])), want, 'state');
        if (row.expect.error?.message) t.equal(j.message, messageOf(row.expect.error, driverCtx, j.path), 'message');
      });
      await t.test('Node with the hook', { skip: run.nodeSkipped }, async (t) => {
        const c = nodeCtx;
        const { res, target } = await run.node!;
        // The loader warns about each LD_PRELOAD entry it cannot load; nothing else may appear.
        t.equal(res.stderr.replace(/^ERROR: ld\.so: object '[^']*' from LD_PRELOAD cannot be preloaded \([^)]*\): ignored\.\n/gm, ''), '', 'nothing else on stderr');
        if (row.expect.killed) {
          t.equal(res.signal, 'SIGKILL', 'killed');
          t.equal(res.stdout, '', 'before it printed anything');
          return;
        }
        t.equal(res.code, 0, 'exit status 0');
        const r = JSON.parse(res.stdout) as Report;
        const x = row.expect;
        t.equal(r.hookLoaded, true, 'the hook was loaded');
        if (x.error) {
          const want: Record<string, unknown> = { code: x.error.code, errno: -constants.errno[x.error.code], envVar: x.error.envvar, syscall: x.error.syscall };
          if (x.error.path !== undefined) want.path = val(x.error.path, c);
          if (x.error.message) want.message = messageOf(x.error, c, r.status?.path ?? '');
          t.same(r.status && Object.fromEntries(Object.keys(want).map((k) => [k, r.status![k as keyof typeof r.status]])), want, 'status()');
        } else {
          t.equal(r.status, null, 'status() is null');
        }
        const joined = x.joined ?? [];
        const into = row.holder ? ns[row.holder]!.paths : undefined;
        // A child run as nobody starts in a mount namespace of its own (the stage, see inStage).
        const compared = namespaceTypes.filter((type) => !(row.asNobody && type === 'mnt'));
        const wantNs = Object.fromEntries(compared.map((type) => [type, joined.includes(type) && into ? ino(into[type]) : own[type]]));
        t.same(Object.fromEntries(compared.map((type) => [type, r.ns[type]])), wantNs, joined.length ? `in the target's ${joined.join(', ')}, own others` : 'in its own namespaces');
        t.equal(r.env.LD_PRELOAD, x.preload === undefined || x.preload === null ? undefined : val(x.preload, c), 'LD_PRELOAD left');
        t.same(r.gonsEnv, x.ran === 0 ? x.gonsEnv : (x.gonsEnv ?? {}), 'gons_* variables left');
        if (x.nodename) t.equal(r.hostname, x.nodename, 'hostname');
        if (x.ids) t.match(r.ids, { uid: x.ids.uid, gid: x.ids.gid }, 'uid and gid');
        if (x.pidPending) {
          const pidNs = ino(into!.pid);
          t.equal(r.nsBeforePidJoin?.pid_for_children, ownPidForChildren, 'no pid namespace joined before the late join');
          t.equal(r.ns.pid_for_children, pidNs, 'after joinPidNamespace(): the target\'s pid namespace is the one for children');
          t.equal(r.ns.pid, own.pid, 'the process itself stays in our pid namespace');
          t.equal(r.ppid, process.pid, 'no relay: the process is our own child');
        } else {
          t.equal(r.ns.pid_for_children, ownPidForChildren, 'no pid namespace joined for children');
        }
        if (x.targetFdOpen !== undefined) t.equal(r.fdLinks['4'] === target!.link, x.targetFdOpen, `the target fd (${target!.link}) is ${x.targetFdOpen ? 'open' : 'closed'}`);
        if (x.enter === 'ENOENT') t.equal(r.enterError, 'package gons: cannot enter the root of the joined mount namespace: No such file or directory');
        else if (x.enter) {
          const probe = row.enter!.probe!(c);
          const seen = [r.files[probe], r.inTarget?.files[probe], r.after?.files[probe]].map((f) => Number(f !== null && f !== undefined));
          t.same(seen, x.enter.probe, 'the probe shows only inside the target root');
          t.equal(r.inTarget?.cwd, '/', 'entered: cwd is the target root');
          t.equal(r.after?.cwd, process.cwd(), 'left: back in the original cwd');
        }
      });
    });
  }
});

t.test('under secure execution the hook does nothing (Node)', { skip: needsNobody() }, async (t) => {
  // glibc preloads a library under AT_SECURE only from a system directory and set-user-ID.
  const lib = `/usr/lib/${execFileSync('gcc', ['-dumpmachine'], { encoding: 'utf8' }).trim()}/libgons_preinit_securetest.so`;
  const dir = t.testdir({});
  const node = join(dir, 'node');
  copyFileSync(preinitPath, lib);
  chmodSync(lib, 0o4755);
  t.teardown(() => rmSync(lib, { force: true }));
  copyFileSync(process.execPath, node);
  chmodSync(dir, 0o755);
  chmodSync(node, 0o755);
  execFileSync('setcap', ['cap_net_bind_service+ep', node]);
  const [file, args, env] = inStage(node, [fixturePath('report.ts')], { PATH: process.env.PATH, LD_PRELOAD: basename(lib), gons_net: '/nonexistent', gons_order: 'bogus' });
  const res = await run(file, args, env);
  t.equal(res.code, 0, 'the child exits normally', { stderr: res.stderr });
  const r = JSON.parse(res.stdout) as Report;
  t.equal(r.hookLoaded, true, 'the hook was loaded');
  t.equal(r.status, null, 'and did not act on gons_net or gons_order');
  t.same(r.gonsEnv, { gons_net: '/nonexistent', gons_order: 'bogus' }, 'nor remove them');
});
