/** The one errors module: the table of codes, the builders, and the child's allowlist derived from the table. */
import t from 'tap';
import {
  AbortError, ContainerError, type ErrorCode, NamespaceSwitchError, ReexecError, actionError, childErrorCodes, errorCodes, gonsError, systemError,
} from '../lib/errors';
import * as gons from '../lib/index';
import * as reexec from '../reexec/index';

const classes = { Error, TypeError, RangeError, ReexecError, ContainerError, AbortError };

t.test('gonsError builds every code of the table with the class the table names', async (t) => {
  const codes = Object.keys(errorCodes) as ErrorCode[];
  t.ok(codes.length > 30, `${codes.length} codes`);
  for (const code of codes) {
    const { kind, meaning } = errorCodes[code];
    t.match(meaning, /^\S.{10,}$/, `${code} says what it means`);
    t.ok(code === 'ABORT_ERR' || /^ERR_[A-Z_]+$/.test(code), `${code} is an error code`);
    const cause = new Error('below');
    const fields = kind === 'ReexecError' ? { action: 'peek', cause }
      : kind === 'ContainerError' ? { container: 'web', socketPath: '/run/x.sock', cause }
        : { path: '/x', cause };
    const err = gonsError(code, `gons: ${code} happened`, fields as never) as unknown as Error & Record<string, unknown>;
    t.ok(err instanceof classes[kind], `${code} is a ${kind}`);
    t.equal(err.constructor, classes[kind], `${code} is a ${kind}, not a subclass`);
    t.equal(err.code, code);
    t.equal(err.message, `gons: ${code} happened`, 'the message is kept as given');
    t.equal(err.cause, cause, 'cause is the standard one');
    t.notOk(Object.keys(err).includes('cause'), 'cause is not an own enumerable field');
    if (kind === 'ReexecError') t.equal(err.action, 'peek');
    else if (kind === 'ContainerError') t.match(err, { container: 'web', socketPath: '/run/x.sock' });
    else if (kind !== 'AbortError') t.equal(err.path, '/x');
  }
});

t.test('fields beyond a class\'s own are kept, in order after the code', async (t) => {
  const err = gonsError('ERR_GONS_PROGRAM_UNREADABLE', 'gons/reexec: x', { action: 'a', path: '/p', uid: 100000, gid: 100000 });
  t.ok(err instanceof ReexecError);
  t.match(err, { code: 'ERR_GONS_PROGRAM_UNREADABLE', action: 'a', path: '/p', uid: 100000, gid: 100000, exitCode: null, signal: null, stderr: '' });
  const plain = gonsError('ERR_GONS_UNSAFE_TARGET', 'gons: y', { pid: 7, risk: 'ptrace' });
  t.same(Object.keys(plain), ['code', 'pid', 'risk']);
  const bare = gonsError('ERR_INVALID_ARG_VALUE', 'gons: z');
  t.ok(bare instanceof TypeError);
  t.same(Object.keys(bare), ['code']);
  const end = gonsError('ERR_GONS_CHILD_DIED', 'gons/reexec: died', { action: '', exitCode: 3, signal: null, stderr: 'tail' });
  t.match(end, { exitCode: 3, signal: null, stderr: 'tail' });
  t.notOk(Object.hasOwn(end, 'cause'), 'no cause when none was given');
  const aborted = gonsError('ABORT_ERR', 'The operation was aborted');
  t.ok(aborted instanceof AbortError);
  t.equal(aborted.code, 'ABORT_ERR');
});

t.test('systemError reads as a system call\'s failure', async (t) => {
  const err = systemError('gons: cannot open /x: No such file or directory', { errno: 2, syscall: 'open', path: '/x' });
  t.match(err, { code: 'ENOENT', errno: -2, syscall: 'open', path: '/x' });
  t.equal(systemError('m', { errno: -13, syscall: 'connect', address: '127.0.0.1', port: 80 }).errno, -13, 'either sign');
  t.match(systemError('m', { errno: -13, syscall: 'connect', address: '127.0.0.1', port: 80 }), { code: 'EACCES', address: '127.0.0.1', port: 80 });
});

t.test('the child\'s allowlist is the table\'s entries a child may send, and nothing else passes', async (t) => {
  t.same([...childErrorCodes].sort(), [
    'ERR_GONS_ACTION_UNSETTLED', 'ERR_GONS_LOAD_REFUSED', 'ERR_GONS_NOT_A_SOCKET', 'ERR_GONS_NOT_CLONEABLE', 'ERR_GONS_NOT_REGULAR_FILE',
    'ERR_GONS_NOT_TRANSFERABLE', 'ERR_GONS_RECURSIVE_REEXEC', 'ERR_GONS_UNREGISTERED_ACTION',
  ]);
  for (const code of childErrorCodes) {
    const err = actionError('peek', Object.assign(new Error('made in the child'), { code }));
    t.ok(err instanceof ReexecError);
    t.equal(err.code, code, `${code} is kept`);
    t.equal(err.message, 'gons/reexec: action "peek" failed: made in the child');
  }
  // A hostile child cannot pass a condition of the parent's for its own.
  for (const code of ['ERR_GONS_TIMEOUT', 'ERR_GONS_CHILD_DIED', 'ERR_GONS_PROTOCOL', 'ERR_GONS_POOL_CLOSED', 'ENOENT', 42, undefined]) {
    const cause = Object.assign(new Error('the action\'s own'), { code });
    const err = actionError('peek', cause);
    t.equal(err.code, 'ERR_GONS_ACTION_FAILED', `${String(code)} is the action's own`);
    t.equal(err.cause, cause);
    t.equal(err.action, 'peek');
  }
});

t.test('the classes are the ones the entry points export', async (t) => {
  t.equal(gons.NamespaceSwitchError, NamespaceSwitchError);
  t.equal(gons.ContainerError, ContainerError);
  t.equal(reexec.ContainerError, ContainerError);
  t.equal(reexec.ReexecError, ReexecError);
  t.equal(reexec.AbortError, AbortError);
  t.equal(new ReexecError('m', { action: 'a', code: 'ERR_GONS_TIMEOUT' }).name, 'ReexecError');
  t.equal(new ContainerError('m', { code: 'ERR_GONS_ENGINE_API', container: 'c', socketPath: '/s' }).name, 'ContainerError');
});
