// The README's testing example, verbatim: a tap test file that registers an
// action, awaits checkAction(), and runs the action in throw-away namespaces.
import t from 'tap';
import { register, checkAction, runReexecAction } from 'gons/reexec';
import { createNamespaces } from 'gons/testing';
import { hostname } from 'node:os';

register('hostname', () => hostname());
await checkAction(); // the re-executed copy of this test file runs only the action: no TAP, no tests

t.test('runs in a new uts namespace', async (t) => {
  const ns = await createNamespaces(t, ['uts'], { user: process.getuid() !== 0, hostname: 'box' });
  t.equal(await runReexecAction('hostname', { namespaces: ns.namespaces() }), 'box');
});
