/**
 * `npm run demo`: makes throw-away uts + net + mnt namespaces (a distinct
 * hostname, no network interface but `lo`, a file only the new mount
 * namespace has), runs an action inside them, and prints what the child saw
 * next to what this process sees. As a non-root user it adds a user namespace.
 */
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { checkAction, register, runReexecAction } from '../reexec/index';
import { createNamespaces } from '../testing/index';

const onlyThere = '/tmp/gons-demo-only-here.txt';

/** What a process sees of its world. */
function look() {
  const interfaces = readFileSync('/proc/net/dev', 'utf8')
    .split('\n')
    .slice(2)
    .map((line) => line.split(':')[0].trim())
    .filter(Boolean);
  return {
    hostname: hostname(),
    'network interfaces': interfaces.join(', '),
    [onlyThere]: existsSync(onlyThere) ? JSON.stringify(readFileSync(onlyThere, 'utf8')) : '(missing)',
    'mnt namespace': readlinkSync('/proc/self/ns/mnt'),
    'net namespace': readlinkSync('/proc/self/ns/net'),
    'uts namespace': readlinkSync('/proc/self/ns/uts'),
    pid: String(process.pid),
  };
}

register('look', look);

async function main() {
  await checkAction();
  const user = process.getuid?.() !== 0;
  const ns = await createNamespaces(['uts', 'net', 'mnt'], {
    user,
    hostname: 'gons-demo',
    files: { [onlyThere]: 'hello from inside the new mount namespace' },
  });
  try {
    const child = await runReexecAction<ReturnType<typeof look>>('look', { namespaces: ns.namespaces() });
    const parent = look();
    const rows = Object.keys(parent) as (keyof typeof parent)[];
    const w = Math.max(...rows.map((r) => r.length));
    const cw = Math.max(...rows.map((r) => child[r].length), 'child (in the namespaces)'.length);
    console.log(`gons demo: namespaces held by process ${ns.pid}${user ? ' (in a new user namespace)' : ''}\n`);
    console.log(`${''.padEnd(w)}  ${'child (in the namespaces)'.padEnd(cw)}  parent`);
    for (const r of rows) console.log(`${r.padEnd(w)}  ${child[r].padEnd(cw)}  ${parent[r]}`);
  } finally {
    await ns.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
