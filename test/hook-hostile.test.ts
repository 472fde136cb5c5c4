/**
 * The pre-init hook against a hostile container, played for real: SIGUSR1
 * (Node's inspector), fds the parent inherited, NSS modules and shared
 * objects planted in the target's root. Driven through the environment
 * protocol (test/fixtures/report.ts) and end to end (test/fixtures/keep-fds.ts).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { preinitPath } from '../lib/index';
import { createNamespaces } from '../testing/index';
import { fixturePath, hookedReport, needsRoot, plainEnv, projectRoot, type ReportOptions } from './fixtures/helpers';
import type { HookOptions, HookReport } from './fixtures/report';

/** Runs report.ts with the hook, `vars` and the hook-specific options. */
const hookReport = (vars: Record<string, string>, opts: ReportOptions & HookOptions) => hookedReport(vars, opts) as HookReport;

/** Node binaries to try the SIGUSR1 guard with: ours, and the other lines where they are unpacked. */
const nodeLines = [
  { name: `this Node (${process.version})`, bin: process.execPath },
  ...['22', '24', '26'].map((v) => ({ name: `Node ${v}`, bin: `/tmp/nodes/${v}/bin/node` })),
];

// A plain script (any Node line runs it): says ready, then answers each stdin line with what it sees.
const idleScript = `
const { execFileSync } = require('node:child_process');
const { readFileSync } = require('node:fs');
const { connect } = require('node:net');
process.stdout.write('ready\\n');
process.stdin.on('data', () => {
  const sigIgn = (s) => BigInt('0x' + s.match(/^SigIgn:\\s*(\\S+)/m)[1]);
  const own = sigIgn(readFileSync('/proc/self/status', 'utf8'));
  const grandchild = sigIgn(execFileSync('sh', ['-c', 'cat /proc/self/status'], { encoding: 'utf8' }));
  const socket = connect(9229, '127.0.0.1');
  const reply = (inspector) => { socket.destroy(); process.stdout.write(JSON.stringify({ own: String(own), grandchild: String(grandchild), inspector }) + '\\n'); };
  socket.once('connect', () => reply('connected')).once('error', (e) => reply(e.code));
});`;

/** Whether anything listens on TCP port 9229 (0x2415) in the network namespace of `pid`. */
function listening9229(pid: number): boolean {
  return readFileSync(`/proc/${pid}/net/tcp`, 'utf8').split('\n').slice(1)
    .some((l) => { const f = l.trim().split(/\s+/); return f[1]?.endsWith(':2415') && f[3] === '0A'; });
}

