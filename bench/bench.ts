/**
 * `npm run bench`: every row is gons against a peer measured in the same run,
 * interleaved so that drift of the machine hits both alike, and given as a
 * ratio (gons / peer) with its target:
 * - a cold call against bare `node entry`;
 * - a cold call into a uts namespace against `nsenter -t PID -u node entry`;
 * - warm calls (sequential, 16 concurrent) against a plain Node ping-pong of
 *   the same small message over a socket pair (bench/peer.ts: ids and a
 *   pending map, as gons's calls have);
 * - the sequential warm call against a minimal peer (bench/minimal-peer.ts:
 *   one frame written in one write each way, no ids, no pending map), the
 *   least a Node-to-Node call over a socket pair costs;
 * - a 64 MiB Buffer param + result round trip against the same plain Node
 *   socket-pair echo of the same payload with v8.serialize;
 * - the parent's RSS growth over 10,000 warm calls, next to the peer's.
 * Prints the Node version first, and writes the table to
 * docs/benchmarks/bench.md (bench/report.ts); runs on any supported line once
 * the addon is built for it (docs/compatibility.md). Needs root (for nsenter
 * and the throw-away uts namespace).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { cpus, release } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { join } from 'node:path';
import { checkAction, openNamespaceWorker, runReexecAction } from '../reexec/index';
import { createNamespaces } from '../testing/index';
import { frame, frames } from './minimal-peer';
import { receive, send } from './peer';
import { writeReport } from './report';
import './entry';

const entry = join(__dirname, 'entry.js');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const MiB = 1024 * 1024;

// A gc() for the RSS row without --expose-gc on the command line: re-executed children inherit
// execArgv, and that flag alone costs them Node's start-up snapshot.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** A plain Node echo child on a socket pair (fd 3), with calls matched to replies by id like gons's. */
class Peer {
  private nextId = 1;
  private readonly pending = new Map<number, (value: unknown) => void>();
  private constructor(private readonly child: ChildProcess, private readonly sock: Socket) {
    receive(sock, (msg) => {
      const { id, value } = msg as { id: number; value: unknown };
      this.pending.get(id)?.(value);
      this.pending.delete(id);
    });
  }

  static async start(): Promise<Peer> {
    const child = spawn(process.execPath, [join(__dirname, 'peer.js')], { stdio: ['ignore', 'ignore', 'inherit', 'pipe'] });
    const peer = new Peer(child, child.stdio[3] as Socket);
    await peer.run('ready');
    return peer;
  }

  run(value: unknown): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      send(this.sock, { id, value });
    });
  }

  async close(): Promise<void> {
    this.sock.end();
    await once(this.child, 'exit');
  }
}

/** The minimal peer (bench/minimal-peer.ts): one frame per call, replies matched to calls by order alone. */
class MinimalPeer {
  private readonly waiting: Array<(value: unknown) => void> = [];
  private constructor(private readonly child: ChildProcess, private readonly sock: Socket) {
    frames(sock, (value) => this.waiting.shift()!(value));
  }

  static async start(): Promise<MinimalPeer> {
    const child = spawn(process.execPath, [join(__dirname, 'minimal-peer.js')], { stdio: ['ignore', 'ignore', 'inherit', 'pipe'] });
    const peer = new MinimalPeer(child, child.stdio[3] as Socket);
    await peer.run('ready');
    return peer;
  }

  run(value: unknown): Promise<unknown> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.sock.write(frame(value));
    });
  }

  async close(): Promise<void> {
    this.sock.end();
    await once(this.child, 'exit');
  }
}

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

const ratio = (a: number, b: number) => a / b;
const ms = (x: number) => `${x.toFixed(1)} ms`;

/** `calls` calls of `call`, `concurrency` at a time; returns calls/s and each call's latency. */
async function load(calls: number, concurrency: number, call: () => Promise<unknown>): Promise<{ rate: number; lat: number[] }> {
  const lat: number[] = [];
  let issued = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (issued < calls) {
      issued++;
      const s = performance.now();
      await call();
      lat.push(performance.now() - s);
    }
  }));
  return { rate: calls / ((performance.now() - t0) / 1000), lat };
}

/** Warm calls of each of `fns` in turn, in 10 rounds of 1,000 each; returns each one's calls/s and latencies. */
async function warmBlocks(concurrency: number, fns: Array<() => Promise<unknown>>) {
  const blocks = 10;
  const per = 1000;
  const secs = fns.map(() => 0);
  const lat = fns.map(() => [] as number[]);
  for (let i = 0; i < blocks; i++) {
    for (const [j, fn] of fns.entries()) {
      const r = await load(per, concurrency, fn);
      secs[j] += per / r.rate;
      lat[j].push(...r.lat);
    }
  }
  return { rate: secs.map((t) => (blocks * per) / t), lat };
}

async function rssGrowth(calls: number, call: () => Promise<unknown>): Promise<{ growth: number; before: number }> {
  gc();
  const before = process.memoryUsage().rss;
  for (let i = 0; i < calls; i++) await call();
  gc();
  await new Promise((r) => setTimeout(r, 100));
  gc();
  return { growth: (process.memoryUsage().rss - before) / MiB, before: before / MiB };
}

