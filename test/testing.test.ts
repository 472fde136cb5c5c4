/** gons/testing: createNamespaces' checks, failures and clean-up. */
import { existsSync, statSync } from 'node:fs';
import t from 'tap';
import { createNamespaces } from '../reexec/testing';

import { needsRoot } from './fixtures/helpers';

t.test('bad options are rejected before anything is started', async (t) => {
  const bad: Array<[string[], object?, RegExp?]> = [
    [[]], [['bogus' as 'net']],
    [['net'], { hostname: 'x' }, /hostname needs a uts namespace/],
    [['net'], { clockOffset: 5 }, /clockOffset needs a time namespace/],
    [['time'], { clockOffset: 1.5 }, /whole seconds/],
    [['net'], { files: { '/tmp/x': '' } }, /files need a mnt namespace/],
    [['mnt'], { files: { 'tmp/x': '' } }, /is not absolute/],
  ];
  for (const [types, options, message] of bad) {
    await t.rejects(createNamespaces(types as never, options), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', ...(message && { message }) });
  }
});

t.test('a holder that cannot set up rejects with what unshare said', { skip: needsRoot }, async (t) => {
  await t.rejects(createNamespaces(['mnt'], { files: { '/nonexistent/gons/dir/file': 'x' } }), {
    message: /unshare mnt failed \(exit \d+\): .*nonexistent/s,
  });
});

t.test('close() ends the holder and is idempotent; the namespaces are kept until then', { skip: needsRoot }, async (t) => {
  const ns = await createNamespaces(['net', 'uts', 'pid'], { hostname: 'held' });
  t.ok(statSync(ns.paths.net).ino > 0);
  t.same(ns.namespaces(false).map((n) => n.type), ['net', 'pid', 'uts']);
  await Promise.all([ns.close(), ns.close()]);
  t.notOk(existsSync(`/proc/${ns.pid}`), 'the holder is gone');
  await ns.close();
});

t.test('the tap variant closes at teardown', { skip: needsRoot }, async (t) => {
  let pid = 0;
  await t.test('inner', async (t) => {
    pid = (await createNamespaces(t, ['ipc'])).pid;
    t.ok(existsSync(`/proc/${pid}`));
  });
  t.notOk(existsSync(`/proc/${pid}`), 'gone after the inner test');
});

t.test('a missing unshare is a clear error', async (t) => {
  const path = process.env.PATH;
  t.teardown(() => { process.env.PATH = path; });
  process.env.PATH = '/nonexistent';
  await t.rejects(createNamespaces(['net']), { code: 'ENOENT', syscall: 'spawn unshare' });
});
