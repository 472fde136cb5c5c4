/**
 * Entering the namespaces of a running process: the parent opens a pidfd, so
 * the process is pinned from the call on, and the hook joins the chosen
 * namespaces with one atomic `setns(pidfd, mask)`.
 */
import { constants, release } from 'node:os';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { NamespaceSwitchError, errnoName, gonsError, systemError } from './errors';
import { addon } from './native';
import { type Namespace, type NamespaceType, isNamespaceType, namespaceKinds, namespaceTypes } from './namespaces';

/** A process whose namespaces to join. */
export interface Target {
  /** The process whose namespaces to join, e.g. a container's init; a live process, checked through a pidfd. */
  pid: number;
  /** Which of its namespaces; `'all'` (the default) means every one that differs from ours, like `nsenter --all`. */
  types?: NamespaceType[] | 'all';
  /**
   * Risks this target carries that the caller accepts (see docs/security.md):
   * `'ptrace'`, a container that may ptrace the child;
   * `'host-pid'`, a container in our pid namespace whose paths an unconfined
   * child follows. Refused by default (`ERR_GONS_UNSAFE_TARGET`).
   */
  allow?: TargetRisk[];
}

/** What `target.allow` may accept. */
export const targetRisks = ['ptrace', 'host-pid'] as const;
/** A risk a target carries that the caller may accept: `'ptrace'` or `'host-pid'` (see `Target.allow`). */
export type TargetRisk = typeof targetRisks[number];

/** What the hook needs: a pidfd and the types to join, or (before Linux 5.8) plain namespace paths. */
export type ResolvedTarget =
  | { pidfd: number; types: NamespaceType[]; close(): void }
  | { namespaces: Namespace[]; close(): void };

/** Linux 5.8 brought setns(pidfd, mask). Ours is looked up once: a running kernel does not change. */
export function kernelHasPidfdSetns(osRelease?: string): boolean {
  if (osRelease === undefined) return (ourKernelHasPidfdSetns ??= kernelHasPidfdSetns(release()));
  const [major, minor] = osRelease.split('.').map((n) => parseInt(n, 10));
  return major > 5 || (major === 5 && minor >= 8);
}
let ourKernelHasPidfdSetns: boolean | undefined;

/** The `/proc` file of a namespace: the target's by type; our own by the table's procname, the one a join changes (e.g. pid_for_children), which the hook compares too. */
function nsPath(pid: number | 'self', type: NamespaceType): string {
  return `/proc/${pid}/ns/${pid === 'self' ? namespaceKinds[type].procname : type}`;
}

/** A namespace we may not inspect: an error naming the process. */
function inspectError(pid: number | 'self', type: NamespaceType, errno: number): NamespaceSwitchError {
  return new NamespaceSwitchError(`package gons: cannot inspect the ${type} namespace of process ${pid}: ${addon.strerror(errno)}`, {
    envVar: 'gons_target_pidfd', path: nsPath(pid, type), syscall: 'stat', errno,
  });
}

/** The namespace's inode; a namespace we may not inspect is an error naming the process. */
function inode(pid: number | 'self', type: NamespaceType): number {
  try {
    return statSync(nsPath(pid, type)).ino;
  } catch (err) {
    throw inspectError(pid, type, -((err as NodeJS.ErrnoException).errno as number));
  }
}

/**
 * A target's `/proc/<pid>/<file>`; a read that fails (the process exited in between) is a NamespaceSwitchError
 * naming `what` was read, for the protocol variable `envVar` it was read for.
 */
export function readProcFile(pid: number | 'self', file: string, what: string, targetPid: number, envVar: string): string {
  const path = `/proc/${pid}/${file}`;
  try {
    return readFileSync(path, 'utf8');
  /* c8 ignore start -- only a target that exits between its pidfd's checks and this read */
  } catch (err) {
    const errno = -((err as NodeJS.ErrnoException).errno as number);
    throw new NamespaceSwitchError(`package gons: cannot read the ${what} of process ${targetPid}: ${addon.strerror(errno)}`, {
      envVar, path, syscall: 'open', errno,
    });
  }
  /* c8 ignore stop */
}