t.test('SIGUSR1 from inside the container never opens the inspector', { skip: needsRoot }, async (t) => {
  const script = join(t.testdir({ 'idle.js': idleScript }), 'idle.js');
  // The container: its own pid namespace (joined late, for the child's children: the child itself stays in ours, so
  // whoever shares our pid namespace — a --pid=host container — can signal it from its first moment) and a net
  // namespace whose loopback is up, where the inspector would listen.
  const ns = await createNamespaces(t, ['net', 'pid']);
  execFileSync('nsenter', [`--net=${ns.paths.net}`, 'ip', 'link', 'set', 'lo', 'up']);
  const SIGUSR1_BIT = 1n << 9n;
  for (const node of nodeLines) {
    await t.test(node.name, { skip: !existsSync(node.bin) && `${node.bin} not found` }, async (t) => {
      const child = spawn(node.bin, [script], {
        env: { ...plainEnv(), LD_PRELOAD: preinitPath, gons_net: ns.paths.net, gons_pid: ns.paths.pid },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      t.teardown(() => { child.kill('SIGKILL'); });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      const lines: string[] = [];
      let ready = false;
      child.stdout.on('data', (d: Buffer) => {
        lines.push(...d.toString().split('\n').filter(Boolean));
        ready ||= lines.includes('ready');
      });
      const exited = once(child, 'exit');
      const pid = child.pid;
      t.ok(pid, 'the child runs', { stderr });
      // The attacker: SIGUSR1 again and again, from the moment the hook's constructor ran until Node is up. Before it
      // (execve, the dynamic loader) SIGUSR1 has its default action and kills the process before any code of Node's
      // runs: no inspector can open, and whoever may signal the child may kill it anyway. So the flood starts once
      // SigIgn shows the hook's work; without the hook it never would, and the test fails.
      let sent = 0;
      let hooked = false;
      while (!ready && child.exitCode === null && child.signalCode === null) {
        if (!hooked) {
          try {
            hooked = (BigInt('0x' + /^SigIgn:\s*(\S+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) & SIGUSR1_BIT) !== 0n;
          } catch { /* between fork and exec, or gone */ }
        }
        if (hooked) {
          try {
            process.kill(pid!, 'SIGUSR1');
            sent++;
          } catch { /* gone */ }
        }
        await new Promise((r) => setImmediate(r));
      }
      t.ok(ready, `Node started although signalled ${sent} times (exit: ${child.exitCode ?? child.signalCode})`, { stderr });
      t.ok(sent > 0, `signalled ${sent} times between the hook and Node's start`);
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      t.ok(BigInt('0x' + /^SigIgn:\s*(\S+)/m.exec(status)![1]) & SIGUSR1_BIT, 'SIGUSR1 is ignored: the kernel drops it');
      t.notOk(BigInt('0x' + /^SigCgt:\s*(\S+)/m.exec(status)![1]) & SIGUSR1_BIT, 'no handler is installed for it');
      process.kill(pid!, 'SIGUSR1'); // once more, idle
      child.stdin.write('check\n');
      const answer = await new Promise<{ own: string; grandchild: string; inspector: string }>((res, rej) => {
        child.stdout.on('data', () => { const l = lines.find((x) => x.startsWith('{')); if (l) res(JSON.parse(l)); });
        void exited.then(() => rej(new Error(`child exited: ${stderr}`)));
      });
      t.ok(BigInt(answer.own) & SIGUSR1_BIT, 'still ignored after the idle signal');
      t.equal(answer.inspector, 'ECONNREFUSED', 'nothing accepts on 127.0.0.1:9229 in its network namespace');
      t.notOk(listening9229(pid!), 'and nothing listens there');
      t.notMatch(stderr, /Debugger listening/);
      t.notOk(BigInt(answer.grandchild) & SIGUSR1_BIT, 'a program the child runs gets the default disposition');
      child.stdin.end();
      await exited;
      t.equal(child.exitCode, 0);
    });
  }
});

/** Runs report.ts from a shell that opened fd 300 (and 3) without close-on-exec. */
function reportWithInheritedFds(vars: Record<string, string>, opts: ReportOptions = {}): HookReport {
  const res = spawnSync('bash', ['-c', 'exec 300</etc 3</var; exec "$@"', 'bash', process.execPath, ...process.execArgv,
    fixturePath('report.ts'), JSON.stringify(opts)], { env: { ...process.env, LD_PRELOAD: preinitPath, ...vars }, encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`report child failed (${res.status ?? res.signal}): ${res.stderr}`);
  return JSON.parse(res.stdout) as HookReport;
}

t.test('gons_keep_fds: inherited fds are closed before anything else', async (t) => {
  const without = reportWithInheritedFds({});
  t.ok(without.fds.includes('/etc'), 'without gons_keep_fds fd 300 reaches the child (the threat)');
  const kept = reportWithInheritedFds({ gons_keep_fds: '3' }, { exec: ['ls', '/proc/self/fd'] });
  t.equal(kept.status, null);
  t.notOk(kept.fds.includes('/etc'), 'fd 300 is closed');
  t.ok(kept.fds.includes('/var'), 'fd 3 is kept');
  t.notMatch(kept.grandchild, /^300$/m, 'and does not reach a grandchild');
  const several = reportWithInheritedFds({ gons_keep_fds: '300,5,3,300' });
  t.ok(several.fds.includes('/etc') && several.fds.includes('/var'), 'every listed fd is kept, in any order, repeats allowed');
  const none = reportWithInheritedFds({ gons_keep_fds: '' });
  t.equal(none.status, null, 'an empty list is valid');
  t.notOk(none.fds.includes('/etc') || none.fds.includes('/var'), 'and keeps none');
  for (const bad of ['2', '3,', '+3', '99999999999']) {
    const r = reportWithInheritedFds({ gons_keep_fds: bad, gons_uts: '/proc/self/ns/uts' }, { exec: ['env'] });
    t.match(r.status, {
      envVar: 'gons_keep_fds', code: 'EINVAL', path: bad,
      message: `package gons: invalid gons_keep_fds "${bad}": must be a comma list of fd numbers above 2`,
    }, `malformed ${JSON.stringify(bad)} is recorded`);
    t.notOk(r.fds.includes('/etc') || r.fds.includes('/var'), 'and fails closed: every fd above 2 is closed');
    t.notMatch(r.grandchild, /gons_keep_fds/, 'the variable is removed from the environment');
  }
});

t.test('gons_keep_fds end to end: an action never sees what its parent inherited', { skip: needsRoot }, async (t) => {
  const uts = await createNamespaces(t, ['uts'], { hostname: 'gons-keep-fds' });
  for (const target of [[], [String(uts.pid)]]) {
    const res = spawnSync('bash', ['-c', 'exec 300</etc; exec "$@"', 'bash', process.execPath, ...process.execArgv,
      fixturePath('keep-fds.ts'), ...target], { encoding: 'utf8' });
    t.equal(res.status, 0, res.stderr);
    const listing = JSON.parse(res.stdout) as string;
    const fds = [...listing.matchAll(/ (\d+) -> (.*)$/gm)].map((m) => Number(m[1]));
    t.notMatch(listing, / -> \/etc$/m, `${target.length ? 'with a target pidfd' : 'plain'}: fd 300 is gone`);
    t.same(fds.filter((fd) => fd > 2).length, 1, 'the grandchild has 0, 1, 2 and its own directory fd only', { listing });
  }
});

t.test('the target root: no NSS module and no shared object from the container', { skip: needsRoot }, async (t) => {
  const dir = t.testdir({
    'nss.c': `#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void planted(void) { int fd = open("/etc/gons-nss-loaded", O_WRONLY | O_CREAT | O_CLOEXEC, 0644); if (fd >= 0) close(fd); }
`,
  });
  execFileSync('cc', ['-shared', '-fPIC', '-o', join(dir, 'libnss_gonstest.so.2'), join(dir, 'nss.c')]);
  const libdir = `/usr/lib/${execFileSync('gcc', ['-dumpmachine'], { encoding: 'utf8' }).trim()}`;
  const marker = '/etc/gons-nss-loaded';
  const addonInTarget = '/etc/gons-addon.node';
  // /etc and the loader's directory are the container's own (tmpfs) in its mount namespace.
  const mnt = await createNamespaces(t, ['mnt'], {
    files: {
      '/etc/nsswitch.conf': 'passwd: gonstest files\ngroup: gonstest files\nhosts: gonstest files\n',
      '/etc/passwd': 'root:x:0:0:root of the target:/gons-target-home:/bin/sh\n',
      '/etc/hosts': '10.11.12.13 gons-target-host\n',
      [`${libdir}/libnss_gonstest.so.2`]: '',
      [addonInTarget]: '',
    },
  });
  const inTarget = (p: string) => `/proc/${mnt.pid}/root${p}`;
  copyFileSync(join(dir, 'libnss_gonstest.so.2'), inTarget(`${libdir}/libnss_gonstest.so.2`));
  copyFileSync(join(projectRoot, 'build', 'Release', 'gons.node'), inTarget(addonInTarget));
  const addonOnHost = join(dir, 'copy.node');
  copyFileSync(join(projectRoot, 'build', 'Release', 'gons.node'), addonOnHost);

  const r = hookReport({ gons_mnt: mnt.paths.mnt }, {
    enterRoot: true, files: [marker], lookup: 'gons-target-host', dlopen: { inTarget: addonInTarget, after: addonOnHost },
  });
  t.equal(r.status, null);
  t.same(r.lookups, { home: '/gons-target-home', address: '10.11.12.13' }, "lookups answer from the target's /etc/passwd and /etc/hosts");
  t.equal(r.inTarget?.files[marker], null, "the target's NSS module was never loaded");
  t.notOk(existsSync(inTarget(marker)), 'its constructor never ran');
  t.equal(r.dlopened?.inTarget, `gons: loading "${addonInTarget}" refused while inside the target's root filesystem`,
    'process.dlopen inside the target root throws the refusal');
  t.equal(r.dlopened?.after, 'loaded', 'after leaving the root, loading works again');
});

t.test("the exec-time environment block is cleared: /proc/<pid>/environ shows none of the parent's variables", async (t) => {
  // What any reader of /proc/<pid>/environ gets: the block's bytes as they are now.
  const probe = `const b = require('node:fs').readFileSync('/proc/self/environ', 'latin1');
    process.stdout.write(JSON.stringify({ inBlock: b.includes('hunter2'), nonZero: b.replace(/\\0/g, '').length, env: process.env.GONS_TEST_SECRET,
      grandchild: require('node:child_process').execFileSync('sh', ['-c', 'printf %s "$GONS_TEST_SECRET"'], { encoding: 'utf8' }) }));`;
  const run = (env: NodeJS.ProcessEnv) => JSON.parse(execFileSync(process.execPath, ['-e', probe], { env, encoding: 'utf8' }));
  const env = { ...plainEnv(), GONS_TEST_SECRET: 'hunter2' };
  t.match(run(env), { inBlock: true }, 'without the hook the block holds the variable (the threat)');
  t.same(run({ ...env, LD_PRELOAD: preinitPath }), { inBlock: false, nonZero: 0, env: 'hunter2', grandchild: 'hunter2' },
    'with the hook: cleared, while the process and its children still have their environment');
});
