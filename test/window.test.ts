/**
 * The start-up window and the deputy (issue 22), played by a container for
 * real. A child used to be visible in the container's procfs from its fork
 * into the container's pid namespace on, while its root was still the host's
 * for Node's whole start-up: a container could SIGSTOP it at any point and
 * follow /proc/<child>/root (itself with CAP_SYS_PTRACE, or through a deputy:
 * another gons child, with the host's CAP_SYS_PTRACE, writing a path the
 * container pointed there). The attacker (test/fixtures/attack/attacker.c,
 * mode `freeze`) stops every process that appears in its pid namespace, again
 * and again through its life, tries /proc/<pid>/{root,cwd,fd/N,exe} to a host
 * file each time, and points a link at /proc/<pid>/root/<host file> for an
 * unconfined gons child (one-shot and worker) that keeps writing it.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { coverageRun } from '../reexec/role';
import { checkAction, openNamespaceWorker, runReexecAction } from '../reexec/index';
import './fixtures/attack/actions';
import type { VictimState } from './fixtures/attack/actions';
import { type Container, type Lines, buildTools, createContainer, missingTools } from './fixtures/attack/target';
import { needsRoot } from './fixtures/helpers';

const skipContainer = needsRoot || missingTools();
/** Node's main thread (the process's comm) as the kernel names it: "node", or "MainThread" (24), "node-MainThread" (26). */
const NODE_COMMS = new Set(['node', 'MainThread', 'node-MainThread']);
const SECRET = 'host secret\n';

type Outcome<T> = { ok: true; value: T } | { ok: false; code: string | null; message: string };
const settle = <T>(p: Promise<T>): Promise<Outcome<T>> =>
  p.then((value) => ({ ok: true as const, value }), (e: { code?: string; message?: string }) => ({ ok: false as const, code: e.code ?? null, message: String(e.message ?? e) }));

/** What the freezing attacker reported: processes seen (pid → comm), freeze points, hits. */
function summary(att: Lines) {
  const seen = new Map<number, string>();
  /** Every comm a process had while the attacker watched (a fork of Node's main thread is "node" until it execs). */
  const names = new Map<number, Set<string>>();
  /** The most threads a process had at a freeze point: Node runs ~10; the container's tools and a fork before exec, 1. */
  const threads = new Map<number, number>();
  const frozen = new Map<number, number>();
  const hits: string[] = [];
  const exe = new Map<string, number>();
  for (const l of att.all) {
    let m: RegExpExecArray | null;
    if ((m = /^new (\d+) (.*)$/.exec(l))) {
      seen.set(Number(m[1]), m[2]);
      names.set(Number(m[1]), new Set([m[2]]));
    } else if ((m = /^comm (\d+) (.*)$/.exec(l))) names.get(Number(m[1]))?.add(m[2]);
    else if ((m = /^threads (\d+) (\d+)$/.exec(l))) threads.set(Number(m[1]), Number(m[2]));
    else if ((m = /^(?:frozen|total) (\d+) (\d+)$/.exec(l))) frozen.set(Number(m[1]), Math.max(frozen.get(Number(m[1])) ?? 0, Number(m[2])));
    else if (l.startsWith('hit ')) hits.push(l);
    else if ((m = /^exe \d+ read (.*)$/.exec(l))) exe.set(m[1], (exe.get(m[1]) ?? 0) + 1);
  }
  const points = [...frozen.values()].reduce((a, b) => a + b, 0);
  return { seen, names, threads, frozen, hits, exe, points };
}

/** Resolves once the attacker froze `n` processes named `comm` (spawned by an action) at least once each. */
function frozenPrograms(att: Lines, comm: string, n: number): Promise<unknown> {
  return att.waitFor(() => {
    const s = summary(att);
    return [...s.frozen.keys()].filter((pid) => s.names.get(pid)?.has(comm)).length >= n;
  }, 240_000, `${n} programs named ${comm} frozen`);
}

/**
 * Creates a gate file in the container from the host, through its root: not with `c.put`, whose nsenter stops
 * itself when the attacker stops the process it runs in the container, and stays stopped.
 */
function openGate(c: Container, gate: string): void {
  writeFileSync(c.hostPath(gate), '');
}