/**
 * True while the process behind `pidfd` has not been reaped (so `pid` still
 * names it): signal 0 through the pidfd, or where we may not signal it, the
 * pid the kernel shows in the pidfd's fdinfo (-1 once it is gone, Linux >=
 * 5.12; earlier kernels keep showing the pid, and the hook's setns on the
 * pidfd then fails with ESRCH instead).
 */
export function pidfdAlive(pidfd: number, pid: number): boolean {
  return addon.pidfdAlive(pidfd, pid);
}

let kernelTypesSeen: NamespaceType[] | undefined;
/** The namespace types this kernel has (time namespaces came with Linux 5.6): looked up once, a kernel does not change. */
export function kernelTypes(): NamespaceType[] {
  kernelTypesSeen ??= namespaceTypes.filter((t) => existsSync(`/proc/self/ns/${t}`));
  return kernelTypesSeen;
}

/** Checks a target's shape (`where` starts the messages); its `types` default to `'all'`. */
export function checkTarget(where: string, target: Target): Required<Target> {
  const { pid, types = 'all', allow = [] } = target ?? {};
  const invalid = (message: string, code: 'ERR_INVALID_ARG_VALUE' | 'ERR_INVALID_ARG_TYPE' = 'ERR_INVALID_ARG_VALUE') => gonsError(code, `${where}: ${message}`);
  // A pid read from a command's output is a string ("17638\n"): say so, not that 17638 is no positive integer.
  if (typeof pid === 'string') throw invalid(`target.pid must be a number, not the string ${JSON.stringify(pid)} (convert it with Number())`, 'ERR_INVALID_ARG_TYPE');
  if (!Number.isSafeInteger(pid) || pid <= 0) throw invalid(`target.pid must be a positive integer, not ${String(pid)}`);
  if (types !== 'all' && (!Array.isArray(types) || types.length === 0 || !types.every(isNamespaceType) || new Set(types).size !== types.length)) {
    throw invalid(`target.types must be 'all' or a list of distinct namespace types, not ${JSON.stringify(types)}`);
  }
  if (!Array.isArray(allow) || !allow.every((r) => targetRisks.includes(r)) || new Set(allow).size !== allow.length) {
    throw invalid(`target.allow must be a list of distinct risks (${targetRisks.map((r) => `'${r}'`).join(', ')}), not ${JSON.stringify(allow)}`);
  }
  return { pid, types, allow };
}

const capLines = {
  CapBnd: /^CapBnd:\s*([0-9a-f]+)$/m,
  CapPrm: /^CapPrm:\s*([0-9a-f]+)$/m,
};

/** A capability set (CapBnd, CapPrm) in a /proc/<pid>/status text. */
function caps(status: string, set: keyof typeof capLines): bigint {
  const hex = capLines[set].exec(status)?.[1];
  /* c8 ignore next -- every Linux since 2.6.26 prints these */
  if (hex === undefined) throw new Error(`no ${set} in /proc/<pid>/status`);
  return BigInt(`0x${hex}`);
}

/** Our effective capabilities (the CapEff of /proc/self/status), from capget(2). */
function ourCapEff(): bigint {
  const hex = addon.capEff();
  /* c8 ignore next -- capget of the calling thread with a valid header does not fail */
  if (typeof hex !== 'string') throw systemError(`gons: cannot read our capabilities: ${addon.strerror(hex.errno)}`, hex);
  return BigInt(`0x${hex}`);
}

/** What a process can hold: its permitted set, and its bounding set if one of its uids is 0 (root regains it on execve). */
function reachable(status: string): bigint {
  const uids = /^Uid:\s*(.*)$/m.exec(status)?.[1].trim().split(/\s+/) ?? [];
  return caps(status, 'CapPrm') | (uids.includes('0') ? caps(status, 'CapBnd') : 0n);
}

const CAP_SYS_PTRACE = 19n;

