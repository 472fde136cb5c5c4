/**
 * The unprivileged tests do not depend on where the checkout lives: their children see it staged (a private mount
 * namespace, the checkout bind-mounted on a 0700 temporary directory, its own path covered by an empty 0700 tmpfs),
 * so every run exercises the layout of a checkout in root's 0700 home — and nothing on the host is loosened or mounted.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import t from 'tap';
import {
  asNobody, fixturePath, hookedReportWaiting, inStage, needsNobody, needsRoot, plainEnv, projectRoot, stagedHookedReportWaiting, stageRoot, whyNobodyCannot,
} from './fixtures/helpers';

/** The modes of the checkout and each directory above it. */
function modes(): Record<string, number> {
  const out: Record<string, number> = {};
  for (let dir = projectRoot; ; dir = dirname(dir)) {
    out[dir] = statSync(dir).mode;
    if (dir === dirname(dir)) return out;
  }
}

/** Mount points of a process (field 5 of mountinfo). */
const mountPoints = (pid: number | 'self') => readFileSync(`/proc/${pid}/mountinfo`, 'utf8').trim().split('\n').map((l) => l.split(' ')[4]);

t.test('nobody sees the checkout at the stage, and not where it lives', { skip: needsNobody() }, async (t) => {
  const pkg = join(projectRoot, 'package.json');
  const res = asNobody('cat', [pkg]);
  t.equal(res.status, 0, 'the checkout path given is rewritten to the stage', { stderr: res.stderr });
  t.equal(res.stdout, readFileSync(pkg, 'utf8'));
  const pwd = asNobody('pwd', []);
  t.equal(pwd.stdout.trim(), join(stageRoot(), relative(projectRoot, process.cwd())), 'its cwd is in the stage');
  const hidden = asNobody('ls', [projectRoot], process.env, { rewrite: false });
  t.not(hidden.status, 0, 'the checkout\'s own path is out of reach, as in a 0700 home');
  t.match(hidden.stderr, /Permission denied/);
});

t.test('a nobody child given the checkout\'s own paths fails there: the stage is as hostile as a 0700 home', { skip: needsNobody() }, async (t) => {
  const args = [...process.execArgv.filter((a) => !a.includes('processinfo')), fixturePath('unprivileged-reexec.ts')];
  const old = asNobody(process.execPath, args, plainEnv(), { rewrite: false });
  t.not(old.status, 0, 'it does not start');
  t.match(old.stderr, /ERR_MODULE_NOT_FOUND|Cannot find module|EACCES|permission denied/i);
  const staged = asNobody(process.execPath, args, plainEnv());
  t.equal(staged.status, 0, 'the same, rewritten to the stage, runs', { stderr: staged.stderr });
});

t.test('staging loosens nothing and mounts nothing on the host', { skip: needsNobody() }, async (t) => {
  const before = modes();
  const res = asNobody('ls', [projectRoot]);
  t.equal(res.status, 0, { stderr: res.stderr });
  t.same(modes(), before, 'the checkout and the directories above it keep their modes');
  const stage = statSync(stageRoot());
  t.equal(stage.mode & 0o777, 0o700, 'the stage is 0700 on the host');
  t.equal(stage.uid, 0);
  t.same(readdirSync(stageRoot()), [], 'and empty');
  t.notOk(mountPoints('self').includes(stageRoot()), 'nothing is mounted on the stage in our mount namespace');
});

t.test('a staged hooked child differs from a plain one only in its mount namespace', { skip: needsNobody() }, async (t) => {
  const plain = await hookedReportWaiting({});
  t.teardown(plain.end);
  const staged = await stagedHookedReportWaiting({});
  t.teardown(staged.end);
  t.equal(staged.report.hookLoaded, true, 'LD_PRELOAD reached the child');
  t.equal(staged.report.status, null);
  t.same(staged.report.ids, plain.report.ids);
  const { mnt, ...others } = staged.report.ns;
  const { mnt: plainMnt, ...plainOthers } = plain.report.ns;
  t.same(others, plainOthers);
  t.not(mnt, plainMnt, 'its mount namespace is private');
  const points = mountPoints(staged.pid);
  t.ok(points.includes(stageRoot()), 'the checkout is mounted on the stage there');
  t.match(readFileSync(`/proc/${staged.pid}/mountinfo`, 'utf8'), new RegExp(` ${projectRoot} .* - tmpfs gons-hidden .*mode=700`),
    'and its own path is covered by an empty 0700 tmpfs');
  t.notOk(mountPoints(plain.pid).includes(stageRoot()), 'neither is seen outside it');
});