void checkAction().then(() => {
  t.setTimeout(30 * 60 * 1000);
  const variants = [
    { name: 'Docker-like container (own pid namespace, no CAP_SYS_PTRACE)', opts: { userns: false }, allow: [] },
    // These two are refused by default (ERR_GONS_UNSAFE_TARGET, attack.test.ts): here the risk is accepted, to
    // measure the defences beneath the refusal.
    { name: 'container with CAP_SYS_PTRACE (--cap-add SYS_PTRACE)', opts: { userns: false, ptrace: true }, allow: ['ptrace' as const] },
    { name: 'container in the host\'s pid namespace (--pid=host)', opts: { userns: false, hostPid: true }, allow: ['host-pid' as const] },
  ];
  for (const v of variants) {
    t.test(v.name, { skip: skipContainer }, async (t) => {
      const tools = buildTools(t);
      const c: Container = await createContainer(t, tools, v.opts);
      const target = { pid: c.pid, allow: v.allow };
      const secretPath = join(tools.hostDir, 'secret');
      const rel = secretPath.slice(1);
      const link = '/tmp/deputy-link';
      writeFileSync(secretPath, SECRET);

      t.test('a frozen child shows nothing of the host; a deputy cannot follow a frozen process\'s root', async (t) => {
        const att = c.run(['/tmp/attacker', 'freeze', rel, link]);
        t.teardown(() => att.end());
        await att.waitFor((l) => l === 'ready');
        // Cold one-shot calls: each child's whole start-up, action and exit happen while the attacker watches.
        const calls: Array<Outcome<VictimState>> = [];
        for (let i = 0; i < 3; i++) calls.push(await settle(runReexecAction<VictimState>('victim', { target, param: { spawn: true }, timeout: 120000 })));
        // A one-shot deputy, then a warm worker's: they write the link the attacker keeps pointing at
        // /proc/<frozen process>/root/<host file>, and run programs for it to freeze (in their fork-exec window too).
        const gate1 = '/tmp/gate-deputy-1';
        const one = settle(runReexecAction<{ written: number; failed: number; ran: number }>('deputy', { target, param: { path: link, gate: gate1, programs: 10 }, timeout: 480_000 }));
        // Waits for the attacker to have frozen programs, within a bound; the controls at the end count what it froze.
        await Promise.race([frozenPrograms(att, 'sh', 5).catch(() => undefined), one]);
        openGate(c, gate1);
        const oneShot = await one;
        const opened = await settle(openNamespaceWorker({ target, timeout: 120000 }));
        t.match(opened, { ok: true }, 'a worker starts while the attacker freezes what it sees');
        let worker: Outcome<{ written: number; failed: number; ran: number }> | undefined;
        if (opened.ok) {
          const gate2 = '/tmp/gate-deputy-2';
          const running = settle(opened.value.run<{ written: number; failed: number; ran: number }>('deputy', { path: link, gate: gate2, programs: 10 }));
          await Promise.race([frozenPrograms(att, 'sh', 10).catch(() => undefined), running]);
          openGate(c, gate2);
          worker = await running;
          await opened.value.close();
        }
        await att.end();
        const s = summary(att);
        t.comment(`freeze points: ${s.points} in ${s.frozen.size} processes; processes seen: ${JSON.stringify([...s.seen])}`);
        t.comment(`/proc/<pid>/exe opened read-only by the container: ${JSON.stringify([...s.exe])}`);
        t.comment(`one-shot deputy: ${JSON.stringify(oneShot)}; worker deputy: ${JSON.stringify(worker)}`);
        for (const [i, r] of calls.entries()) t.match(r, { ok: true }, `one-shot call ${i + 1} succeeds`, { outcome: r });
        t.match(oneShot, { ok: true }, 'the one-shot deputy ran');
        t.match(worker, { ok: true }, 'the worker deputy ran');
        // A gons child: a Node process with its threads (the forks an action makes are single-threaded copies).
        const nodes = [...s.threads].filter(([pid, n]) => n > 1 && [...s.names.get(pid) ?? []].some((comm) => NODE_COMMS.has(comm)));
        const gonsPids = new Set(nodes.map(([pid]) => pid));
        if (v.opts.hostPid) {
          // Sharing the host's pid namespace, the container also sees every other host process; a dumpable one of
          // its uid whose capabilities are within its own (on this shared machine: other tests' tools) it can follow
          // itself, and so can a deputy (the README's residue). gons children must not be among them.
          const onGons = s.hits.filter((h) => gonsPids.has(Number(h.split(' ')[1])));
          t.same(onGons, [], 'no freeze point of a gons child reached the host file');
          t.comment(`residue, host processes that are no gons children: ${JSON.stringify([...new Set(s.hits.map((h) => `${h.split(' ')[1]} ${s.seen.get(Number(h.split(' ')[1]))}`))])}`);
          t.comment(`the host file after the deputies: ${JSON.stringify(readFileSync(secretPath, 'utf8'))}`);
        } else {
          // A coverage run keeps the way back to the host's root (two fds) so that a child can write its coverage at
          // exit (the README; test/seal.test.ts): a program an action forks holds them until its exec. What this
          // measures is a production child's, where no such fd exists; the other lines of the matrix run it whole.
          const kept = coverageRun() ? (h: string) => /^hit \d+ fd\d+-/.test(h) : () => false;
          t.same(s.hits.filter((h) => !kept(h)), [], 'no freeze point reached the host file through /proc/<pid>/root, cwd, fd/N or exe');
          t.equal(readFileSync(secretPath, 'utf8'), SECRET, 'no deputy wrote the host file');
        }
        if (v.opts.hostPid) {
          // The container sees every host process, gons children included, and froze them throughout their start-up.
          t.ok(nodes.length >= 3, `the container saw and froze gons children, Node's threads running (${nodes.length})`);
        } else {
          t.same(nodes, [], 'no gons child (a Node process with its threads) ever appears in the container\'s procfs');
          for (const r of calls.filter((r) => r.ok)) {
            t.equal(r.value.selfInProc, false, 'the child is not in the container\'s procfs');
            t.equal(r.value.spawnedPidNs, `pid:[${statSync(`/proc/${c.pid}/ns/pid`).ino}]`, 'its children go into the container\'s pid namespace');
          }
        }
        // Control: the attacker did freeze what it could see, many times.
        const programs = [...s.frozen.keys()].filter((pid) => s.names.get(pid)?.has('sh'));
        const forks = programs.filter((pid) => s.seen.get(pid) !== 'sh');
        t.comment(`${forks.length} of them first frozen between fork and exec`);
        t.ok(programs.length >= 10, `the attacker froze ${programs.length} programs the actions ran`);
        t.ok(s.points >= 20, `${s.points} freeze points in all`);
      });

      t.test('a link to another process\'s root, planted for an action to write', async (t) => {
        // In the host's pid namespace the container names host processes (this test runner, init); in its own, it
        // names what it sees: its own init (whose root is its own).
        const pids = v.opts.hostPid ? [process.pid, 1] : [1];
        const escaped = join(tools.hostDir, 'escaped-deputy');
        for (const pid of pids) {
          for (const action of ['write-file', 'write-file-async']) {
            const path = `/tmp/deputy-${pid}-${action}`;
            c.runSync(['ln', '-sf', `/proc/${pid}/root/${escaped.slice(1)}`, path]);
            const one = await settle(runReexecAction(action, { target, param: { path, content: 'one-shot\n' }, timeout: 120000 }));
            const opened = await settle(openNamespaceWorker({ target, timeout: 120000 }));
            const w = opened.ok ? await settle(opened.value.run(action, { path, content: 'worker\n' })) : opened;
            if (opened.ok) await opened.value.close();
            t.comment(`${action} through /proc/${pid}/root: one-shot ${JSON.stringify(one)}, worker ${JSON.stringify(w)}`);
            t.notOk(existsSync(escaped), `${action} through /proc/${pid}/root writes no host file (one-shot and worker)`);
            if (v.opts.hostPid) t.match([one, w], [{ ok: false, message: /EACCES|EPERM/ }, { ok: false, message: /EACCES|EPERM/ }], 'refused by the kernel');
          }
        }
      });
    });
  }
});
