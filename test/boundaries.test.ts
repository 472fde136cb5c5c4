/**
 * Privilege boundaries: what an action's own children inherit, and where the
 * action stands. (Non-dumpability against the target user namespace's owner
 * and inertness under secure execution are in hook.test.ts.)
 */
import t, { type Test } from 'tap';
import { checkAction, runReexecAction } from '../reexec/index';
import { createNamespaces } from '../testing/index';
import { needsRoot } from './fixtures/helpers';
import './fixtures/actions';

/** fd numbers in `ls -l /proc/PID/fd` output. */
const fdsOf = (listing: string) => [...listing.matchAll(/ (\d+) -> /g)].map((m) => Number(m[1])).sort((a, b) => a - b);

function checkView(t: Test, view: string) {
  // Not even what a plain child of this process inherits (tap leaks a pipe to its children): the hook closes it.
  t.same(fdsOf(view), [0, 1, 2], 'stdio only: no channel, no original root, no namespace fds, nothing the parent inherited');
  t.notMatch(view, /^gons_/m, 'no gons_* variables');
  t.notMatch(view, /gons_preinit/, 'no LD_PRELOAD of ours');
}

checkAction().then(() => {
  t.test("an action's children inherit nothing of gons", async (t) => {
    checkView(t, (await runReexecAction('grandchild-view')) as string);
  });

  t.test('... also inside user, mount and net namespaces', { skip: needsRoot }, async (t) => {
    const ns = await createNamespaces(t, ['user', 'mnt', 'net']);
    checkView(t, (await runReexecAction('grandchild-view', { namespaces: ns.namespaces() })) as string);
    const where = (await runReexecAction('whereami', { namespaces: ns.namespaces() })) as { cwd: string };
    t.equal(where.cwd, '/', 'the cwd is the root of the target mount namespace, never a path of the original one');
  });
});