async function main() {
  await checkAction();
  console.log(`gons bench — Node ${process.version} (${process.execPath}), Linux ${release()}, ${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}\n`);
  const rows: Row[] = [];
  const n = Number(process.env.BENCH_RUNS ?? 21);

  const [cold, bare] = await compare(n, () => runReexecAction('noop', { entry }), () => run(process.execPath, [entry]));
  rows.push(['1. cold call (entry) vs bare `node entry`', `${ms(cold)} vs ${ms(bare)} = ${ratio(cold, bare).toFixed(2)}×`, '≤ 1.10×', ratio(cold, bare) <= 1.1]);

  const ns = await createNamespaces(['uts'], { hostname: 'bench' });
  const peer = await Peer.start();
  const minimal = await MinimalPeer.start();
  try {
    const [inNs, nsenter] = await compare(n,
      () => runReexecAction('noop', { entry, namespaces: ns.namespaces() }),
      () => run('nsenter', ['-t', String(ns.pid), '-u', process.execPath, entry]));
    rows.push(['2. cold call in a uts ns vs `nsenter -t PID -u node entry`', `${ms(inNs)} vs ${ms(nsenter)} = ${ratio(inNs, nsenter).toFixed(2)}×`, '(report)', true]);

    const worker = await openNamespaceWorker({ entry, namespaces: ns.namespaces() });
    try {
      const param = { id: 1, name: 'small' };
      const gonsCall = () => worker.run('echo', param);
      const peerCall = () => peer.run(param);
      const minimalCall = () => minimal.run(param);
      for (let i = 0; i < 2000; i++) { await gonsCall(); await peerCall(); await minimalCall(); } // warm-up

      // The three interleaved in the same rounds, so that the machine's drift hits all alike.
      const seq = await warmBlocks(1, [gonsCall, peerCall, minimalCall]);
      const [gonsRate, peerRate, minimalRate] = seq.rate;
      const seqRatio = peerRate / gonsRate; // time per call, gons / peer
      rows.push(['3a. warm call, sequential, vs plain Node socket-pair ping-pong (ids, pending map)',
        `${Math.round(gonsRate)} vs ${Math.round(peerRate)} calls/s = ${seqRatio.toFixed(2)}× the time; p50 ${pct(seq.lat[0], 0.5).toFixed(3)} vs ${pct(seq.lat[1], 0.5).toFixed(3)} ms = ${(pct(seq.lat[0], 0.5) / pct(seq.lat[1], 0.5)).toFixed(2)}× (gons p99 ${pct(seq.lat[0], 0.99).toFixed(3)} ms)`,
        '≤ 1.5×', seqRatio <= 1.5]);
      const wireRatio = minimalRate / gonsRate;
      rows.push(['3c. warm call, sequential, vs minimal peer (one write each way, no ids, no pending map)',
        `${Math.round(gonsRate)} vs ${Math.round(minimalRate)} calls/s = ${wireRatio.toFixed(2)}× the time; p50 ${pct(seq.lat[0], 0.5).toFixed(3)} vs ${pct(seq.lat[2], 0.5).toFixed(3)} ms = ${(pct(seq.lat[0], 0.5) / pct(seq.lat[2], 0.5)).toFixed(2)}×`,
        '≤ 1.3×', wireRatio <= 1.3]);
      const con = await warmBlocks(16, [gonsCall, peerCall]);
      const conRatio = con.rate[1] / con.rate[0];
      rows.push(['3b. warm calls, 16 concurrent, vs the same ping-pong, 16 concurrent',
        `${Math.round(con.rate[0])} vs ${Math.round(con.rate[1])} calls/s = ${conRatio.toFixed(2)}× the time`, '≤ 1.5×', conRatio <= 1.5]);

      const mem = await rssGrowth(10000, gonsCall);
      const peerMem = await rssGrowth(10000, peerCall);
      rows.push(['5. parent RSS growth over 10,000 warm calls (peer: same calls to the plain Node echo)',
        `${mem.growth.toFixed(2)} MiB (${mem.before.toFixed(0)} MiB before); peer ${peerMem.growth.toFixed(2)} MiB`, '≤ 5 MiB', mem.growth <= 5]);
      const big = Buffer.alloc(64 * MiB, 1);
      const [trip, peerTrip] = await compare(5, () => worker.run('echo', big), () => peer.run(big));
      const coldTrips: number[] = [];
      for (let i = 0; i < 3; i++) coldTrips.push(await time(() => runReexecAction('echo', { entry, param: big })));
      rows.push(['4. 64 MiB Buffer param + result round trip vs plain Node socket-pair v8.serialize echo',
        `${ms(trip)} vs ${ms(peerTrip)} = ${ratio(trip, peerTrip).toFixed(2)}× (one-shot: ${ms(median(coldTrips))})`, '≤ 1.0×', ratio(trip, peerTrip) <= 1.0]);

    } finally {
      await worker.close();
    }
  } finally {
    await minimal.close();
    await peer.close();
    await ns.close();
  }

  rows.sort((a, b) => a[0].localeCompare(b[0]));
  const w = [Math.max(...rows.map((r) => r[0].length)), Math.max(...rows.map((r) => r[1].length)), Math.max(...rows.map((r) => r[2].length))];
  const out = [
    `medians of ${n} cold calls each, of 5 round trips each; warm calls in 10 rounds of alternating blocks of 1,000 each (calls/s over all of them, and the median call)`,
    '',
    `| ${'row'.padEnd(w[0])} | ${'measured'.padEnd(w[1])} | ${'target'.padEnd(w[2])} | met |`,
    `|${'-'.repeat(w[0] + 2)}|${'-'.repeat(w[1] + 2)}|${'-'.repeat(w[2] + 2)}|-----|`,
    ...rows.map(([a, b, c, ok]) => `| ${a.padEnd(w[0])} | ${b.padEnd(w[1])} | ${c.padEnd(w[2])} | ${ok ? 'yes' : 'no '} |`),
  ];
  for (const line of out) console.log(line);
  console.log(`\nwritten to ${writeReport('bench', 'npm run bench', out)}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
