/**
 * Discovery: every namespace this process can see on the host, from the
 * processes in `/proc` and from the namespaces bind mounts keep alive (e.g.
 * `ip netns add`), each once, identified by device and inode.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { gonsError, systemError } from './errors';
import { addon } from './native';
import { type Namespace, type NamespaceType, isNamespaceType, namespaceTypes } from './namespaces';
import type { Target } from './target';

/** One namespace as `listNamespaces` found it. */
export interface NamespaceInfo {
  /** Which kind of namespace it is. */
  type: NamespaceType;
  /** Device of the namespace file system (nsfs): with `ino` the namespace's identity. */
  dev: number;
  /** Inode number, as in `readlink /proc/<pid>/ns/<type>` → `net:[<ino>]`. */
  ino: number;
  /**
   * How many processes (thread-group leaders) are in it. Only a count and one
   * representative `pid` are kept, not a list: memory stays proportional to
   * the number of namespaces, not to the number of processes.
   */
  pidCount: number;
  /** The lowest pid in it (the first one seen), or undefined when only a bind mount keeps it. */
  pid?: number;
  /** Bind mounts of it in this process's mount namespace (from `/proc/self/mountinfo`), e.g. `/run/netns/blue`. */
  mounts: string[];
  /** The owning user namespace (`NS_GET_USERNS`), when the kernel tells (not for the initial user namespace, nor beyond ours). */
  owner?: { dev: number; ino: number };
  /**
   * A ready reference for `runReexecAction`, a worker or a pool: the first
   * bind mount when there is one (it stays valid while the mount does), else
   * `/proc/<pid>/ns/<type>` of the representative process. Opened early (`!`).
   */
  namespace: Namespace;
  /** The representative process as a target of this one type (absent for a namespace only a bind mount keeps). */
  target?: Target & { types: [NamespaceType] };
}

/** The wanted types, in gons's order, limited to those this kernel has (time: Linux 5.6). */
function wantedTypes(types: NamespaceType | readonly NamespaceType[] | undefined): NamespaceType[] {
  const list = types === undefined ? namespaceTypes : typeof types === 'string' ? [types] : types;
  if (!Array.isArray(list) || !list.every(isNamespaceType)) {
    throw gonsError('ERR_INVALID_ARG_VALUE', `gons: listNamespaces: types must be a namespace type or a list of them, not ${JSON.stringify(types)}`);
  }
  const self = new Set(readdirSync('/proc/self/ns'));
  return namespaceTypes.filter((t) => list.includes(t) && self.has(t));
}

/** Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`). */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mount points of nsfs mounts in `mountinfo`, with the type and inode their root field names (`net:[4026532xyz]`). */
export function nsfsMounts(mountinfo: string): Array<{ type: string; ino: number; path: string }> {
  const found: Array<{ type: string; ino: number; path: string }> = [];
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0 || !line.startsWith('nsfs ', sep + 3)) continue;
    // id parent major:minor root mountpoint options [optional fields...] - fstype source superoptions
    const fields = line.slice(0, sep).split(' ');
    const root = /^([a-z_]+):\[(\d+)\]$/.exec(fields[3] ?? '');
    if (!root || fields[4] === undefined) continue;
    found.push({ type: root[1], ino: Number(root[2]), path: unescapeMountPath(fields[4]) });
  }
  return found;
}

/**
 * Lists the namespaces this process can see, of the given type(s) (default:
 * all this kernel has): those of every process in `/proc` and those kept by
 * bind mounts in this mount namespace, each once. Processes that vanish
 * mid-scan, or that this user may not inspect, are skipped. Sorted by type
 * (gons's order), then inode.
 */
export function listNamespaces(types?: NamespaceType | readonly NamespaceType[]): NamespaceInfo[] {
  const wanted = wantedTypes(types);
  const found = new Map<string, NamespaceInfo>();
  /** The path the owner is asked through: the one the namespace was first seen by. */
  const firstPath = new Map<NamespaceInfo, string>();
  const note = (type: NamespaceType, dev: number, ino: number, path: string, pid?: number): NamespaceInfo => {
    const key = `${dev}:${ino}`;
    let info = found.get(key);
    if (!info) {
      info = { type, dev, ino, pidCount: 0, mounts: [], namespace: { type: `!${type}`, path } };
      if (pid !== undefined) {
        info.pid = pid;
        info.target = { pid, types: [type] };
      }
      found.set(key, info);
      firstPath.set(info, path);
    }
    return info;
  };

  const scan = addon.nsScan(wanted);
  /* c8 ignore next -- /proc is always there to open */
  if (!Buffer.isBuffer(scan)) throw systemError(`gons: listNamespaces: cannot read /proc: ${addon.strerror(scan.errno)}`, scan);
  // Records of four float64: pid, type index, dev, ino; copied, so aligned.
  const records = new Float64Array(scan.buffer, scan.byteOffset, scan.length / 8);
  for (let i = 0; i < records.length; i += 4) {
    const pid = records[i];
    const type = wanted[records[i + 1]];
    note(type, records[i + 2], records[i + 3], `/proc/${pid}/ns/${type}`, pid).pidCount++;
  }

  for (const m of nsfsMounts(readFileSync('/proc/self/mountinfo', 'utf8'))) {
    if (!(wanted as string[]).includes(m.type)) continue;
    let st;
    try {
      st = statSync(m.path);
    } catch {
      continue; // unmounted meanwhile, or a directory on the way we may not search
    }
    if (st.ino !== m.ino) continue; // mounted over: not reachable by this path
    const info = note(m.type as NamespaceType, st.dev, st.ino, m.path);
    if (info.mounts.length === 0) info.namespace = { type: `!${info.type}`, path: m.path };
    info.mounts.push(m.path);
  }

  const list = [...found.values()];
  for (const info of list) {
    // A bind mount outlives any process: ask through it when there is one.
    const owner = addon.nsOwner(info.mounts[0] ?? firstPath.get(info)!);
    // Checked against the identity seen: a pid reused since the scan names another namespace.
    if ('ownerIno' in owner && owner.dev === info.dev && owner.ino === info.ino) {
      info.owner = { dev: owner.ownerDev, ino: owner.ownerIno };
    }
  }
  const order = (t: NamespaceType) => namespaceTypes.indexOf(t);
  return list.sort((a, b) => order(a.type) - order(b.type) || a.ino - b.ino);
}
