/**
 * `npm run bench:handles` (root): a socket made inside a network namespace by
 * `connectIn` against an ordinary loopback socket of this process, both
 * streaming to the same kind of sink in the same run; and the time to a
 * connected socket, cold and through a warm worker.
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import net from 'node:net';
import { checkAction, connectIn, openIn, openNamespaceWorker, register } from '../reexec/index';
import { createNamespaces } from '../testing/index';

const MiB = 1024 * 1024;
const PORT = 47311;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

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
  console.log(`node ${process.version}`);
  console.log('| row | measured | target | met |');
  console.log('|---|---|---|---|');
  console.log(`| throughput, 512 MiB through a connectIn socket vs an ordinary loopback socket (median of 5) | ${median(viaGons).toFixed(0)} vs ${median(plain).toFixed(0)} MiB/s = ${ratio.toFixed(2)}× | ≥ 0.9× | ${ratio >= 0.9 ? 'yes' : 'no'} |`);
  console.log(`| time to a connected socket: cold connectIn (median of 10) | ${median(cold).toFixed(1)} ms | (report) | |`);
  console.log(`| time to a connected socket: connectIn through a warm worker vs net.connect here (median of 200) | ${median(warm).toFixed(3)} ms vs ${median(direct).toFixed(3)} ms | (report) | |`);
  await inside.close();
  await here.close();
  await ns.close();
  await openInRows();
}

/**
 * openIn of a file that exists only in a target's mount namespace: the
 * native path (no child) against `fs.promises.open` of the same file through
 * `/proc/<pid>/root`, interleaved; and through a warm worker (the child path).
 */
async function openInRows(): Promise<void> {
  const file = '/tmp/gons-bench-open';
  const ns = await createNamespaces(['mnt'], { files: { [file]: 'x'.repeat(4096) } });
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
  for (let i = 0; i < 500; i++) {
    native.push(await time(() => openIn({ target: { pid: ns.pid } }, file)));
    direct.push(await time(() => fsp.open(`/proc/${ns.pid}/root${file}`)));
    if (i % 5 === 0) child.push(await time(() => openIn(worker, file)));
  }
  const ratio = median(native) / median(direct);
  console.log(`| openIn of a file in a target's mount namespace, native path vs fs.promises.open through /proc/<pid>/root (median of 500) | ${median(native).toFixed(3)} ms vs ${median(direct).toFixed(3)} ms = ${ratio.toFixed(1)}× | ≤ 1 ms, ≤ 5× | ${median(native) <= 1 && ratio <= 5 ? 'yes' : 'no'} |`);
  console.log(`| openIn through a warm worker (the child path, median of 100) | ${median(child).toFixed(3)} ms | (report) | |`);
  await worker.close();
  await ns.close();
}

void checkAction().then(main);
