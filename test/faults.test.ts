/**
 * Load and faults: every call ends in its documented result or error, never
 * a hang, and nothing is left behind (zombies, stray children, fds).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { NamespaceSwitchError } from '../lib/index';
import { checkAction, runReexecAction, type ReexecError } from '../reexec/index';
import { planReexec, startWorker } from '../reexec/internal';
import { createNamespaces } from '../testing/index';
import { children, settledChildren } from './fixtures/hygiene';
import { needsRoot, plainEnv, projectRoot } from './fixtures/helpers';
import { LONG, startedPid } from './fixtures/waits';
import './fixtures/actions';


checkAction().then(() => {
  t.test('load: sequential, 50 concurrent and warm calls; all correct, nothing left behind', async (t) => {
    // `npm run stress`, smaller, in a plain Node: tap's per-child instrumentation would dominate 50 cold starts.
    const env = plainEnv();
    const res = spawnSync(process.execPath, [join(projectRoot, 'dist', 'bench', 'stress.js'), '10,50,5000'], { env, encoding: 'utf8' });
    t.equal(res.status, 0, 'stress exits 0', { stderr: res.stderr });
    const figures = JSON.parse(res.stdout.slice(0, res.stdout.lastIndexOf('}') + 1));
    t.match(figures, { wrongResults: 0, zombies: 0, strayChildren: 0, fdDelta: 0, concurrent: { calls: 50 }, warm: { calls: 5000 } });
    t.match(res.stdout, /all results correct, nothing left behind/);
  });

  t.test('the child is SIGKILLed mid-action', async (t) => {
    const pidFile = join(t.testdir({}), 'pid');
    const call = runReexecAction('hang', { param: pidFile });
    process.kill(await startedPid(pidFile), 'SIGKILL');
    await t.rejects(call, { code: 'ERR_GONS_CHILD_DIED', signal: 'SIGKILL', exitCode: null });
  });

  t.test('an action that throws after its result was sent: the result counts', async (t) => {
    t.equal(await runReexecAction('late-throw'), 'early');
  });

  t.test('an action that floods stdout and stderr with 100 MiB', async (t) => {
    t.equal(await runReexecAction('flood', { output: 'ignore' }), 'survived');
  });

  t.test('an action that runs out of heap', async (t) => {
    const err = (await runReexecAction('oom', {
      env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --max-old-space-size=32` }, output: 'ignore',
    }).catch((e) => e)) as ReexecError;
    t.match(err, { name: 'ReexecError', code: 'ERR_GONS_CHILD_DIED' });
    t.match(err.stderr, /heap out of memory/i);
  });

  t.test('a namespace holder that dies between the call and the switch', { skip: needsRoot }, async (t) => {
    const ns = await createNamespaces(['net']);
    const plan = planReexec('openNamespaceWorker', '', { namespaces: ns.namespaces() });
    await ns.close();
    const err = await startWorker(plan).catch((e) => e);
    t.type(err, NamespaceSwitchError);
    t.match(err, { envVar: 'gons_net', syscall: 'open', code: 'ENOENT', path: ns.paths.net });
  });

  t.test('after all of that, nothing is left behind', async (t) => {
    t.same(await settledChildren(LONG), []);
    t.same(children(), []);
  });
});
