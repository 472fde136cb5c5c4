/**
 * Confinement: a child that takes the credentials of the target process
 * (uids, gids, groups, the five capability sets, no_new_privs) and keeps no
 * way back to the host's filesystem. The parent reads them (`confineValue`);
 * the hook applies them before Node starts and finishes at serve time
 * (`confineChild`).
 */
import { constants } from 'node:os';
import { readFileSync, statSync } from 'node:fs';
import { NamespaceSwitchError, gonsError } from './errors';
import { addon } from './native';
import type { NamespaceType } from './namespaces';
import { readProcFile } from './target';

const { ENOSYS } = constants.errno;
const ESRCH = 3;

/** The protocol variable that carries the target's credentials to the hook. */
export const CONFINE_ENV = 'gons_confine';
/** The protocol variable that carries the target's own seccomp filters to the hook. */
export const SECCOMP_ENV = 'gons_seccomp';

/**
 * The `gons_seccomp` value for process `pid`: its seccomp filters (most
 * recently installed first, each the hex of its raw cBPF program), or
 * undefined when it has none or the kernel does not hand them over (we lack
 * CAP_SYS_ADMIN, the process is traced already, it is our own): then the
 * child has gons's own filter only (docs/confinement.md).
 */
export function seccompValue(pid: number, pidfd?: number): string | undefined {
  if (field(readProc(pid, 'status'), 'Seccomp', pid) !== '2') return undefined;
  // The filters are read by pid: the addon checks, with the process stopped, that the pidfd still shows that pid.
  const own = pidfd === undefined ? addon.pidfdOpen(pid) : undefined;
  /* c8 ignore next 3 -- pidfd_open fails only for a process that exited since its status was read: -1 fails closed below */
  const fd = own === undefined ? pidfd as number : 'fd' in own ? own.fd : -1;
  const got = addon.seccompFilters(pid, fd);
  if (own !== undefined && 'fd' in own) addon.closeFd(own.fd);
  if ('errno' in got) {
    // The process we were asked about is gone (its pid may be another's now): fail closed.
    if (got.syscall === 'pidfd') {
      throw new NamespaceSwitchError(`package gons: process ${pid} exited while its seccomp filters were read: ${addon.strerror(got.errno)}`, {
        envVar: SECCOMP_ENV, path: `/proc/${pid}`, syscall: got.syscall, errno: got.errno,
      });
    }
    return undefined;
  }
  return got.filters.map((f) => f.toString('hex')).join(','); // Seccomp: 2 means at least one filter
}

/** `inside outside count` lines, read from our side: outside ids are ours. */
function mapInto(map: string, id: number, what: string, pid: number): number {
  for (const line of map.trim().split('\n')) {
    const [inside, outside, count] = line.trim().split(/\s+/).map(Number);
    if (id >= outside && id < outside + count) return inside + (id - outside);
  }
  throw gonsError('ERR_GONS_CONFINE_UNMAPPED', `gons: confine: ${what} ${id} of process ${pid} is not mapped in its user namespace`);
}

function field(status: string, name: string, pid: number): string {
  const m = new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status);
  /* c8 ignore next -- every Linux >= 4.3 prints all of these */
  if (!m) throw new Error(`gons: confine: /proc/${pid}/status has no ${name} line`);
  return m[1].trim();
}

const sameNs = (pid: number, type: NamespaceType) => statSync(`/proc/${pid}/ns/${type}`).ino === statSync(`/proc/self/ns/${type}`).ino;

/**
 * The `gons_confine` value for the process `pid`, whose namespaces of
 * `joined` types the child will join:
 * `RUID,EUID,SUID;RGID,EGID,SGID;GROUPS;INH,PRM,EFF,BND,AMB`, ids translated
 * into the target's user namespace. A target in a user or mount namespace
 * the child would not join is refused: its capabilities would count in ours,
 * its root would not be the child's. Checks through a pidfd that what was
 * read belongs to the process still behind `pid`.
 */
export function confineValue(pid: number, joined: readonly NamespaceType[]): string {
  for (const type of ['user', 'mnt'] as const) {
    if (!joined.includes(type) && !sameNs(pid, type)) {
      throw gonsError('ERR_INVALID_ARG_VALUE', `gons: confine: process ${pid} has a ${type} namespace of its own, which the child must join (target.types)`);
    }
  }
  const opened = addon.pidfdOpen(pid);
  /* c8 ignore start -- resolveTarget opened one for the same pid a moment ago */
  if ('errno' in opened) {
    throw new NamespaceSwitchError(`package gons: cannot open process ${pid}: ${addon.strerror(opened.errno)}`, {
      envVar: CONFINE_ENV, path: `/proc/${pid}`, syscall: opened.syscall, errno: opened.errno,
    });
  }
  /* c8 ignore stop */
  try {
    const status = readProc(pid, 'status');
    const ownUserNs = joined.includes('user');
    const uidMap = ownUserNs ? readProc(pid, 'uid_map') : '';
    const gidMap = ownUserNs ? readProc(pid, 'gid_map') : '';
    const ids = (name: string, map: string, count: number) => field(status, name, pid).split(/\s+/).filter(Boolean).slice(0, count)
      .map((s) => (ownUserNs ? mapInto(map, Number(s), name.toLowerCase(), pid) : Number(s)));
    const uids = ids('Uid', uidMap, 3);
    const gids = ids('Gid', gidMap, 3);
    const groups = ids('Groups', gidMap, Infinity);
    const caps = ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'].map((c) => field(status, c, pid).toLowerCase());
    // The pidfd still names a live process, so the pid was not recycled while we read.
    const fdinfo = readFileSync(`/proc/self/fdinfo/${opened.fd}`, 'utf8');
    /* c8 ignore start -- a race: the target exits while we read */
    if (!new RegExp(`^Pid:\\s*${pid}$`, 'm').test(fdinfo)) {
      throw new NamespaceSwitchError(`package gons: process ${pid} exited while its credentials were read`, {
        envVar: CONFINE_ENV, path: `/proc/${pid}`, syscall: 'pidfd_open', errno: ESRCH,
      });
    }
    /* c8 ignore stop */
    return `${uids.join(',')};${gids.join(',')};${groups.join(',')};${caps.join(',')}`;
  } finally {
    addon.closeFd(opened.fd);
  }
}

let failure: NamespaceSwitchError | null = null;

/**
 * In the child, before the first action: the hook's serve-time step (enter
 * the target root, close the host-root fds, drop the extras). Returns true
 * when confinement was asked for, whether or not it succeeded; a failure is
 * kept for `confineError()`, and then no action may run.
 */
export function confineChild(): boolean {
  const r = addon.confine();
  if (r === 0 || r === -ENOSYS) return false;
  if (r === 1) {
    process.chdir('/'); // Node caches its cwd
  /* c8 ignore start -- the serve-time step fails only if the kernel refuses what the constructor's same calls allowed */
  } else {
    failure = new NamespaceSwitchError(`package gons: cannot confine to the target's credentials: ${addon.strerror(-r)}`, {
      envVar: CONFINE_ENV, path: '/', syscall: 'chroot', errno: -r,
    });
  }
  /* c8 ignore stop */
  return true;
}

/** The failure of `confineChild()`, if any. */
export function confineError(): NamespaceSwitchError | null {
  return failure;
}


function readProc(pid: number, file: string): string {
  return readProcFile(pid, file, 'credentials', pid, CONFINE_ENV);
}