/** What a target's inspection reads of /proc (see `readTarget`). */
interface TargetFacts {
  /** Inodes of the wanted namespaces: the target's, and ours (by procname), in `wanted`'s order. */
  theirs: number[];
  ours: number[];
  theirUser: number;
  ourUser: number;
  theirPid: number;
  ourPid: number;
  ourCapEff: bigint;
  theirStatus: string;
}

/**
 * Everything inspecting process `pid` reads of /proc, in one native call
 * (stat(2)s of namespace files, its status file) instead of ~25 of Node's:
 * the namespaces of `wanted` on both sides and what `refuseRisks` needs.
 * Throws the `NamespaceSwitchError` of a wanted namespace we may not inspect;
 * returns (as fs would have thrown it) the error of a later read, which the
 * caller weighs against its pidfd. The reads go by pid: the caller re-checks
 * the pidfd afterwards.
 */
function readTarget(pid: number, wanted: NamespaceType[]): TargetFacts | Error {
  // Paths grouped by directory (the addon walks each directory once), each stat'ed once.
  const theirPaths = [...new Set([...wanted.map((t) => nsPath(pid, t)), `/proc/${pid}/ns/user`, `/proc/${pid}/ns/pid`])];
  const ourPaths = [...new Set([...wanted.map((t) => nsPath('self', t)), '/proc/self/ns/user', '/proc/self/ns/pid'])];
  const stats = [...theirPaths, ...ourPaths];
  const reads = [`/proc/${pid}/status`];
  const facts = addon.procFacts(stats, reads);
  if ('errno' in facts) {
    const path = [...stats, ...reads][facts.index];
    const at = wanted.findIndex((t) => nsPath(pid, t) === path);
    if (at >= 0) throw inspectError(pid, wanted[at], facts.errno);
    /* c8 ignore start -- our own namespaces are always there to stat; the target's status is read only after them */
    const ours = wanted.findIndex((t) => nsPath('self', t) === path);
    if (ours >= 0) throw inspectError('self', wanted[ours], facts.errno);
    /* c8 ignore stop */
    // As fs would have thrown it: the process went away, or may not be inspected.
    return systemError(`${errnoName(facts.errno)}: ${addon.strerror(facts.errno)}, ${facts.syscall} '${path}'`, { errno: facts.errno, syscall: facts.syscall, path });
  }
  const inos = new Map(stats.map((path, i) => [path, facts.inos[i]]));
  const ino = (path: string) => inos.get(path)!;
  return {
    theirs: wanted.map((t) => ino(nsPath(pid, t))),
    ours: wanted.map((t) => ino(nsPath('self', t))),
    theirUser: ino(`/proc/${pid}/ns/user`),
    ourUser: ino('/proc/self/ns/user'),
    theirPid: ino(`/proc/${pid}/ns/pid`),
    ourPid: ino('/proc/self/ns/pid'),
    ourCapEff: ourCapEff(),
    theirStatus: facts.texts[0],
  };
}

/**
 * Refuses a target a child must not serve unless the caller accepts the
 * risk (`target.allow`). A target is *contained* when it lives in another
 * user namespace or its bounding set lacks a capability ours has: a process
 * with all of our capabilities in our user namespace can do whatever a child
 * could, and gons takes nothing from it (a test's namespace holder, a host
 * daemon). Of a contained target:
 * - `'ptrace'`: CAP_SYS_PTRACE in its bounding set, in our user namespace,
 *   and the child joins its pid namespace: the container sees the child and
 *   may ptrace it (inject code into a process with the host's capabilities)
 *   or follow `/proc/<child>/root` to the host's root while it starts.
 * - `'host-pid'`: it shares our pid namespace (`--pid=host`) and the child
 *   joins its mount namespace: its `/proc` shows every host process, and an
 *   unconfined child (host root, CAP_SYS_PTRACE) follows a planted
 *   `/proc/<host pid>/root/...` link where the container itself gets EACCES.
 *   A confined child has the target's credentials: no deputy.
 * The facts were read by pid: the caller re-checks the pidfd afterwards.
 */
