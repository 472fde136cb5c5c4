/**
 * The cgroups a child joins before anything else (`gons_cgroup_dirs`): by
 * default those of a `target: { pid }`, so that the container's device
 * policy and limits apply to the child as they do to the container's own
 * processes (the device cgroup judges the opener's cgroup). The parent
 * reads the target's `/proc/<pid>/cgroup`, maps each hierarchy to its mount
 * point in our `/proc/self/mountinfo` and hands the directories to the hook
 * (native/cgroup.c), which moves the child into each before it joins any
 * namespace.
 */
import { constants } from 'node:os';
import { readFileSync, statfsSync } from 'node:fs';
import { NamespaceSwitchError, gonsError, systemError } from './errors';
import { addon } from './native';
import { readProcFile } from './target';

/** The protocol variable: cgroup directories, one per line. */
export const CGROUP_ENV = 'gons_cgroup_dirs';

/**
 * Which cgroups the child joins: `true` (the default with `target`) those of
 * the target, `false` none (the child stays in ours), `{ pid }` those of
 * another process, or a list of cgroup directories.
 */
export type CgroupsOption = boolean | { pid: number } | string[];

const CGROUP_SUPER_MAGIC = 0x27e0eb;
const CGROUP2_SUPER_MAGIC = 0x63677270;

/** An absolute path without empty, `.` or `..` components, NUL or newline: what the hook accepts. */
export function isCleanDir(dir: string): boolean {
  return dir.startsWith('/') && !/[\0\n]/.test(dir) && dir.slice(1).split('/').every((c) => c !== '' && c !== '.' && c !== '..');
}

/** Checks the `cgroups` option's shape (`what` starts the messages); nothing is read. */
export function checkCgroupsOption(what: string, value: unknown, hasTarget: boolean): void {
  if (value === undefined || typeof value === 'boolean') {
    if (value === true && !hasTarget) throw gonsError('ERR_INVALID_ARG_VALUE', `${what}: cgroups: true needs target: { pid }; with namespaces name the cgroups ({ pid } or directories)`);
    return;
  }
  if (Array.isArray(value)) {
    if (value.length === 0) throw gonsError('ERR_INVALID_ARG_VALUE', `${what}: cgroups must name at least one directory (false joins none)`);
    for (const dir of value) {
      if (typeof dir !== 'string' || !isCleanDir(dir)) {
        throw gonsError('ERR_INVALID_ARG_VALUE', `${what}: cgroups: ${JSON.stringify(dir)} is not an absolute directory without empty, "." or ".." components`);
      }
      let type: number;
      try {
        type = Number(statfsSync(dir).type);
      } catch (err) {
        const { code, errno } = err as NodeJS.ErrnoException;
        throw systemError(`${what}: cgroups: cannot inspect ${JSON.stringify(dir)}: ${code}`, { errno: errno!, syscall: 'statfs', path: dir });
      }
      if (type !== CGROUP_SUPER_MAGIC && type !== CGROUP2_SUPER_MAGIC) throw gonsError('ERR_INVALID_ARG_VALUE', `${what}: cgroups: ${JSON.stringify(dir)} is not a cgroup directory`);
    }
    return;
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const keys = Object.keys(value);
    const pid = (value as { pid?: unknown }).pid;
    if (keys.length !== 1 || keys[0] !== 'pid' || !Number.isSafeInteger(pid) || (pid as number) <= 0) {
      throw gonsError('ERR_INVALID_ARG_VALUE', `${what}: cgroups must be a boolean, { pid } with a positive integer pid, or a list of cgroup directories`);
    }
    return;
  }
  throw gonsError('ERR_INVALID_ARG_TYPE', `${what}: cgroups must be a boolean, { pid }, or a list of cgroup directories`);
}

/** One line of `/proc/<pid>/cgroup`: hierarchy id, controllers (empty for v2), path. */
export interface CgroupLine {
  id: number;
  controllers: string[];
  path: string;
}

/** A condition of the target's cgroups that gons cannot join (`ERR_GONS_CGROUP_UNRESOLVED`). */
function unresolved(pid: number, message: string, path: string): Error {
  return gonsError('ERR_GONS_CGROUP_UNRESOLVED', `gons: cannot join the cgroups of process ${pid}: ${message}`, { path });
}

/**
 * Parses `/proc/<pid>/cgroup` strictly. Its paths are container-controlled
 * (a container may create sub-cgroups of its own, with any name, a newline
 * included): every line must be well formed, every hierarchy appear once
 * (a forged line repeats one) and every path be clean (`/..` shows a cgroup
 * outside our cgroup namespace).
 */
export function parseProcCgroup(text: string, pid: number): CgroupLine[] {
  const lines: CgroupLine[] = [];
  const seen = new Set<number>();
  for (const line of text.replace(/\n$/, '').split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    const path = m?.[3] ?? '';
    if (!m || (path !== '/' && !isCleanDir(path)) || seen.has(Number(m[1])) || (m[1] === '0') !== (m[2] === '')) {
      throw unresolved(pid, `unexpected line ${JSON.stringify(line)} in /proc/${pid}/cgroup`, `/proc/${pid}/cgroup`);
    }
    seen.add(Number(m[1]));
    lines.push({ id: Number(m[1]), controllers: m[2] === '' ? [] : m[2].split(','), path });
  }
  return lines;
}

/** A cgroup mount of `/proc/self/mountinfo`. */
interface CgroupMount {
  root: string;
  mountPoint: string;
  v2: boolean;
  options: Set<string>;
}

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The cgroup (v1) and cgroup2 mounts of `mountinfo`'s text. */
export function cgroupMounts(mountinfo: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (dash < 6 || (f[dash + 1] !== 'cgroup' && f[dash + 1] !== 'cgroup2')) continue;
    mounts.push({ root: unescape(f[3]), mountPoint: unescape(f[4]), v2: f[dash + 1] === 'cgroup2', options: new Set((f[dash + 3] ?? '').split(',')) });
  }
  return mounts;
}

