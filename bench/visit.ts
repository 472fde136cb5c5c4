/**
 * `npm run bench:visit`: visiting 100 network namespaces three ways in one
 * run (one cold call each, one warm worker each, a pool with max 4): wall
 * time and peak memory (summed RSS of this process and all its descendants,
 * sampled from /proc); an idle worker's RSS against a bare `node`; and
 * listNamespaces() on a host with 1,000 more processes. Needs root. Writes
 * its table to docs/benchmarks/visit.md (bench/report.ts).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, readdirSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { listNamespaces } from '../lib/index';
import { checkAction, createNamespacePool, openNamespaceWorker, runReexecAction } from '../reexec/index';
import { createNamespaces } from '../testing/index';
import { writeReport } from './report';
import './visit-entry';

const entry = join(__dirname, 'visit-entry.js');
const N = Number(process.env.BENCH_NAMESPACES ?? 100);
const MAX = 4;
const MiB = 1024 * 1024;

function rss(pid: number | 'self'): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0; // gone meanwhile
  }
}

function descendants(pid: number | 'self'): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const kids = tasks.flatMap((tid) => {
    try {
      return readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  });
  return kids.flatMap((k) => [k, ...descendants(k)]);
}

/** Summed RSS of this process and its descendants, minus the namespace holders (they are there for every row alike). */
function totalRss(exclude: Set<number>): number {
  return rss('self') + descendants('self').filter((p) => !exclude.has(p)).reduce((sum, p) => sum + rss(p), 0);
}

/** Runs `fn`, sampling total RSS every 20 ms; returns wall ms and peak bytes. */
async function measure(exclude: Set<number>, fn: () => Promise<unknown>): Promise<{ ms: number; peak: number }> {
  let peak = totalRss(exclude);
  const timer = setInterval(() => (peak = Math.max(peak, totalRss(exclude))), 20);
  const t0 = performance.now();
  try {
    await fn();
  } finally {
    clearInterval(timer);
  }
  const ms = performance.now() - t0;
  return { ms, peak: Math.max(peak, totalRss(exclude)) };
}

/** At most `n` of `tasks` at once. */
async function limited<T>(n: number, tasks: Array<() => Promise<T>>): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await tasks[i]();
    }
  }));
  return out;
}

async function idleRss(): Promise<{ worker: number; bare: number }> {
  const worker = await openNamespaceWorker({ entry });
  await worker.run('interfaces');
  await new Promise((r) => setTimeout(r, 1000));
  const w = rss(worker.pid);
  await worker.close();
  const bare = spawn(process.execPath, ['-e', 'console.log("up"); setInterval(() => {}, 1000)'], { stdio: ['ignore', 'pipe', 'ignore'] });
  await once(bare.stdout, 'data');
  await new Promise((r) => setTimeout(r, 1000));
  const b = rss(bare.pid!);
  bare.kill('SIGKILL');
  await once(bare, 'exit');
  return { worker: w, bare: b };
}

