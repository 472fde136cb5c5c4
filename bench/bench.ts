/**
 * `npm run bench`: measures cold one-shot calls, warm workers, a 64 MiB round
 * trip and the parent's memory over many warm calls, each row in this run,
 * and prints a table with the targets of issue 5. Needs root (for nsenter
 * and the throw-away uts namespace).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { cpus, release } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { join } from 'node:path';
import { checkAction, openNamespaceWorker, runReexecAction } from '../reexec/index';
import { createNamespaces } from '../reexec/testing';
import './entry';

const entry = join(__dirname, 'entry.js');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const MiB = 1024 * 1024;

// A gc() for the RSS row without --expose-gc on the command line: re-executed children inherit
// execArgv, and that flag alone costs them Node's start-up snapshot.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function run(cmd: string, args: string[]): Promise<void> {
  const child = spawn(cmd, args, { stdio: 'ignore' });
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${code}`);
}

/** Interleaves the two measurements so that drift of the machine hits both alike. */
async function compare(n: number, a: () => Promise<unknown>, b: () => Promise<unknown>): Promise<[number, number]> {
  const ta: number[] = [];
  const tb: number[] = [];
  await a();
  await b();
  for (let i = 0; i < n; i++) {
    ta.push(await time(a));
    tb.push(await time(b));
  }
  return [median(ta), median(tb)];
}

type Row = [string, string, string, boolean];

async function main() {
  await checkAction();
  const rows: Row[] = [];
  const n = Number(process.env.BENCH_RUNS ?? 21);

  const [cold, bare] = await compare(n, () => runReexecAction('noop', { entry }), () => run(process.execPath, [entry]));
  rows.push(['1. cold call (entry) vs bare `node entry`', `${cold.toFixed(1)} ms vs ${bare.toFixed(1)} ms = ${(cold / bare).toFixed(2)}×`, '≤ 1.10×', cold / bare <= 1.1]);

  const ns = await createNamespaces(['uts'], { hostname: 'bench' });
  try {
    const [inNs, nsenter] = await compare(n,
      () => runReexecAction('noop', { entry, namespaces: ns.namespaces() }),
      () => run('nsenter', ['-t', String(ns.pid), '-u', process.execPath, entry]));
    rows.push(['2. cold call in a uts ns vs `nsenter -t PID -u node entry`', `${inNs.toFixed(1)} ms vs ${nsenter.toFixed(1)} ms = ${(inNs / nsenter).toFixed(2)}×`, '(report)', true]);

    const worker = await openNamespaceWorker({ entry, namespaces: ns.namespaces() });
    try {
      const param = { id: 1, name: 'small' };
      for (let i = 0; i < 2000; i++) await worker.run('echo', param); // warm-up
      const lat: number[] = [];
      const t0 = performance.now();
      for (let i = 0; i < 10000; i++) {
        const s = performance.now();
        await worker.run('echo', param);
        lat.push(performance.now() - s);
      }
      const seqRate = 10000 / ((performance.now() - t0) / 1000);
      const p50 = pct(lat, 0.5);
      const p99 = pct(lat, 0.99);
      rows.push(['3a. warm worker, sequential', `${Math.round(seqRate)} calls/s, p50 ${p50.toFixed(3)} ms, p99 ${p99.toFixed(3)} ms`,
        '≥ 5000 calls/s, p50 ≤ 0.2 ms', seqRate >= 5000 && p50 <= 0.2]);

      const clat: number[] = [];
      const c0 = performance.now();
      let issued = 0;
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (issued < 10000) {
          issued++;
          const s = performance.now();
          await worker.run('echo', param);
          clat.push(performance.now() - s);
        }
      }));
      const conRate = 10000 / ((performance.now() - c0) / 1000);
      rows.push(['3b. warm worker, 16 concurrent', `${Math.round(conRate)} calls/s, p50 ${pct(clat, 0.5).toFixed(3)} ms, p99 ${pct(clat, 0.99).toFixed(3)} ms`,
        '≥ 5000 calls/s', conRate >= 5000]);

      gc();
      const before = process.memoryUsage().rss;
      for (let i = 0; i < 10000; i++) await worker.run('echo', param);
      gc();
      await new Promise((r) => setTimeout(r, 100));
      gc();
      const growth = (process.memoryUsage().rss - before) / MiB;
      rows.push(['5. parent RSS growth over 10,000 warm calls', `${growth.toFixed(2)} MiB (${(before / MiB).toFixed(0)} MiB before)`, '≤ 5 MiB', growth <= 5]);
      const big = Buffer.alloc(64 * MiB, 1);
      const trips: number[] = [];
      for (let i = 0; i < 5; i++) trips.push(await time(() => worker.run('echo', big)));
      const trip = median(trips);
      const coldTrips: number[] = [];
      for (let i = 0; i < 3; i++) coldTrips.push(await time(() => runReexecAction('echo', { entry, param: big })));
      const cold64 = median(coldTrips);
      rows.push(['4. 64 MiB Buffer param + result round trip', `${trip.toFixed(0)} ms warm, ${cold64.toFixed(0)} ms cold`, '≤ 1000 ms', trip <= 1000]);

    } finally {
      await worker.close();
    }
  } finally {
    await ns.close();
  }

  rows.sort((a, b) => a[0].localeCompare(b[0]));
  const w = [Math.max(...rows.map((r) => r[0].length)), Math.max(...rows.map((r) => r[1].length)), Math.max(...rows.map((r) => r[2].length))];
  console.log(`gons bench — Node ${process.version}, Linux ${release()}, ${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}; medians of ${n} runs where repeated\n`);
  console.log(`| ${'row'.padEnd(w[0])} | ${'measured'.padEnd(w[1])} | ${'target'.padEnd(w[2])} | met |`);
  console.log(`|${'-'.repeat(w[0] + 2)}|${'-'.repeat(w[1] + 2)}|${'-'.repeat(w[2] + 2)}|-----|`);
  for (const [a, b, c, ok] of rows) console.log(`| ${a.padEnd(w[0])} | ${b.padEnd(w[1])} | ${c.padEnd(w[2])} | ${ok ? 'yes' : 'no '} |`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