t.test('the stage is removed when its process exits; a killed process\'s stage by the next one', { skip: needsNobody() }, async (t) => {
  const dead = spawnSync('true').pid;
  const stale = mkdtempSync(join(tmpdir(), `gons-stage-${dead}-`));
  const res = spawnSync(process.execPath, [...process.execArgv, fixturePath('unprivileged-stage.ts')], { encoding: 'utf8' });
  t.equal(existsSync(stale), false, 'the stage of a dead process is gone');
  t.equal(res.status, 0, { stderr: res.stderr });
  const { stage, status, ls } = JSON.parse(res.stdout);
  t.equal(status, 0, 'nobody could list the stage');
  t.match(ls, /^package\.json$/m);
  t.equal(existsSync(stage), false, `${stage} is gone`);
});

t.test('a checkout whose path has a space and a ":" runs actions: the hook reaches the child by fd', { skip: needsRoot }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'gons stage:'));
  t.teardown(() => rmSync(root, { recursive: true }));
  const args = [...process.execArgv.filter((a) => !a.includes('processinfo')), fixturePath('spaced-path.ts')];
  const [file, argv, env] = inStage(process.execPath, args, plainEnv(), { nobody: false, root });
  const res = spawnSync(file, argv, { env, encoding: 'utf8' });
  t.equal(res.status, 0, 'the program ran', { stderr: res.stderr });
  const out = JSON.parse(res.stdout);
  t.equal(out.preinitPath, join(root, 'build', 'Release', 'gons_preinit.so'), 'the hook\'s path is one LD_PRELOAD cannot spell');
  t.equal(out.inside.hostname, 'gons-spaced', 'the action ran in the target\'s uts namespace');
  t.equal(out.inside.preload, null, 'the hook took itself out of LD_PRELOAD: nothing the action starts inherits it');
  t.same(out.inside.hookFds, [], 'the child holds no fd to the hook');
  t.same(out.parentHookFds, [], 'neither does the parent, after the spawn');
});

t.test('every test starts nobody through the stage: setpriv is spelled only in the helpers', async (t) => {
  const sources = join(projectRoot, 'test');
  const files = (readdirSync(sources, { recursive: true }) as string[]).filter((f) => /\.(ts|mjs|cjs)$/.test(f));
  t.ok(files.includes(join('fixtures', 'helpers.ts')));
  const exempt = [join('fixtures', 'helpers.ts'), 'layout.test.ts'];
  // setpriv may set a container's credentials (its processes run from the host's /usr, not from the checkout), or
  // drop a capability of root's; what must go through the stage is this checkout's node run as another user.
  const byHand = /setpriv'?,\s*\[[^\]]*--(re|r|e)(uid|gid)[^\]]*(process\.execPath|'node')/;
  t.same(files.filter((f) => !exempt.includes(f) && byHand.test(readFileSync(join(sources, f), 'utf8'))), [],
    'a test that runs the checkout as nobody through setpriv itself would depend on where the checkout lives');
});

t.test('where nobody cannot read, the tests skip and say why', { skip: needsRoot }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gons-private-'));
  t.teardown(() => rmSync(dir, { recursive: true }));
  writeFileSync(join(dir, 'file'), 'x', { mode: 0o644 });
  t.match(whyNobodyCannot([join(dir, 'file')]), new RegExp(`^nobody cannot read ${join(dir, 'file')} even staged: .*umask 022`));
  t.equal(whyNobodyCannot([join(projectRoot, 'package.json')]), false);
  t.equal(needsNobody(), false, 'this machine runs them');
});
