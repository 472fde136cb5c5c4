/**
 * `npm run bench:handles` (root): a socket made inside a network namespace by
 * `connectIn` against an ordinary loopback socket of this process, both
 * streaming to the same kind of sink in the same run; the time to a
 * connected socket, cold and through a warm worker; and every bound of issue
 * #25 (native connectIn, listenIn, openIn, 1,000 namespaces), each marked
 * PASS or FAIL. The table is printed and written to docs/benchmarks/handles.md;
 * the exit status is 1 when a bound failed.
 */
import { ChildProcess, execFileSync } from 'node:child_process';
import { promises as fsp, readSync, writeSync } from 'node:fs';
import net from 'node:net';
import { availableParallelism, cpus } from 'node:os';
import { checkAction, connectIn, listenIn, openIn, openNamespaceWorker, register, socketConstants, socketIn } from '../reexec/index';
import { createNamespaces } from '../testing/index';
import { writeReport } from './report';

const MiB = 1024 * 1024;
const PORT = 47311;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** One table row: what was measured and, for a bound of issue #25, whether it was met. */
interface Row {
  row: string;
  measured: string;
  bound?: string;
  met?: boolean;
}
const bounded = (row: string, measured: string, bound: string, met: boolean): Row => ({ row, measured, bound, met });
const reported = (row: string, measured: string): Row => ({ row, measured });

/** The table, as printed and as written to docs/benchmarks/handles.md. */
function table(rows: Row[]): string {
  return [
    '| row | measured | bound | result |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.row} | ${r.measured} | ${r.bound ?? '(report)'} | ${r.met === undefined ? '' : r.met ? 'PASS' : 'FAIL'} |`),
  ].join('\n');
}

/** Every process this one spawns goes through ChildProcess.prototype.spawn: counted, for the native rows. */
let spawned = 0;
const proto = ChildProcess.prototype as unknown as { spawn: (...args: unknown[]) => unknown };
const spawn = proto.spawn;
proto.spawn = function (this: ChildProcess, ...args: unknown[]) {
  spawned++;
  return spawn.apply(this, args);
};

// A sink inside the child: counts what it gets, answers with the count when the sender ends.
register('bench:sink', (port: number) => new Promise<void>((resolve) => {
  net.createServer((c) => {
    let n = 0;
    c.on('data', (d) => (n += d.length)).on('end', () => c.end(String(n)));
  }).listen(port, '127.0.0.1', () => resolve());
}));

/** Streams `total` bytes through `sock` and resolves to MiB/s once the sink has counted them all. */
function stream(sock: net.Socket, total: number): Promise<number> {
  const chunk = Buffer.alloc(MiB, 7);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    let answer = '';
    sock.on('data', (d) => (answer += d)).on('error', reject).on('end', () => {
      if (Number(answer) !== total) reject(new Error(`sink counted ${answer} of ${total} bytes`));
      resolve(total / MiB / ((performance.now() - t0) / 1000));
    });
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        sent += chunk.length;
        if (!sock.write(chunk)) return void sock.once('drain', pump);
      }
      sock.end();
    };
    pump();
  });
}

function connectHere(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s)).on('error', reject);
  });
}

async function main(): Promise<void> {
  const ns = await createNamespaces(['net']);
  execFileSync('nsenter', ['-t', String(ns.pid), '-n', 'ip', 'link', 'set', 'lo', 'up']);
  const inside = await openNamespaceWorker({ namespaces: ns.namespaces() });
  const here = await openNamespaceWorker();
  await inside.run('bench:sink', PORT);
  await here.run('bench:sink', PORT);

  const total = 512 * MiB;
  const viaGons: number[] = [];
  const plain: number[] = [];
  for (let i = 0; i < 5; i++) { // interleaved, so that drift of the machine hits both alike
    viaGons.push(await stream(await connectIn(inside, { host: '127.0.0.1', port: PORT }), total));
    plain.push(await stream(await connectHere(PORT), total));
  }

  const time = async (fn: () => Promise<net.Socket>) => {
    const t0 = performance.now();
    (await fn()).destroy();
    return performance.now() - t0;
  };
  const cold: number[] = [];
  for (let i = 0; i < 10; i++) cold.push(await time(() => connectIn({ namespaces: ns.namespaces() }, { host: '127.0.0.1', port: PORT })));
  const warm: number[] = [];
  const direct: number[] = [];
  for (let i = 0; i < 200; i++) {
    warm.push(await time(() => connectIn(inside, { host: '127.0.0.1', port: PORT })));
    direct.push(await time(() => connectHere(PORT)));
  }

  const ratio = median(viaGons) / median(plain);
  const rows: Row[] = [...await nativeConnectRows(ns.paths.net, PORT), await nativeListenRow(ns.paths.net), ...await thousandRows()];
  rows.push(
    bounded('throughput, 512 MiB through a connectIn socket vs an ordinary loopback socket (median of 5)', `${median(viaGons).toFixed(0)} vs ${median(plain).toFixed(0)} MiB/s = ${ratio.toFixed(2)}×`, '≥ 0.9×', ratio >= 0.9),
    reported('time to a connected socket: connectIn with { namespaces } (native path since #25; median of 10)', `${median(cold).toFixed(1)} ms`),
    reported('time to a connected socket: connectIn through a warm worker vs net.connect here (median of 200)', `${median(warm).toFixed(3)} ms vs ${median(direct).toFixed(3)} ms`),
  );
  await inside.close();
  await here.close();
  await ns.close();
  rows.push(...await openInRows());
  report(rows);
}