function refuseRisks(pid: number, chosen: NamespaceType[], allow: readonly TargetRisk[], confine: boolean, facts: TargetFacts): void {
  const ours = facts.ourCapEff;
  const theirs = facts.theirStatus;
  const sameUser = facts.theirUser === facts.ourUser;
  const contained = !sameUser || (reachable(theirs) & ours) !== ours;
  if (!contained) return;
  const refuse = (risk: TargetRisk, what: string) => {
    if (allow.includes(risk)) return;
    throw gonsError('ERR_GONS_UNSAFE_TARGET', `gons: target process ${pid} ${what}; refused by default: accept the risk with target.allow: ['${risk}'] (see docs/security.md in the gons package)`, {
      pid, risk,
    });
  };
  if (chosen.includes('pid') && sameUser && (caps(theirs, 'CapBnd') >> CAP_SYS_PTRACE) & 1n) {
    refuse('ptrace', 'holds CAP_SYS_PTRACE in our user namespace and the child joins its pid namespace: it could ptrace the child, which has the host\'s capabilities');
  }
  if (!confine && chosen.includes('mnt') && facts.theirPid === facts.ourPid) {
    refuse('host-pid', 'shares our pid namespace and the child follows its paths: a link it plants to /proc/<host pid>/root would lead an unconfined child into the host\'s files (or use confine: true)');
  }
}

/**
 * Opens a pidfd for `target.pid` and picks the types to join, skipping
 * namespaces this process already shares with the target. Throws a
 * `NamespaceSwitchError` for a process that does not exist.
 */
export function resolveTarget(target: Target, pidfdSetns = kernelHasPidfdSetns(), inspect: (pid: number, type: NamespaceType) => number = inode, confine = false): ResolvedTarget {
  const { pid, types, allow } = checkTarget('gons', target);
  const opened = addon.pidfdOpen(pid);
  if ('errno' in opened) {
    throw new NamespaceSwitchError(`package gons: cannot open process ${pid}: ${addon.strerror(opened.errno)}`, {
      envVar: 'gons_target_pidfd', path: `/proc/${pid}`, syscall: opened.syscall, errno: opened.errno,
    });
  }
  const close = () => addon.closeFd(opened.fd);
  // 'all' means all this kernel has (time namespaces came with Linux 5.6).
  const wanted = types === 'all' ? kernelTypes() : namespaceTypes.filter((t) => types.includes(t));
  let chosen: NamespaceType[];
  let facts: TargetFacts | Error;
  try {
    // Already shared namespaces are skipped, as the hook does for paths.
    if (inspect === inode) {
      facts = readTarget(pid, wanted);
      const f = facts;
      chosen = f instanceof Error ? [] : wanted.filter((_, i) => f.theirs[i] !== f.ours[i]);
    } else {
      chosen = wanted.filter((t) => inspect(pid, t) !== inode('self', t));
      facts = readTarget(pid, []);
    }
  } catch (err) {
    close();
    throw err;
  }
  let refused: unknown = facts instanceof Error ? facts : undefined;
  try {
    if (!(facts instanceof Error)) refuseRisks(pid, chosen, allow, confine, facts);
  } catch (err) {
    refused = err;
  }
  // The reads went by pid: if the process died and its pid was reused in
  // between, they described another process. Never run with what they chose
  // (nor refuse for what they found: the process we were asked about is gone).
  const alive = pidfdAlive(opened.fd, pid);
  if (!alive || refused) close();
  if (alive && refused) throw refused;
  if (!alive) {
    throw new NamespaceSwitchError(`package gons: process ${pid} exited while its namespaces were inspected: ${addon.strerror(constants.errno.ESRCH)}`, {
      envVar: 'gons_target_pidfd', path: `/proc/${pid}`, syscall: 'pidfd_open', errno: constants.errno.ESRCH,
    });
  }
  if (pidfdSetns && chosen.length > 0) return { pidfd: opened.fd, types: chosen, close };
  close();
  return { namespaces: chosen.map((t) => ({ type: `!${t}`, path: `/proc/${pid}/ns/${t}` })), close: () => {} };
}

