/**
 * No way back to the host's filesystem: outside coverage runs, a child that
 * joined a mount namespace closes every fd to the host's root before its
 * first action, so a link a container plants into /proc/self/fd/<n> leads
 * nowhere. (A coverage run keeps the way back to write its coverage at exit:
 * shown here too, which proves the probe finds the hole where it is open.)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import t from 'tap';
import { createNamespaces } from '../testing/index';
import { fixturePath, needsRoot, plainEnv } from './fixtures/helpers';

const COUNT = 32;

t.test('a link into /proc/self/fd reaches the host only while the way back is kept', { skip: needsRoot }, async (t) => {
  const hostDir = mkdtempSync('/var/tmp/gons-seal-');
  t.teardown(() => rmSync(hostDir, { recursive: true, force: true }));
  const ns = await createNamespaces(t, ['mnt'], { files: { '/etc/gons-seal-marker': '' } });
  // The container plants the links in its own /etc (the overlay's upper layer; the host's /etc is untouched).
  for (let n = 0; n < COUNT; n++) symlinkSync(`/proc/self/fd/${n}${hostDir}/written-${n}`, `/proc/${ns.pid}/root/etc/gons-seal-${n}`);
  const run = (env: NodeJS.ProcessEnv) => {
    const args = [...process.execArgv.filter((a) => !a.includes('processinfo')), fixturePath('seal-parent.ts'), JSON.stringify([ns.pid, COUNT])];
    // Through env(1): under coverage, tap's processinfo puts its instrumentation back into every process this
    // test spawns, which would make the child a coverage run; env -u takes it out again before node starts.
    const strip = env.NODE_V8_COVERAGE ? [] : ['-u', 'NODE_V8_COVERAGE', '-u', '_TAPJS_PROCESSINFO_COVERAGE_', '-u', 'NODE_OPTIONS'];
    const res = spawnSync('env', [...strip, process.execPath, ...args], { env, encoding: 'utf8' });
    t.equal(res.status, 0, 'the parent exits 0', { stderr: res.stderr });
    return JSON.parse(res.stdout) as { wrote: number[]; fds: string[] };
  };

  const sealed = run(plainEnv());
  t.same(sealed.wrote, [], 'sealed: no link led anywhere');
  t.same(readdirSync(hostDir), [], 'sealed: nothing written on the host');
  t.notOk(sealed.fds.some((f) => f === '/' || f.startsWith(hostDir) || f === process.cwd()), 'sealed: no fd to the host root or cwd');

  const kept = run({ ...plainEnv(), NODE_V8_COVERAGE: mkdtempSync('/var/tmp/gons-seal-coverage-') });
  t.ok(kept.wrote.length > 0, 'with the way back kept (coverage run), the probe finds it');
  t.ok(readdirSync(hostDir).length > 0, 'and writes through it: the hole the seal closes');
});