/** Prints the table and each bound's verdict, writes docs/benchmarks/handles.md; exit status 1 when a bound failed. */
function report(rows: Row[]): void {
  const machine = `Node ${process.version}, ${availableParallelism()} CPUs (nproc), ${cpus()[0]?.model.trim() ?? 'unknown CPU'}`;
  const text = table(rows);
  console.log(machine);
  console.log(text);
  let subject = '';
  for (const r of rows) {
    // A "…" row continues the one above it: named in full here.
    subject = r.row.startsWith('…') ? subject : r.row;
    const name = r.row.startsWith('…') ? `${subject} ${r.row}` : r.row;
    if (r.met !== undefined) console.log(`${r.met ? 'PASS' : 'FAIL'}: ${name}: ${r.measured} (bound ${r.bound})`);
  }
  const failed = rows.filter((r) => r.met === false).length;
  console.log(failed === 0 ? 'all bounds met' : `${failed} bound(s) not met`);
  writeReport('handles', 'npm run bench:handles', [
    '# Handles: the bounds of issue #25',
    '',
    `${failed === 0 ? 'Every bound met' : `${failed} bound(s) not met`} in this run.`,
    '',
    text,
  ]);
  if (failed > 0) process.exitCode = 1;
}

/**
 * openIn of a file that exists only in a container-like target (its own
 * mount, pid, uts, ipc and network namespaces): the native path (no child)
 * against `fs.promises.open` of the same file through `/proc/<pid>/root`,
 * interleaved; and through a warm worker (the child path).
 */
async function openInRows(): Promise<Row[]> {
  const file = '/tmp/gons-bench-open';
  const ns = await createNamespaces(['mnt', 'pid', 'uts', 'ipc', 'net'], { files: { [file]: 'x'.repeat(4096) } });
  const worker = await openNamespaceWorker({ target: { pid: ns.pid } });
  const time = async (fn: () => Promise<fsp.FileHandle>) => {
    const t0 = performance.now();
    await (await fn()).close();
    return performance.now() - t0;
  };
  const native: number[] = [];
  const direct: number[] = [];
  const child: number[] = [];
  for (let i = 0; i < 20; i++) await time(() => openIn({ target: { pid: ns.pid } }, file)); // warm-up
  const before = spawned;
  for (let i = 0; i < 500; i++) {
    native.push(await time(() => openIn({ target: { pid: ns.pid } }, file)));
    direct.push(await time(() => fsp.open(`/proc/${ns.pid}/root${file}`)));
  }
  const started = spawned - before;
  for (let i = 0; i < 100; i++) child.push(await time(() => openIn(worker, file)));
  const ratio = median(native) / median(direct);
  await worker.close();
  await ns.close();
  return [
    bounded('openIn of a file in a container-like target by pid, native path (p50 of 500)', `${median(native).toFixed(3)} ms`, '≤ 1 ms', median(native) <= 1),
    bounded('… vs fs.promises.open of the same file through /proc/<pid>/root, interleaved (p50 of 500)', `${median(direct).toFixed(3)} ms = ${ratio.toFixed(2)}×`, '≤ 5×', ratio <= 5),
    bounded('… processes started by those 500 native calls', String(started), '0', started === 0),
    reported('openIn through a warm worker (the child path, p50 of 100)', `${median(child).toFixed(3)} ms`),
  ];
}

