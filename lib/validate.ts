/** Namespace lists as the user gives them: checked, and turned into the `gons_*` variables the hook reads. */
import { constants } from 'node:os';
import { isAbsolute } from 'node:path';
import { NamespaceSwitchError, gonsError } from './errors';
import { addon } from './native';
import { type Namespace, type NamespaceType, envVarOf, namespaceKinds, namespaceTypes, parseNamespaceType } from './namespaces';

const { EINVAL, ENOTTY } = constants.errno;

function typeOfFlag(flag: number): NamespaceType | undefined {
  return namespaceTypes.find((t) => namespaceKinds[t].flag === flag);
}

/** The entries of a namespace list with their types parsed; anything but an array is a `TypeError`. */
function parse(namespaces: readonly Namespace[]): Array<{ type: NamespaceType; early: boolean; ns: Namespace }> {
  if (!Array.isArray(namespaces)) {
    throw gonsError('ERR_INVALID_ARG_TYPE', 'namespaces must be an array of { type, path }');
  }
  return namespaces.map((ns) => ({ ...parseNamespaceType(ns?.type), ns }));
}

/**
 * The `gons_*` environment for joining `namespaces`, built as Go's
 * `RunReexecAction` does: one `gons_<type>` per entry (the `!` stripped from
 * the name) and `gons_order` listing the types in the given order, `!` kept.
 * An empty list yields an empty `gons_order`, which the hook reads as the
 * default order, as in gons. Only the shape is checked.
 */
export function namespaceEnv(namespaces: readonly Namespace[]): Record<string, string> {
  return envOf(parse(namespaces));
}

/** The environment of entries already parsed. */
function envOf(entries: ReturnType<typeof parse>): Record<string, string> {
  const env: Record<string, string> = {};
  const order: string[] = [];
  for (const { type, ns } of entries) {
    if (typeof ns.path !== 'string') {
      throw gonsError('ERR_INVALID_ARG_TYPE', `path of ${ns.type} namespace must be a string`);
    }
    env[envVarOf(type)] = ns.path;
    order.push(ns.type);
  }
  env.gons_order = order.join(',');
  return env;
}

/**
 * Checks namespace references in the parent before anything is spawned: each
 * type is known and appears once, each path is absolute, opens, is a
 * namespace file, and the kernel (`NS_GET_NSTYPE`) says it is of the named
 * type. A path without `!` that comes after a mount namespace is only checked
 * for shape: it resolves inside that namespace. Neither is an entry that
 * `known(type, path)` says is a namespace of its type already (a warm pool
 * call: one its live worker is in). Throws a `NamespaceSwitchError`
 * naming the entry, or a `TypeError` for a malformed list. Returns the
 * list's `gons_*` environment (`namespaceEnv`).
 */
export function validateNamespaces(namespaces: readonly Namespace[], known?: (type: NamespaceType, path: string) => boolean): Record<string, string> {
  const seen = new Set<NamespaceType>();
  let afterMnt = false;
  const entries = parse(namespaces);
  for (const { type, early, ns } of entries) {
    const envVar = envVarOf(type);
    if (seen.has(type)) {
      throw new NamespaceSwitchError(`package gons: duplicate namespace order type ${type}`, {
        envVar: 'gons_order', path: '', syscall: '', errno: EINVAL,
      });
    }
    seen.add(type);
    const path: unknown = ns.path;
    if (typeof path !== 'string' || path === '' || !isAbsolute(path) || path.includes('\0')) {
      throw new NamespaceSwitchError(
        `package gons: invalid ${envVar} reference ${JSON.stringify(path)}: must be an absolute path`,
        { envVar, path: String(path), syscall: '', errno: EINVAL },
      );
    }
    const resolvesInTarget = !early && afterMnt;
    if (type === 'mnt') afterMnt = true;
    if (resolvesInTarget || known?.(type, path)) continue;
    const res = addon.nsType(path);
    if ('errno' in res) {
      const notNs = res.errno === ENOTTY; // a non-regular file (stat) or one the kernel does not know (ioctl)
      throw new NamespaceSwitchError(
        `package gons: invalid ${envVar} reference ${JSON.stringify(path)}: ${
          notNs ? 'not a namespace file' : addon.strerror(res.errno)}`,
        { envVar, path, syscall: res.syscall, errno: notNs ? EINVAL : res.errno },
      );
    }
    if (res.nstype !== namespaceKinds[type].flag) {
      /* c8 ignore next -- a namespace type newer than this table */
      const actual = typeOfFlag(res.nstype) ?? `unknown (${res.nstype})`;
      throw new NamespaceSwitchError(
        `package gons: invalid ${envVar} reference ${JSON.stringify(path)}: a ${actual} namespace, not ${type}`,
        { envVar, path, syscall: 'ioctl', errno: EINVAL },
      );
    }
  }
  return envOf(entries);
}
