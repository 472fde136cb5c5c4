// The CommonJS form of the README's testing example: everything after
// checkAction() goes in its .then(), so the re-executed child never declares tests.
const t = require('tap');
const { register, checkAction, runReexecAction } = require('gons/reexec');
const { createNamespaces } = require('gons/testing');
const { hostname } = require('node:os');

register('hostname', () => hostname());
checkAction().then(() => {
  t.test('runs in a new uts namespace', async (t) => {
    const ns = await createNamespaces(t, ['uts'], { user: process.getuid() !== 0, hostname: 'box' });
    t.equal(await runReexecAction('hostname', { namespaces: ns.namespaces() }), 'box');
  });
});
