/**
 * Joining a user namespace makes the child that namespace's root (the hook's
 * become_root, as nsenter and runc do) before Node loads the program: for a
 * container mapped at host uid 100000, Node then reads the program's files
 * as uid 100000. A program that uid cannot read would fail in the child with
 * `Cannot find module`; the parent sees this coming and says so instead.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { preinitPath } from '../lib/native';
import type { Plan } from './plan';
import { gonsError } from '../lib/errors';

/** A user namespace's map, as `inside outside count` lines. */
type IdMap = Array<[inside: number, outside: number, count: number]>;

function parseMap(text: string): IdMap {
  return text.split('\n').filter((l) => l.trim()).map((l) => l.trim().split(/\s+/).map(Number) as [number, number, number]);
}

/** The host id of namespace id `id`, or undefined when the map leaves it out. */
function outside(map: IdMap, id: number): number | undefined {
  for (const [inside, out, count] of map) if (id >= inside && id < inside + count) return out + (id - inside);
  return undefined;
}

/** Whether host id `id` is mapped into the namespace. */
function mapped(map: IdMap, id: number): boolean {
  return map.some(([, out, count]) => id >= out && id < out + count);
}

/** The pid whose user namespace the plan joins, if it joins one this way (a pidfd target, or a /proc/<pid>/ns/user path). */
function joinedUserPid(plan: Plan): number | undefined {
  const env = plan.env;
  if (env.gons_confine !== undefined) return undefined; // a confined child takes the target's ids: see confine
  if (plan.pidfd !== undefined && (env.gons_target_types ?? '').split(',').includes('user')) {
    const pid = Number(/^Pid:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${plan.pidfd}`, 'utf8'))?.[1]);
    return pid > 0 ? pid : undefined;
  }
  const m = /^\/proc\/(\d+)\/ns\/user$/.exec(env.gons_user ?? '');
  return m ? Number(m[1]) : undefined;
}

/**
 * Who the child becomes: the host uid and gid of the namespace's root, and
 * the maps (its root's capabilities cover the files whose owner and group are
 * both mapped). Undefined when a map cannot be read or leaves root out (the
 * hook then keeps the caller's ids).
 */
function joinedRoot(pid: number): { uid: number; gid: number; uids: IdMap; gids: IdMap } | undefined {
  let uids: IdMap;
  let gids: IdMap;
  try {
    uids = parseMap(readFileSync(`/proc/${pid}/uid_map`, 'utf8'));
    gids = parseMap(readFileSync(`/proc/${pid}/gid_map`, 'utf8'));
    /* c8 ignore next 3 -- the target exited since its pidfd was opened: the switch says so */
  } catch {
    return undefined;
  }
  const uid = outside(uids, 0);
  const gid = outside(gids, 0);
  return uid === undefined || gid === undefined ? undefined : { uid, gid, uids, gids };
}

/** Whether `who` may use a file with mode `bit` (4 read, 1 search), by its owner, group or others' bits, or by its capabilities. */
function allowed(path: string, bit: number, who: NonNullable<ReturnType<typeof joinedRoot>>): boolean {
  const st = statSync(path);
  if (mapped(who.uids, st.uid) && mapped(who.gids, st.gid)) return true; // CAP_DAC_OVERRIDE in the namespace covers it
  const shift = st.uid === who.uid ? 6 : st.gid === who.gid ? 3 : 0;
  return ((st.mode >> shift) & bit) !== 0;
}

/** The first of `path`'s directories that `who` cannot search, or `path` itself when it cannot read it; undefined when all is well. */
function firstUnreadable(path: string, who: NonNullable<ReturnType<typeof joinedRoot>>): { path: string; why: string } | undefined {
  const dirs: string[] = [];
  for (let d = dirname(path); ; d = dirname(d)) {
    dirs.unshift(d);
    if (dirname(d) === d) break;
  }
  try {
    for (const d of dirs) if (!allowed(d, 1, who)) return { path: d, why: 'a directory it cannot search' };
    if (!allowed(path, 4, who)) return { path, why: 'a file it cannot read' };
    /* c8 ignore next 3 -- a path that does not exist (a build without gons.node) is not this check's to report */
  } catch {
    return undefined;
  }
  return undefined;
}

/**
 * Throws `ERR_GONS_PROGRAM_UNREADABLE` when the plan joins a user namespace
 * whose root cannot read the program (its main script or `entry`) or gons
 * itself (its modules and native build). `what` starts the message.
 */
export function checkReadableByJoinedRoot(plan: Plan, what: string, action: string, script: string): void {
  const pid = joinedUserPid(plan);
  if (pid === undefined) return;
  const who = joinedRoot(pid);
  if (!who || who.uid === process.geteuid?.()) return;
  for (const file of [resolve(script), __filename, resolve(dirname(preinitPath), 'gons.node')]) {
    const bad = firstUnreadable(file, who);
    if (!bad) continue;
    throw gonsError('ERR_GONS_PROGRAM_UNREADABLE',
      `${what}: joining the user namespace of process ${pid} makes the child its root, host uid ${who.uid} (gid ${who.gid}), before Node ` +
      `loads the program, and ${JSON.stringify(bad.path)} is ${bad.why} (needed for ${JSON.stringify(file)}). Make the program's ` +
      'files readable and their directories searchable by that uid (e.g. by others: chmod o+rX), install it where that uid ' +
      "can read it, or leave 'user' out of the namespaces joined", { action, path: bad.path, uid: who.uid, gid: who.gid });
  }
}
