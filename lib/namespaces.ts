import { gonsError } from './errors';
import { addon } from './native';

/**
 * A Linux namespace type, named as in `/proc/<pid>/ns/` and in `gons_order`.
 * The only list of the kinds written out on the TypeScript side; everything
 * else comes from the hook's table (test/namespaces.test.ts checks they agree).
 */
export type NamespaceType = 'user' | 'mnt' | 'cgroup' | 'ipc' | 'net' | 'pid' | 'time' | 'uts';

/** One row of the hook's table of namespace kinds (native/preinit.h). */
export interface NamespaceKind {
  type: NamespaceType;
  /** The variable that carries a path to join. */
  envVar: `gons_${NamespaceType}`;
  /** The `/proc/<pid>/ns/` entry a join changes: `pid_for_children` and `time_for_children` for pid and time. */
  procname: string;
  /** The CLONE_NEW* value, as the kernel reports it for NS_GET_NSTYPE. */
  flag: number;
  /** The util-linux `unshare` option that creates one (its name for mnt is --mount). */
  unshare: string;
}

/**
 * The kinds by type, in the hook's order, which is gons's default order (user
 * first, so later joins are judged with the capabilities gained there).
 */
export const namespaceKinds: Readonly<Record<NamespaceType, Readonly<NamespaceKind>>> = Object.freeze(Object.fromEntries(
  (addon.namespaceKinds as Array<Omit<NamespaceKind, 'unshare'>>).map((k) => [k.type, Object.freeze({ ...k, unshare: `--${k.type === 'mnt' ? 'mount' : k.type}` })]),
) as Record<NamespaceType, NamespaceKind>);

/** All namespace types, in gons's default order. */
export const namespaceTypes = Object.keys(namespaceKinds) as NamespaceType[];

/**
 * A namespace to join, in the shape of Go's gons: a leading `!` on the type
 * opens the path before the first switch; without it the path is opened right
 * before its own switch, so it resolves in the namespaces entered so far.
 */
export interface Namespace {
  /** The namespace's kind; a leading `!` joins it before the others, in gons's order (user first, say). */
  type: NamespaceType | `!${NamespaceType}`;
  /** An absolute path to the namespace: `/proc/<pid>/ns/<type>`, or a file bind-mounted from one. */
  path: string;
}

/** Whether `value` names a namespace type (without `!`). */
export function isNamespaceType(value: unknown): value is NamespaceType {
  return typeof value === 'string' && Object.hasOwn(namespaceKinds, value);
}

/** The name of the environment variable that carries a namespace type's path. */
export function envVarOf(type: NamespaceType): `gons_${NamespaceType}` {
  return namespaceKinds[type].envVar;
}

/** Splits a `Namespace.type` into its type and whether it carries a `!`. */
export function parseNamespaceType(type: unknown): { type: NamespaceType; early: boolean } {
  const early = typeof type === 'string' && type.startsWith('!');
  const bare = early ? (type as string).slice(1) : type;
  if (!isNamespaceType(bare)) {
    throw gonsError('ERR_INVALID_ARG_VALUE', `package gons: unknown namespace type ${JSON.stringify(bare)}`);
  }
  return { type: bare, early };
}
