/**
 * The one table of namespace kinds on the TypeScript side; types, env
 * variable names, validation and the test helpers are derived from it. Its
 * order is gons's default order (user first, so later joins are judged with
 * the capabilities gained there), as in the hook's table. `flag` is the
 * CLONE_NEW* value the kernel reports for NS_GET_NSTYPE; `unshare` the
 * util-linux option that creates one.
 */
export const namespaceKinds = {
  user: { flag: 0x10000000, unshare: '--user' },
  mnt: { flag: 0x00020000, unshare: '--mount' },
  cgroup: { flag: 0x02000000, unshare: '--cgroup' },
  ipc: { flag: 0x08000000, unshare: '--ipc' },
  net: { flag: 0x40000000, unshare: '--net' },
  pid: { flag: 0x20000000, unshare: '--pid' },
  time: { flag: 0x00000080, unshare: '--time' },
  uts: { flag: 0x04000000, unshare: '--uts' },
} as const;

/** A Linux namespace type, named as in `/proc/<pid>/ns/` and in `gons_order`. */
export type NamespaceType = keyof typeof namespaceKinds;

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
  return `gons_${type}`;
}

/** Splits a `Namespace.type` into its type and whether it carries a `!`. */
export function parseNamespaceType(type: unknown): { type: NamespaceType; early: boolean } {
  const early = typeof type === 'string' && type.startsWith('!');
  const bare = early ? (type as string).slice(1) : type;
  if (!isNamespaceType(bare)) {
    throw Object.assign(
      new TypeError(`package gons: unknown namespace type ${JSON.stringify(bare)}`),
      { code: 'ERR_INVALID_ARG_VALUE' },
    );
  }
  return { type: bare, early };
}
