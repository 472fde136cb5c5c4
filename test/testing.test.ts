/** gons/testing: createNamespaces' checks, failures and clean-up. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createNamespaces } from '../testing/index';

import { asNobody, fixturePath, gone, needsRoot, plainEnv, projectRoot } from './fixtures/helpers';

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
    message: /unshare mnt failed \(exit \d+\): .*nonexistent/s, code: 'ERR_GONS_UNSHARE_FAILED',
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

t.test('unknown option keys are refused, with the likely intended one', async (t) => {
  await t.rejects(createNamespaces(['uts'], { hostName: 'x' } as never), {
    name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /unknown option key "hostName" \(did you mean "hostname"\?\)/,
  });
  await t.rejects(createNamespaces(['uts'], { bogus: 1 } as never), { code: 'ERR_INVALID_ARG_VALUE', message: /unknown option key "bogus"$/ });
  await t.rejects(createNamespaces(['uts'], 'x' as never), { code: 'ERR_INVALID_ARG_TYPE' });
});

t.test('a test object is checked before anything is started', async (t) => {
  // With no unshare on PATH, a spawn would fail with ENOENT: a TypeError proves nothing was spawned.
  const path = process.env.PATH;
  t.teardown(() => { process.env.PATH = path; });
  process.env.PATH = '/nonexistent';
  await t.rejects(createNamespaces({} as never, ['net']), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /teardown\(\) \(tap\) or after\(\) \(node:test\)/ });
  await t.rejects(createNamespaces({ teardown: 1 } as never, ['net']), { code: 'ERR_INVALID_ARG_TYPE' });
  await t.rejects(createNamespaces(t, 'net' as never), { code: 'ERR_INVALID_ARG_VALUE', message: /types must be an array/ });
});

t.test('files appear beside the directory\'s contents; the host stays untouched', { skip: needsRoot }, async (t) => {
  const ns = await createNamespaces(t, ['mnt'], { files: { '/etc/gons-testing-file': 'inside', '/etc/ssl/gons-testing-too': 'deeper' } });
  const root = `/proc/${ns.pid}/root`;
  t.equal(readFileSync(`${root}/etc/gons-testing-file`, 'utf8'), 'inside');
  t.equal(readFileSync(`${root}/etc/ssl/gons-testing-too`, 'utf8'), 'deeper');
  t.equal(readFileSync(`${root}/etc/passwd`, 'utf8'), readFileSync('/etc/passwd', 'utf8'), 'the rest of /etc is still there');
  t.same(readdirSync(`${root}/etc`).sort(), [...readdirSync('/etc'), 'gons-testing-file'].sort(), 'nothing else added or hidden');
  t.ok(existsSync(`${root}/proc/self/ns/net`), '/proc is still there');
  t.notOk(existsSync('/etc/gons-testing-file'), 'not on the host');
  t.notOk(existsSync('/etc/ssl/gons-testing-too'), 'not on the host');
});

t.test('files as nobody, in a user namespace', { skip: needsRoot }, async (t) => {
  const script = `
    const { createNamespaces } = require(${JSON.stringify(join(projectRoot, 'dist', 'testing', 'index.js'))});
    const { readFileSync, readdirSync } = require('node:fs');
    createNamespaces(['mnt'], { user: true, files: { '/etc/gons-nobody': 'mine' } }).then(async (ns) => {
      const root = '/proc/' + ns.pid + '/root';
      console.log(JSON.stringify({ file: readFileSync(root + '/etc/gons-nobody', 'utf8'), passwd: readdirSync(root + '/etc').includes('passwd') }));
      await ns.close();
    });`;
  const res = asNobody(process.execPath, ['-e', script], plainEnv());
  t.equal(res.status, 0, 'exits 0', { stderr: res.stderr });
  t.same(JSON.parse(res.stdout), { file: 'mine', passwd: true });
});

t.test('a file directly in / is refused: an overlay there would hide /proc', async (t) => {
  await t.rejects(createNamespaces(['mnt'], { files: { '/gons-file': 'x' } }), {
    name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /is directly in \/: put it in a directory/,
  });
});

t.test('works under node --test: createNamespaces(t, …) closes with t.after', { skip: needsRoot }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gons-node-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const holderFile = join(dir, 'holder');
  const res = spawnSync(process.execPath, ['--test', '--test-reporter=tap', fixturePath('node-test-runner.mjs')], {
    env: { ...plainEnv(), GONS_HOLDER_FILE: holderFile }, encoding: 'utf8',
  });
  t.equal(res.status, 0, 'node --test passes', { stdout: res.stdout, stderr: res.stderr });
  t.match(res.stdout, /# pass 1/);
  const pid = Number(readFileSync(holderFile, 'utf8'));
  t.ok(pid > 0);
  await gone(pid, 30000);
});

t.test('hide covers directories with an empty tmpfs; files may go there; any directory, /usr/bin too', { skip: needsRoot }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gons-hide-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'host-only'), 'x');
  const ns = await createNamespaces(t, ['mnt'], { hide: [dir], files: { [join(dir, 'inside')]: 'in', '/usr/bin/gons-testing-tool': 'tool' } });
  const root = `/proc/${ns.pid}/root`;
  t.same(readdirSync(`${root}${dir}`), ['inside'], 'the hidden directory holds only the file given');
  t.equal(readFileSync(`${root}/usr/bin/gons-testing-tool`, 'utf8'), 'tool');
  t.ok(existsSync(`${root}/usr/bin/mkdir`), 'the rest of /usr/bin is still there');
  t.same(readdirSync(dir), ['host-only'], 'the host keeps its directory as it was');
  t.notOk(existsSync('/usr/bin/gons-testing-tool'));
  const stage = /upperdir=([^,]+)\/u0/.exec(readFileSync(`/proc/${ns.pid}/mountinfo`, 'utf8'))?.[1];
  t.ok(stage && existsSync(stage), `the overlays' upper layers live on a stage (${stage})`);
  await ns.close();
  t.notOk(existsSync(stage!), 'closing removes the stage');
});

t.test('paths that mount options cannot carry, and hide without a mount namespace, are refused', async (t) => {
  await t.rejects(createNamespaces(['mnt'], { files: { '/tmp/a,b/x': '' } }), { code: 'ERR_INVALID_ARG_VALUE', message: /a character mount options cannot carry/ });
  await t.rejects(createNamespaces(['mnt'], { hide: ['relative'] }), { code: 'ERR_INVALID_ARG_VALUE', message: /is not absolute/ });
  await t.rejects(createNamespaces(['mnt'], { hide: ['/'] }), { code: 'ERR_INVALID_ARG_VALUE', message: /hiding \/ would hide \/proc/ });
  await t.rejects(createNamespaces(['net'], { hide: ['/tmp'] }), { code: 'ERR_INVALID_ARG_VALUE', message: /hide needs a mnt namespace/ });
});