/** The directory of `line`'s cgroup under one of `mounts`, or undefined when its hierarchy is not mounted here. */
export function cgroupDir(line: CgroupLine, mounts: CgroupMount[]): string | undefined {
  const candidates = mounts.filter((m) => (line.controllers.length === 0 ? m.v2 : !m.v2 && line.controllers.every((c) => m.options.has(c))));
  for (const m of [...candidates.filter((c) => c.root === '/'), ...candidates.filter((c) => c.root !== '/')]) {
    if (m.root === '/' || line.path === m.root || line.path.startsWith(`${m.root}/`)) {
      const rest = m.root === '/' ? line.path : line.path.slice(m.root.length);
      const dir = rest === '/' || rest === '' ? m.mountPoint : `${m.mountPoint}${rest}`;
      // A mount point the hook cannot take (a newline in it, say) is as good as none.
      return isCleanDir(dir) ? dir : undefined;
    }
  }
  return undefined;
}

/**
 * The cgroup directories of process `pid` that differ from ours (those we
 * share the child is in already), read through a pidfd so that a pid
 * recycled meanwhile is noticed.
 */
export function cgroupDirsOf(pid: number): string[] {
  const opened = addon.pidfdOpen(pid);
  if ('errno' in opened) {
    throw new NamespaceSwitchError(`package gons: cannot open process ${pid}: ${addon.strerror(opened.errno)}`, {
      envVar: CGROUP_ENV, path: `/proc/${pid}`, syscall: opened.syscall, errno: opened.errno,
    });
  }
  try {
    const theirs = linesNotOurs(pid);
    const fdinfo = readFileSync(`/proc/self/fdinfo/${opened.fd}`, 'utf8');
    /* c8 ignore start -- a race: the target exits while we read */
    if (!new RegExp(`^Pid:\\s*${pid}$`, 'm').test(fdinfo)) {
      throw new NamespaceSwitchError(`package gons: process ${pid} exited while its cgroups were read: ${addon.strerror(constants.errno.ESRCH)}`, {
        envVar: CGROUP_ENV, path: `/proc/${pid}`, syscall: 'pidfd_open', errno: constants.errno.ESRCH,
      });
    }
    /* c8 ignore stop */
    const mounts = cgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
    const dirs: string[] = [];
    for (const line of theirs) {
      const dir = cgroupDir(line, mounts);
      if (dir === undefined) {
        // Named as /proc/<pid>/cgroup does: "5:devices", or "0:" for cgroup v2.
        throw unresolved(pid, `its hierarchy "${line.id}:${line.controllers.join(',')}" is not mounted here (path ${JSON.stringify(line.path)})`, line.path);
      }
      dirs.push(dir);
    }
    return dirs;
  } finally {
    addon.closeFd(opened.fd);
  }
}

/**
 * The lines of process `pid`'s `/proc/<pid>/cgroup` whose cgroup is not ours
 * (in those we share, the child is already).
 */
function linesNotOurs(pid: number): CgroupLine[] {
  const theirs = linesOf(pid, pid);
  const ours = new Map(linesOf('self', pid).map((l) => [l.id, l.path]));
  return theirs.filter((l) => ours.get(l.id) !== l.path);
}

/** The lines of `/proc/<pid>/cgroup` (ours: `'self'`), parsed and checked; errors name `targetPid`, whose cgroups are asked for. */
function linesOf(pid: number | 'self', targetPid: number): CgroupLine[] {
  return parseProcCgroup(readProc(pid, 'cgroup', targetPid), pid === 'self' ? process.pid : pid);
}

/** Whose cgroups a checked `cgroups` option joins, with the call's target pid (if any): none, directories by name, or a process's. */
function cgroupSource(value: CgroupsOption | undefined, targetPid: number | undefined): undefined | string[] | number {
  if (value === false || (value === undefined && targetPid === undefined)) return undefined;
  if (Array.isArray(value)) return value;
  return typeof value === 'object' ? value.pid : targetPid!;
}

/** The `gons_cgroup_dirs` variable for a checked `cgroups` option and the call's target pid (if any); `{}` when none is joined. */
export function cgroupEnv(value: CgroupsOption | undefined, targetPid: number | undefined): Record<string, string> {
  const source = cgroupSource(value, targetPid);
  if (source === undefined) return {};
  const dirs = typeof source === 'number' ? cgroupDirsOf(source) : source;
  return dirs.length > 0 ? { [CGROUP_ENV]: dirs.join('\n') } : {};
}

/**
 * What tells one call's cgroups from another's, for the pool's key, without
 * the mount table: the listed directories, or every line of the process's
 * `/proc/<pid>/cgroup`. Every line, those we share too: a worker started for
 * the process is in all of its cgroups, while what we share with it today we
 * may not share once we have moved, and a key made of the lines that differ
 * from ours would then name a worker left in our old cgroups. Undefined when
 * no cgroup is joined. A hierarchy that is not mounted here is refused when
 * the worker starts.
 */
export function cgroupKey(value: CgroupsOption | undefined, targetPid: number | undefined): string | undefined {
  const source = cgroupSource(value, targetPid);
  if (source === undefined) return undefined;
  if (Array.isArray(source)) return JSON.stringify(source); // never empty: checkCgroupsOption refuses []
  return JSON.stringify(linesOf(source, source).map((l) => `${l.id}:${l.path}`));
}

function readProc(pid: number | 'self', file: string, targetPid: number): string {
  return readProcFile(pid, file, 'cgroups', targetPid, CGROUP_ENV);
}