async function discovery(): Promise<{ procs: number; all: number[]; net: number[]; cpuAll: number[]; found: number }> {
  // One shell with 1,000 sleeping children, in its own process group to end them all at once.
  const sh = spawn('sh', ['-c', 'i=0; while [ $i -lt 1000 ]; do sleep 1000 & i=$((i+1)); done; echo started; wait'], {
    stdio: ['ignore', 'pipe', 'ignore'], detached: true,
  });
  await once(sh.stdout, 'data');
  try {
    const procs = readdirSync('/proc').filter((n) => /^\d+$/.test(n)).length;
    const all: number[] = [];
    const cpuAll: number[] = [];
    const net: number[] = [];
    let found = 0;
    for (let i = 0; i < 7; i++) {
      const c = process.cpuUsage();
      const t0 = performance.now();
      found = listNamespaces().length;
      all.push(performance.now() - t0);
      const used = process.cpuUsage(c);
      cpuAll.push((used.user + used.system) / 1000);
      const t1 = performance.now();
      listNamespaces('net');
      net.push(performance.now() - t1);
    }
    return { procs, all, net, cpuAll, found };
  } finally {
    process.kill(-sh.pid!, 'SIGKILL');
    await once(sh, 'exit');
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mib = (b: number) => `${(b / MiB).toFixed(0)} MiB`;

async function main() {
  await checkAction();
  const startLoad = loadavg()[0];
  console.log(`gons bench:visit — Node ${process.version}, Linux ${release()}, ${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}, load ${startLoad.toFixed(1)}\n`);
  const holders = await limited(8, Array.from({ length: N }, () => () => createNamespaces(['net'])));
  const exclude = new Set(holders.flatMap((h) => [h.pid, ...descendants(h.pid)]));
  for (const h of holders) {
    // unshare, the holder's parent, is ours too.
    const ppid = Number(/PPid:\s+(\d+)/.exec(readFileSync(`/proc/${h.pid}/status`, 'utf8'))![1]);
    exclude.add(ppid);
  }
  const where = holders.map((h) => h.namespaces());
  const check = (answers: string[][]) => {
    if (answers.length !== N || !answers.every((a) => a.length === 1 && a[0] === 'lo')) throw new Error(`wrong answers: ${JSON.stringify(answers.slice(0, 3))}`);
  };
  const rows: Array<[string, string]> = [];
  try {
    const cold = await measure(exclude, async () => {
      check(await limited(MAX, where.map((namespaces) => () => runReexecAction<string[]>('interfaces', { entry, namespaces }))));
    });
    rows.push([`${N} cold calls (${MAX} at a time)`, `${(cold.ms / 1000).toFixed(1)} s, peak ${mib(cold.peak)}`]);

    const each = await measure(exclude, async () => {
      const workers = await Promise.all(where.map((namespaces) => openNamespaceWorker({ entry, namespaces })));
      try {
        check(await Promise.all(workers.map((w) => w.run<string[]>('interfaces'))));
      } finally {
        await Promise.all(workers.map((w) => w.close()));
      }
    });
    rows.push([`${N} workers, one per namespace`, `${(each.ms / 1000).toFixed(1)} s, peak ${mib(each.peak)}`]);

    const pooled = await measure(exclude, async () => {
      await using pool = createNamespacePool({ entry, max: MAX });
      check(await Promise.all(where.map((namespaces) => pool.run<string[]>({ namespaces }, 'interfaces'))));
    });
    rows.push([`pool, max ${MAX}`, `${(pooled.ms / 1000).toFixed(1)} s (${(pooled.ms / each.ms).toFixed(2)}× one-per-namespace; target ≤ 2×), peak ${mib(pooled.peak)} (${(pooled.peak / each.peak).toFixed(3)}×; target ≤ 0.1×)`]);
  } finally {
    await Promise.all(holders.map((h) => h.close()));
  }

  const idle = await idleRss();
  rows.push(['idle worker vs bare node', `${mib(idle.worker)} vs ${mib(idle.bare)}`]);

  const d = await discovery();
  rows.push([`listNamespaces() with ${d.procs} processes (median of 7)`,
    `${median(d.all).toFixed(1)} ms wall, ${median(d.cpuAll).toFixed(1)} ms CPU (target < 100 ms), ${d.found} namespaces; listNamespaces('net') ${median(d.net).toFixed(1)} ms`]);

  const w = Math.max(...rows.map((r) => r[0].length));
  const v = Math.max(...rows.map((r) => r[1].length));
  const out = [
    `${N} network namespaces, each visited once; memory is the peak of the summed RSS of the program and all its children, ` +
      `namespace holders left out; load average ${startLoad.toFixed(1)} at the start.`,
    '',
    `| ${'row'.padEnd(w)} | ${'measured'.padEnd(v)} |`,
    `|${'-'.repeat(w + 2)}|${'-'.repeat(v + 2)}|`,
    ...rows.map(([a, b]) => `| ${a.padEnd(w)} | ${b.padEnd(v)} |`),
  ];
  for (const l of out) console.log(l);
  console.log(`\nwritten to ${writeReport('visit', 'npm run bench:visit', out)}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
