/**
 * `npm run stress`: many one-shot calls, sequential and concurrent, and many
 * calls against a warm worker; checks every result and prints what was left
 * behind (zombies, stray children, fds). Not part of `npm test`, which runs a
 * smaller version (test/stress.test.ts).
 */
import { join } from 'node:path';
import { checkAction, openNamespaceWorker, runReexecAction } from '../reexec/index';
import { children, openFds, settledChildren } from '../test/fixtures/hygiene';


/** Runs the load against `entry`, which registers `echo`; returns the figures. Exported for the tests. */
export async function stress(entry: string, sequential: number, concurrent: number, warm: number) {
  const fdsBefore = openFds();
  let wrong = 0;
  const t0 = performance.now();
  for (let i = 0; i < sequential; i++) if ((await runReexecAction('echo', { entry, param: i })) !== i) wrong++;
  const t1 = performance.now();
  const results = await Promise.all(Array.from({ length: concurrent }, (_, i) => runReexecAction('echo', { entry, param: { i } })));
  wrong += results.filter((r, i) => (r as { i: number }).i !== i).length;
  const t2 = performance.now();
  const worker = await openNamespaceWorker({ entry });
  for (let i = 0; i < warm; i += 1000) {
    const batch = await Promise.all(Array.from({ length: Math.min(1000, warm - i) }, (_, j) => worker.run('echo', i + j)));
    wrong += batch.filter((r, j) => r !== i + j).length;
  }
  await worker.close();
  const t3 = performance.now();
  const left = await settledChildren(60_000); // returns as soon as none are left; a loaded machine reaps slowly
  return {
    sequential: { calls: sequential, ms: Math.round(t1 - t0) },
    concurrent: { calls: concurrent, ms: Math.round(t2 - t1) },
    warm: { calls: warm, ms: Math.round(t3 - t2) },
    wrongResults: wrong,
    zombies: left.filter((c) => c.state === 'Z').length,
    strayChildren: left.length,
    fdDelta: openFds() - fdsBefore,
  };
}

async function main() {
  require('./entry'); // registers the actions (and calls checkAction(), which runs them in a child)
  await checkAction();
  const [seq, con, warm] = (process.argv[2] ?? '1000,100,100000').split(',').map(Number);
  const figures = await stress(join(__dirname, 'entry.js'), seq, con, warm);
  console.log(JSON.stringify(figures, null, 2));
  const ok = figures.wrongResults === 0 && figures.zombies === 0 && figures.strayChildren === 0 && figures.fdDelta === 0 && children().length === 0;
  console.log(ok ? 'stress: all results correct, nothing left behind' : 'stress: FAILED');
  process.exitCode = ok ? 0 : 1;
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
