/**
 * Coverage across re-executions: tap's instrumentation is inherited by the
 * re-executed child, which writes its coverage at exit, back on its original
 * root, even after running in a mount namespace that lacks the project and
 * after an action that threw. Checked in the children's own coverage files.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { checkAction, register, runReexecAction } from '../reexec/index';
import { createNamespaces } from '../testing/index';
import { coveredOnlyInAChild } from './fixtures/covered';
import { eventually, needsRoot, projectRoot } from './fixtures/helpers';
import { LONG } from './fixtures/waits';

register('covered', (label: string) => ({ pid: process.pid, text: coveredOnlyInAChild(label) }));
register('covered-then-throw', (label: string) => {
  coveredOnlyInAChild(label);
  throw Object.assign(new Error(`thrown by ${process.pid}`), { code: String(process.pid) });
});

const tapDir = join(projectRoot, '.tap');
const coverageOn = process.env._TAPJS_PROCESSINFO_COVERAGE_ === '1';

/** How often the child with `pid` ran coveredOnlyInAChild, from its own coverage file. */
function childCount(pid: number): number {
  for (const file of readdirSync(join(tapDir, 'processinfo'))) {
    const info = JSON.parse(readFileSync(join(tapDir, 'processinfo', file), 'utf8')) as { pid: number; uuid: string };
    if (info.pid !== pid) continue;
    const cov = JSON.parse(readFileSync(join(tapDir, 'coverage', `${info.uuid}.json`), 'utf8')) as {
      result: Array<{ url: string; functions: Array<{ functionName: string; ranges: Array<{ count: number }> }> }>;
    };
    const script = cov.result.find((s) => s.url.endsWith('/test/fixtures/covered.js'));
    return script?.functions.find((f) => f.functionName === 'coveredOnlyInAChild')?.ranges[0].count ?? 0;
  }
  throw new Error(`no processinfo for child ${pid}`);
}

checkAction().then(() => {
  t.test('coverage of code run only inside actions is recorded', { skip: coverageOn ? false : 'coverage is off' }, async (t) => {
    t.test('a plain action', async (t) => {
      const r = (await runReexecAction('covered', { param: 'plain' })) as { pid: number; text: string };
      t.equal(r.text, 'covered: plain');
      t.equal(await eventually(() => childCount(r.pid), LONG), 1);
    });
    t.test('an action that threw', async (t) => {
      const err = (await runReexecAction('covered-then-throw', { param: 'thrown' }).catch((e) => e)) as { cause: { code: string } };
      t.equal(await eventually(() => childCount(Number(err.cause.code)), LONG), 1);
    });
    t.test('an action in a mount namespace whose filesystem lacks the project', { skip: needsRoot }, async (t) => {
      const ns = await createNamespaces(t, ['mnt'], { hide: [projectRoot] });
      const r = (await runReexecAction('covered', { param: 'foreign', namespaces: ns.namespaces() })) as { pid: number };
      t.equal(await eventually(() => childCount(r.pid), LONG), 1);
    });
  });
});