/** p50 of a native connectIn into a fresh network namespace vs net.connect here, interleaved (both servers in other processes). */
async function nativeConnectRows(netPath: string, port: number): Promise<Row[]> {
  const where = { namespaces: [{ type: 'net' as const, path: netPath }] };
  const here = net.createServer((c) => c.destroy()).listen(0, '127.0.0.1');
  await new Promise((r) => here.once('listening', r));
  const herePort = (here.address() as net.AddressInfo).port;
  const native: number[] = [];
  const plain: number[] = [];
  const before = spawned;
  for (let i = 0; i < 1000; i++) {
    let t0 = performance.now();
    (await connectIn(where, { host: '127.0.0.1', port })).destroy();
    native.push(performance.now() - t0);
    t0 = performance.now();
    (await connectHere(herePort)).destroy();
    plain.push(performance.now() - t0);
  }
  here.close();
  const ratio = median(native) / median(plain);
  return [
    bounded('connectIn into a fresh network namespace, native path (p50 of 1000)', `${median(native).toFixed(3)} ms`, '≤ 1 ms', median(native) <= 1),
    bounded('… vs net.connect to a loopback server here, interleaved (p50 of 1000)', `${median(plain).toFixed(3)} ms = ${ratio.toFixed(2)}×`, '≤ 5×', ratio <= 5),
    bounded('… processes started by those 1000 native calls', String(spawned - before), '0', spawned === before),
  ];
}

/** p50 of a native listenIn in a network namespace (closed again each time). */
async function nativeListenRow(netPath: string): Promise<Row> {
  const where = { namespaces: [{ type: 'net' as const, path: netPath }] };
  const times: number[] = [];
  for (let i = 0; i < 1000; i++) {
    const t0 = performance.now();
    const server = await listenIn(where, { host: '127.0.0.1', port: 0 });
    times.push(performance.now() - t0);
    server.close();
  }
  return bounded('listenIn in a network namespace, native path (p50 of 1000)', `${median(times).toFixed(3)} ms`, '≤ 1 ms', median(times) <= 1);
}

/**
 * Brings `lo` up through a netlink socket made inside the namespace by socketIn:
 * one RTM_NEWLINK (index 1, IFF_UP) and its ack.
 */
async function loUp(where: { namespaces: Array<{ type: 'net'; path: string }> }): Promise<void> {
  const nl = await socketIn(where, { domain: socketConstants.AF_NETLINK, type: socketConstants.SOCK_RAW, protocol: 0 /* NETLINK_ROUTE */ });
  try {
    const msg = Buffer.alloc(32);
  msg.writeUInt32LE(32, 0); // nlmsg_len
  msg.writeUInt16LE(16, 4); // RTM_NEWLINK
  msg.writeUInt16LE(1 | 4, 6); // NLM_F_REQUEST | NLM_F_ACK
  msg.writeInt32LE(1, 20); // ifi_index: lo
  msg.writeUInt32LE(1, 24); // ifi_flags: IFF_UP
  msg.writeUInt32LE(1, 28); // ifi_change
  writeSync(nl.fd, msg);
  const ack = Buffer.alloc(1024);
  readSync(nl.fd, ack);
  const error = ack.readInt32LE(16); // NLMSG_ERROR's error
    if (ack.readUInt16LE(4) !== 2 || error !== 0) throw new Error(`lo up: netlink error ${error}`);
  } finally {
    nl.close();
  }
}

/** One native connectIn into each of 1,000 network namespaces (a server listenIn'd in each first): total time, RSS growth, processes. */
async function thousandRows(): Promise<Row[]> {
  const N = 1000;
  const names = Array.from({ length: N }, (_, i) => `gons-bench-${process.pid}-${i}`);
  execFileSync('ip', ['-batch', '-'], { input: names.map((n) => `netns add ${n}\n`).join('') });
  try {
    const wheres = names.map((n) => ({ namespaces: [{ type: 'net' as const, path: `/run/netns/${n}` }] }));
    const servers: net.Server[] = [];
    for (const where of wheres) {
      await loUp(where);
      const server = await listenIn(where, { host: '127.0.0.1', port: PORT });
      server.on('connection', (c) => c.destroy());
      servers.push(server);
    }
    const before = spawned;
    const rss0 = process.memoryUsage().rss;
    const t0 = performance.now();
    for (const where of wheres) (await connectIn(where, { host: '127.0.0.1', port: PORT })).destroy();
    const total = performance.now() - t0;
    const grown = (process.memoryUsage().rss - rss0) / MiB;
    const started = spawned - before;
    for (const s of servers) s.close();
    const what = `one connectIn into each of ${N} network namespaces, native path`;
    return [
      bounded(`${what}: total time`, `${(total / 1000).toFixed(2)} s`, '< 5 s', total < 5000),
      bounded(`${what}: parent RSS growth`, `${grown.toFixed(1)} MiB`, '< 50 MiB', grown < 50),
      bounded(`${what}: processes started`, String(started), '0', started === 0),
    ];
  } finally {
    execFileSync('ip', ['-batch', '-'], { input: names.map((n) => `netns del ${n}\n`).join('') });
  }
}

void checkAction().then(main);
