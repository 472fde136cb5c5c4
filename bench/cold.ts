/**
 * `npm run bench:cold`: what the compile cache does for cold calls. For a
 * small entry and one that loads TypeScript's compiler, in one run: bare
 * `node entry`, a cold call without the cache, the first call with an empty
 * cache, and the steady state; medians of interleaved runs (`BENCH_RUNS`,
 * default 15). Run it under each Node line (the addon built for it). Writes
 * its table to docs/benchmarks/cold.md (bench/report.ts).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkAction, runReexecAction } from '../reexec/index';
import { compileCacheSupported } from '../reexec/compile-cache';
import { writeReport } from './report';
import './entry';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** `node entry`, as a user would start it: no compile cache unless asked for. */
async function bare(entry: string, cacheDir?: string): Promise<void> {
  const env = { ...process.env };
  delete env.NODE_COMPILE_CACHE;
  if (cacheDir !== undefined) env.NODE_COMPILE_CACHE = cacheDir;
  const child = spawn(process.execPath, [entry], { stdio: 'ignore', env });
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`node ${entry} exited with ${code}`);
}

/** Runs each measurement once to warm up, then `n` rounds of all of them in turn; medians in ms. */
async function interleaved(n: number, fns: Array<() => Promise<unknown>>): Promise<number[]> {
  const times = fns.map(() => [] as number[]);
  for (const fn of fns) await fn();
  for (let i = 0; i < n; i++) {
    for (const [j, fn] of fns.entries()) times[j].push(await time(fn));
  }
  return times.map(median);
}

async function main() {
  await checkAction();
  const n = Number(process.env.BENCH_RUNS ?? 15);
  const scratch = mkdtempSync(join(tmpdir(), 'gons-bench-cold-'));
  let fresh = 0;
  const rows: string[][] = [];
  try {
    for (const [name, entry] of [['small', join(__dirname, 'entry.js')], ['typescript', join(__dirname, 'cold-entry.js')]]) {
      const steady = join(scratch, `${name}-steady`);
      const bareCache = join(scratch, `${name}-bare`);
      const [tBare, tBareCached, tOff, tFirst, tSteady] = await interleaved(n, [
        () => bare(entry),
        () => bare(entry, bareCache),
        () => runReexecAction('noop', { entry, compileCache: false }),
        () => runReexecAction('noop', { entry, compileCache: { directory: join(scratch, `fresh-${fresh++}`) } }),
        () => runReexecAction('noop', { entry, compileCache: { directory: steady } }),
      ]);
      const ratio = (t: number) => `${t.toFixed(1)} ms = ${(t / tBare).toFixed(2)}×`;
      rows.push([name, `${tBare.toFixed(1)} ms`, ratio(tBareCached), ratio(tOff), ratio(tFirst), ratio(tSteady)]);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const head = ['entry', 'bare `node entry`', 'bare, NODE_COMPILE_CACHE warm', 'cold call, no cache', 'cold call, first (cache empty)', 'cold call, steady state'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(w[i])).join(' | ')} |`;
  const ts = rows[1];
  const steadyRatio = Number(/= ([\d.]+)×/.exec(ts[5])![1]);
  const out = [
    `Compile cache ${compileCacheSupported ? 'supported' : 'not supported on this line: children run without it'}; ` +
      `medians of ${n} interleaved runs, ratios against bare \`node entry\` (a cold call is timed to its reply, bare \`node\` to its exit).`,
    '',
    line(head),
    `|${w.map((x) => '-'.repeat(x + 2)).join('|')}|`,
    ...rows.map(line),
    '',
    `Target: steady-state cold call ≤ 0.85× bare \`node entry\` for the typescript entry: ${steadyRatio}× — ` +
      `${!compileCacheSupported ? 'n/a on this line' : steadyRatio <= 0.85 ? 'met' : 'not met'}.`,
  ];
  console.log(`gons bench:cold — Node ${process.version}, Linux ${release()}, ${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}\n`);
  for (const l of out) console.log(l);
  console.log(`\nwritten to ${writeReport('cold', 'npm run bench:cold', out)}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
