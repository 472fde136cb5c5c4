/**
 * Bad input, table-driven: each case rejects with its specific error and the
 * action never runs (it would write a marker file). Hostile gons_* values
 * given to the hook directly (spaces in gons_order, empty items, ...) are in
 * hook.test.ts, since the API never builds them.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { checkAction, openNamespaceWorker, runReexecAction, type ReexecOptions } from '../reexec/index';
import { createNamespaces } from '../testing/index';
import { isRoot } from './fixtures/helpers';
import './fixtures/actions';

type Case = [string, Partial<ReexecOptions> & { action?: unknown }, { [key: string]: unknown }];

const nsErr = (envVar: string, code: string, message?: RegExp | string) => ({
  name: 'NamespaceSwitchError', envVar, code, ...(message && { message }),
});
const argErr = (code: string, message?: RegExp) => ({ code, ...(message && { message }) });

checkAction().then(async () => {
  const dead = isRoot ? await createNamespaces(['net']) : undefined;
  const deadPid = dead?.pid ?? 2 ** 22 + 1;
  await dead?.close();
  const cases: Case[] = [
    // Fail closed: a misspelt key would otherwise run the action in the host's namespaces.
    ['misspelt namespaces', { nameSpaces: [{ type: 'uts', path: '/proc/self/ns/uts' }] } as never,
      argErr('ERR_INVALID_ARG_VALUE', /unknown option key "nameSpaces" \(did you mean "namespaces"\?\)/)],
    ['unknown option', { bogus: 1 } as never, argErr('ERR_INVALID_ARG_VALUE', /unknown option key "bogus"$/)],
    ['misspelt target key', { target: { pid: 1, type: ['net'] } } as never, argErr('ERR_INVALID_ARG_VALUE', /unknown target option key "type" \(did you mean "types"\?\)/)],
    ['extra namespace key', { namespaces: [{ type: 'uts', path: '/proc/self/ns/uts', early: true }] } as never,
      argErr('ERR_INVALID_ARG_VALUE', /unknown namespace entry key "early"/)],
    ['missing path', { namespaces: [{ type: 'net', path: '/nonexistent/ns' }] }, nsErr('gons_net', 'ENOENT', /No such file or directory/)],
    ['directory', { namespaces: [{ type: 'net', path: '/proc' }] }, nsErr('gons_net', 'EINVAL', /not a namespace file/)],
    ['regular file', { namespaces: [{ type: 'uts', path: '/etc/hostname' }] }, nsErr('gons_uts', 'EINVAL', /not a namespace file/)],
    ['/dev/null', { namespaces: [{ type: 'ipc', path: '/dev/null' }] }, nsErr('gons_ipc', 'EINVAL', /not a namespace file/)],
    ['namespace of the wrong type', { namespaces: [{ type: 'net', path: '/proc/self/ns/uts' }] }, nsErr('gons_net', 'EINVAL', /a uts namespace, not net/)],
    ['relative path', { namespaces: [{ type: 'net', path: 'proc/self/ns/net' }] }, nsErr('gons_net', 'EINVAL', /must be an absolute path/)],
    ['empty path', { namespaces: [{ type: 'net', path: '' }] }, nsErr('gons_net', 'EINVAL', /must be an absolute path/)],
    ['path with a newline', { namespaces: [{ type: 'net', path: '/proc/self/ns/net\n' }] }, nsErr('gons_net', 'ENOENT')],
    ['path with a comma', { namespaces: [{ type: 'net', path: '/proc/self/ns/net,uts' }] }, nsErr('gons_net', 'ENOENT')],
    ['path with =', { namespaces: [{ type: 'net', path: '/proc/self/ns/net=1' }] }, nsErr('gons_net', 'ENOENT')],
    ['path with NUL', { namespaces: [{ type: 'net', path: '/proc/self/ns/net\0x' }] }, nsErr('gons_net', 'EINVAL')],
    ['path longer than PATH_MAX', { namespaces: [{ type: 'net', path: '/' + 'p'.repeat(5000) }] }, nsErr('gons_net', 'ENAMETOOLONG')],
    ['path that is not a string', { namespaces: [{ type: 'net', path: 42 as unknown as string }] }, nsErr('gons_net', 'EINVAL')],
    ['unknown type', { namespaces: [{ type: 'foo' as 'net', path: '/proc/self/ns/net' }] }, argErr('ERR_INVALID_ARG_VALUE', /unknown namespace type "foo"/)],
    ['duplicate type', { namespaces: [{ type: 'net', path: '/proc/self/ns/net' }, { type: '!net', path: '/proc/self/ns/net' }] },
      nsErr('gons_order', 'EINVAL', 'package gons: duplicate namespace order type net')],
    ['!!net', { namespaces: [{ type: '!!net' as 'net', path: '/proc/self/ns/net' }] }, argErr('ERR_INVALID_ARG_VALUE', /unknown namespace type "!net"/)],
    ['type with a space', { namespaces: [{ type: ' net' as 'net', path: '/proc/self/ns/net' }] }, argErr('ERR_INVALID_ARG_VALUE', /unknown namespace type " net"/)],
    ['empty type', { namespaces: [{ type: '' as 'net', path: '/proc/self/ns/net' }] }, argErr('ERR_INVALID_ARG_VALUE', /unknown namespace type ""/)],
    ['namespaces not an array', { namespaces: 'net' as never }, argErr('ERR_INVALID_ARG_TYPE')],
    ['null namespace entry', { namespaces: [null as never] }, argErr('ERR_INVALID_ARG_VALUE')],
    ['env value not a string', { env: { A: 1 as unknown as string } }, argErr('ERR_INVALID_ARG_VALUE', /invalid env entry "A"/)],
    ['env name with =', { env: { 'A=B': 'c' } }, argErr('ERR_INVALID_ARG_VALUE')],
    ['empty env name', { env: { '': 'c' } }, argErr('ERR_INVALID_ARG_VALUE')],
    ['env value with NUL', { env: { A: 'b\0c' } }, argErr('ERR_INVALID_ARG_VALUE')],
    ['empty action name', { action: '' }, argErr('ERR_INVALID_ARG_VALUE', /invalid action name ""/)],
    ['action name with =', { action: 'a=b' }, argErr('ERR_INVALID_ARG_VALUE')],
    ['action name not a string', { action: 7 }, argErr('ERR_INVALID_ARG_VALUE')],
    ['unregistered action', { action: 'nobody-registered-this' }, argErr('ERR_GONS_UNREGISTERED_ACTION')],
    ['a function as param', { param: () => 1 }, argErr('ERR_GONS_NOT_CLONEABLE')],
    ['a symbol as param', { param: Symbol('s') }, argErr('ERR_GONS_NOT_CLONEABLE')],
    ['negative timeout', { timeout: -5 }, argErr('ERR_OUT_OF_RANGE')],
    ['zero timeout', { timeout: 0 }, argErr('ERR_OUT_OF_RANGE')],
    ['infinite timeout', { timeout: Infinity }, argErr('ERR_OUT_OF_RANGE')],
    ['timeout beyond what Node timers take', { timeout: 2 ** 31 }, argErr('ERR_OUT_OF_RANGE')],
    ['timeout not a number', { timeout: '10' as unknown as number }, argErr('ERR_OUT_OF_RANGE')],
    ['bad output', { output: 'stdout' as 'stderr' }, argErr('ERR_INVALID_ARG_VALUE')],
    ['target and namespaces', { target: { pid: process.pid }, namespaces: [] }, argErr('ERR_INVALID_ARG_VALUE', /cannot be combined/)],
    ['target pid 0', { target: { pid: 0 } }, argErr('ERR_INVALID_ARG_VALUE')],
    ['target pid not an integer', { target: { pid: 1.5 } }, argErr('ERR_INVALID_ARG_VALUE')],
    ['target pid a string (a command\'s output)', { target: { pid: '17638\n' as never } }, argErr('ERR_INVALID_ARG_TYPE', /target\.pid must be a number, not the string "17638\\n"/)],
    ['container name with a space', { target: { container: 'my app' } }, argErr('ERR_INVALID_ARG_VALUE', /target\.container "my app" is no container name or id/)],
    ['container engine a relative path', { target: { container: 'db', engine: 'docker.sock' } }, argErr('ERR_INVALID_ARG_VALUE', /target\.engine must be/)],
    ['container and pid', { target: { container: 'db', pid: 1 } as never }, argErr('ERR_INVALID_ARG_VALUE', /unknown target option key "pid"/)],
    ['target types unknown', { target: { pid: process.pid, types: ['foo' as 'net'] } }, argErr('ERR_INVALID_ARG_VALUE')],
    ['dead pid target', { target: { pid: deadPid } }, nsErr('gons_target_pidfd', 'ESRCH', /No such process/)],
    ['entry that does not exist', { entry: 'no/such/entry.js' },
      { code: 'ENOENT', syscall: 'stat', path: join(process.cwd(), 'no/such/entry.js'), message: /^gons\/reexec: action "mark": cannot run entry ".*\/no\/such\/entry\.js": ENOENT$/ }],
    ['entry that is a directory', { entry: __dirname }, { code: 'ERR_INVALID_ARG_VALUE', path: __dirname, message: /: not a file$/ }],
    ['entry not a path', { entry: 42 as never }, argErr('ERR_INVALID_ARG_TYPE', /entry must be a path or a file: URL/)],
    ['entry an http: URL', { entry: new URL('http://example.com/x.js') }, argErr('ERR_INVALID_ARG_VALUE', /entry "http:\/\/example\.com\/x\.js": .*file/)],
    ['an aborted signal', { signal: AbortSignal.abort() }, { name: 'AbortError', code: 'ABORT_ERR' }],
    ['a signal that is not an AbortSignal', { signal: { aborted: false } as never }, argErr('ERR_INVALID_ARG_TYPE', /signal must be an AbortSignal/)],
    ['env not an object', { env: 'A=1' as never }, argErr('ERR_INVALID_ARG_TYPE', /env must be an object/)],
    ['an aborted signal with a target', { signal: AbortSignal.abort(), target: { pid: process.pid } }, { name: 'AbortError' }],
  ];

  t.test(`${cases.length} bad inputs, each rejected with its own error before the action runs`, async (t) => {
    const dir = t.testdir({});
    for (const [i, [name, { action = 'mark', ...options }, expected]] of cases.entries()) {
      const marker = join(dir, `marker-${i}`);
      await t.rejects(runReexecAction(action as string, { param: marker, ...options }), expected as object as Error, name);
      t.notOk(existsSync(marker), `${name}: the action never ran`);
    }
  });

  t.test('workers and their calls refuse unknown keys too', async (t) => {
    await t.rejects(openNamespaceWorker({ targt: { pid: process.pid } } as never), argErr('ERR_INVALID_ARG_VALUE', /openNamespaceWorker: unknown option key "targt" \(did you mean "target"\?\)/));
    await t.rejects(openNamespaceWorker({ param: 1 } as never), argErr('ERR_INVALID_ARG_VALUE', /unknown option key "param"/));
    const worker = await openNamespaceWorker();
    t.teardown(() => worker.close());
    const dir = t.testdir({});
    await t.rejects(worker.run('mark', join(dir, 'm'), { timout: 5 } as never), argErr('ERR_INVALID_ARG_VALUE', /NamespaceWorker\.run: unknown option key "timout" \(did you mean "timeout"\?\)/));
    t.notOk(existsSync(join(dir, 'm')), 'the action never ran');
    await t.rejects(runReexecAction('mark', 'x' as never), argErr('ERR_INVALID_ARG_TYPE', /option must be an object/));
  });
});
