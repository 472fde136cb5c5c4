/**
 * `npm install gons` as users get it, end to end (issue 23): pack the tarball from a copy of the sources (`npm pack`,
 * so `prepack` builds every prebuild from source), install it into a fresh app with no compiler, make or python in
 * PATH, and run the README's example in a uts namespace; the same with npm 12, whose default blocks install scripts;
 * every x64 prebuild under its own Node line; every arm64 prebuild under qemu-user with its line's arm64 node, the
 * arm64 hook joining uts and net; the netns helper ships executable for both architectures and, installed, serves a
 * nobody's socketIn/listenIn into a user+net namespace that nobody made (the child path without it); the arm64 helper
 * runs under qemu-user; a prebuild of another ABI through the loader gives gons's error.
 *
 * Slow (a minute or two; the Node lines and npm 12 come from the registry once and are cached under /var/cache), so
 * it runs once, on the machine's Node line: scripts/test-matrix.sh tells the other lines to skip it.
 */
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createNamespaces } from '../testing/index';
import { needsRoot, projectRoot } from './fixtures/helpers';

t.setTimeout(1_200_000);

const major = process.versions.node.split('.')[0];
const sysLine = process.env.GONS_MATRIX_SYS_LINE;
const skipHere = sysLine && sysLine !== major ? `the pack-and-install test runs once, on the machine's Node line (${sysLine})` : false;

/** The environment of every command here: without tap's instrumentation (nothing of ours to cover in npm or node-gyp). */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, npm_config_loglevel: 'warn', npm_config_fund: 'false', npm_config_audit: 'false', ...extra };
  delete env.NODE_OPTIONS;
  for (const key of Object.keys(env)) if (key.startsWith('npm_lifecycle') || key === 'npm_config_nodedir' || key.startsWith('TAP')) delete env[key];
  return env;
}

/**
 * Runs a command through `env -u NODE_OPTIONS`: tap's processinfo puts its `--import` into the NODE_OPTIONS of
 * everything a test spawns, and npm, node-gyp and the apps have nothing of ours to cover (and run slower with it).
 */
function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  return spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', '-u', 'NODE_V8_COVERAGE', cmd, ...args],
    { cwd: opts.cwd, env: opts.env ?? cleanEnv(), encoding: 'utf8', maxBuffer: 64 << 20 });
}

/** A Node line's directory (bin/node, include/node), from the registry's node-linux-<arch>@<major>, cached. */
function nodeLine(line: string, arch = 'x64'): string {
  return execFileSync('bash', ['-c', 'source scripts/node-lines.sh && fetch_line "$1" "$2"', 'fetch', line, arch],
    { cwd: projectRoot, env: cleanEnv(), encoding: 'utf8' }).trim().split('\n').at(-1)!;
}

/** A directory with links to just `node`, `npm` and `sh` (npm runs scripts with it): a PATH with no compiler, make or python. */
function bareBin(dir: string, node: string, npmCli: string): string {
  mkdirSync(dir);
  symlinkSync(node, join(dir, 'node'));
  symlinkSync(npmCli, join(dir, 'npm'));
  symlinkSync('/bin/sh', join(dir, 'sh'));
  return dir;
}

const lines = ['20', '22', '24', '26'];
const abiOf: Record<string, string> = { 20: '115', 22: '127', 24: '137', 26: '147' };

// The README's ESM example (Examples, "Run an action in a container's namespaces"), in a uts namespace: the target's
// pid comes from the command line, the timeout is generous for a loaded machine. It prints what it got and which
// native build served it.
const example = `import { register, checkAction, runReexecAction } from 'gons/reexec';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

// Register at the top level: the re-executed copy of this program registers them too.
register('peek', (file) => ({ hostname: hostname(), content: readFileSync(file, 'utf8') }));

await checkAction(); // in the re-executed child: runs the action and exits; in the parent: enables re-execution

const pid = Number(process.argv[2]); // a process in the target
const result = await runReexecAction('peek', {
  namespaces: [{ type: '!uts', path: \`/proc/\${pid}/ns/uts\` }],
  param: '/etc/hostname',
  timeout: 60000,
});
const { native } = await import(new URL('./node_modules/gons/dist/lib/native.js', import.meta.url));
const { preinitPath } = await import('gons');
console.log(JSON.stringify({ result, native, preinitPath, node: process.version }));
`;

t.test('npm install gons, from the packed tarball, with no compiler and with npm 12', { skip: skipHere }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'gons-install-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));

  // The sources as a clone has them, packed with `npm pack` (prepack: scripts/prebuilds.sh; prepare: tsc) in a copy,
  // so the checkout's build/ and dist/ stay as the other tests use them.
  const src = join(work, 'src');
  mkdirSync(join(src, 'native'), { recursive: true });
  for (const f of ['package.json', 'package-lock.json', 'README.md', 'LICENSE', 'binding.gyp', 'tsconfig.json', 'tsconfig.build.json']) {
    cpSync(join(projectRoot, f), join(src, f));
  }
  for (const d of ['lib', 'reexec', 'testing', 'scripts']) cpSync(join(projectRoot, d), join(src, d), { recursive: true });
  for (const f of readdirSync(join(projectRoot, 'native')).filter((f) => /\.(c|cc|h)$/.test(f))) cpSync(join(projectRoot, 'native', f), join(src, 'native', f));
  symlinkSync(join(projectRoot, 'node_modules'), join(src, 'node_modules'));
  const cross = run('sh', ['-c', 'command -v aarch64-linux-gnu-g++']).status === 0;
  const packEnv = cleanEnv(cross ? {} : { GONS_PREBUILD_ARCHS: 'x64' });
  const packed = run('npm', ['pack', '--json', '--pack-destination', work], { cwd: src, env: packEnv });
  t.equal(packed.status, 0, 'npm pack (prepack builds the prebuilds)', { stderr: packed.stderr.slice(-4000) });
  if (packed.status !== 0) return;
  const [pack] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('[\n')));
  const tarball = join(work, pack.filename);
  const files: Record<string, number> = Object.fromEntries(pack.files.map((f: { path: string; size: number }) => [f.path, f.size]));
  const modes: Record<string, number> = Object.fromEntries(pack.files.map((f: { path: string; mode: number }) => [f.path, f.mode & 0o7777]));
  t.comment(`tarball ${pack.filename}: ${pack.size} bytes packed, ${pack.unpackedSize} unpacked, ${pack.entryCount} files`);
  t.comment(Object.entries(files).filter(([f]) => f.startsWith('prebuilds/')).map(([f, size]) => `${f}: ${size} bytes`).join('\n'));
  const archs = cross ? ['x64', 'arm64'] : ['x64'];
  if (!cross) t.comment('no aarch64-linux-gnu-g++: arm64 prebuilds not built here (apt-get install g++-aarch64-linux-gnu)');
  for (const arch of archs) {
    for (const line of lines) t.ok(files[`prebuilds/linux-${arch}/gons.abi${abiOf[line]}.glibc.node`] > 0, `the tarball holds the ${arch} addon for Node ${line}`);
    t.ok(files[`prebuilds/linux-${arch}/gons_preinit.so`] > 0, `and the ${arch} hook`);
    t.ok(files[`prebuilds/linux-${arch}/gons_netns_helper`] > 0, `and the ${arch} netns helper`);
    t.equal(modes[`prebuilds/linux-${arch}/gons_netns_helper`], 0o755, `the ${arch} helper is packed executable (0755)`);
  }
  t.same(Object.keys(files).filter((f) => f.endsWith('.map')), [], 'no source maps');

  const node20 = process.execPath;
  const npmCli = realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim());
  const bin = bareBin(join(work, 'bin'), node20, npmCli);
  const noTools = run('sh', ['-c', 'for t in cc gcc g++ c++ clang make python3 python; do command -v $t; done; true'], { env: { PATH: bin } });
  t.equal(noTools.stdout, '', 'PATH holds no compiler, make or python');

  /** A fresh app with the tarball installed, under PATH `binDir`. */
  const install = (name: string, binDir: string) => {
    const app = join(work, name);
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, type: 'module' }));
    writeFileSync(join(app, 'main.js'), example);
    const res = run('npm', ['install', '--prefer-offline', tarball], { cwd: app, env: cleanEnv({ PATH: binDir }) });
    return { app, res };
  };

  const plain = install('app', bin);
  t.equal(plain.res.status, 0, 'npm install <tarball> works with no compiler', { stderr: plain.res.stderr });
  t.notMatch(plain.res.stdout + plain.res.stderr, /gyp info|not found: make|find any Python/, 'nothing was built');
  const pkg = join(plain.app, 'node_modules', 'gons');
  t.notOk(existsSync(join(pkg, 'build')), 'the install left no build/: the prebuild serves');
  t.comment(`npm ${run('npm', ['--version'], { env: { PATH: bin } }).stdout.trim()} install, no compiler:\n${plain.res.stdout.trim()}`);

  /** Runs the example app with `node` (a line's binary) against a holder of a uts namespace. */
  const runExample = async (app: string, node: string, binDir: string) => {
    const ns = await createNamespaces(t, ['uts'], { hostname: 'gons-installed' });
    const res = run(node, ['main.js', String(ns.pid)], { cwd: app, env: cleanEnv({ PATH: binDir }) });
    await ns.close();
    return res;
  };

  t.test('each x64 prebuild runs the README example under its own Node line', { skip: needsRoot }, async (t) => {
    for (const line of lines) {
      const dir = line === major ? join(node20, '..', '..') : nodeLine(line);
      const node = line === major ? node20 : join(dir, 'bin', 'node');
      const res = await runExample(plain.app, node, bin);
      t.equal(res.status, 0, `Node ${line}: the example ran`, { stderr: res.stderr });
      if (res.status !== 0) continue;
      const out = JSON.parse(res.stdout);
      t.equal(out.result.hostname, 'gons-installed', `Node ${line} (${out.node}): the action ran in the uts namespace`);
      t.equal(out.result.content, readFileSync('/etc/hostname', 'utf8'));
      t.same(out.native, {
        kind: 'prebuild',
        addon: join(realpathSync(pkg), 'prebuilds', 'linux-x64', `gons.abi${abiOf[line]}.glibc.node`),
        preinit: join(realpathSync(pkg), 'prebuilds', 'linux-x64', 'gons_preinit.so'),
        helper: join(realpathSync(pkg), 'prebuilds', 'linux-x64', 'gons_netns_helper'),
      }, `Node ${line}: the addon is the prebuild for ABI ${abiOf[line]}, the hook and the helper come from beside it`);
      t.equal(out.preinitPath, out.native.preinit, 'preinitPath is that hook');
    }
  });

  t.test('as nobody, the installed netns helper serves socketIn and listenIn into a user+net namespace nobody made', { skip: needsRoot }, async (t) => {
    const helper = join(realpathSync(pkg), 'prebuilds', 'linux-x64', 'gons_netns_helper');
    t.equal(statSync(helper).mode & 0o777, 0o755, 'installed executable (0755)');
    // nobody must reach the app: the work directory is mkdtemp's 0700.
    chmodSync(work, 0o755);
    writeFileSync(join(plain.app, 'helper.js'), `import { checkAction, listenIn, socketConstants, socketIn } from 'gons/reexec';
import { spawn } from 'node:child_process';
await checkAction();
// A user+net namespace of nobody's own, as a rootless container has: held by cat, which waits on its stdin.
const holder = spawn('/usr/bin/unshare', ['-U', '-r', '-n', '/bin/sh', '-c', 'echo ready; exec /bin/cat'], { stdio: ['pipe', 'pipe', 'inherit'] });
await new Promise((resolve, reject) => { holder.stdout.once('data', resolve); holder.once('exit', (c) => reject(new Error('holder exited ' + c))); });
const where = { target: { pid: holder.pid } };
const s = await socketIn(where, { domain: socketConstants.AF_INET, type: socketConstants.SOCK_STREAM });
s.close();
const server = await listenIn(where, { host: '0.0.0.0', port: 0 });
const port = server.address().port;
server.close();
holder.stdin.end();
console.log(JSON.stringify({ uid: process.getuid(), port }));
`);
    const asNobody = () => run('/usr/bin/setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', '/usr/bin/env', '-u', 'NODE_OPTIONS', node20, 'helper.js'],
      { cwd: plain.app, env: cleanEnv({ PATH: bin, DEBUG: 'gons:handles' }) });
    const served = asNobody();
    t.equal(served.status, 0, 'the app ran as nobody', { stderr: served.stderr });
    t.match(JSON.parse(served.stdout || '{}'), { uid: 65534, port: Number }, 'both calls made their socket');
    t.comment(served.stderr.trim());
    const viaHelper = /native path, a helper process joined the user namespace first \(setns\(pidfd of \d+, CLONE_NEWNET\): EPERM from a thread\)/;
    t.match(served.stderr, new RegExp(`socketIn: ${viaHelper.source}`), 'socketIn: the helper served');
    t.match(served.stderr, new RegExp(`listenIn: ${viaHelper.source}`), 'listenIn: the helper served');
    t.notMatch(served.stderr, /child path/, 'not the child path');

    // The same package without its helper (what the tarball shipped before): the load works, the calls go to the child path, and the log says why.
    const kept = join(work, 'gons_netns_helper.kept');
    copyFileSync(helper, kept);
    rmSync(helper);
    try {
      const fallback = asNobody();
      t.equal(fallback.status, 0, 'without the helper: the app still runs', { stderr: fallback.stderr });
      t.match(JSON.parse(fallback.stdout || '{}'), { uid: 65534, port: Number });
      const escaped = helper.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      t.match(fallback.stderr, new RegExp(`socketIn: child path: setns\\(pidfd of \\d+, CLONE_NEWNET\\): EPERM from a thread, and the netns helper ${escaped} is missing`), 'the child path serves, and says why');
      t.notMatch(fallback.stderr, /a helper process joined/);
    } finally {
      copyFileSync(kept, helper);
      chmodSync(helper, 0o755);
    }
  });

  t.test('a prebuild of another Node ABI, loaded through the loader, gives gons\'s error', async (t) => {
    const other = lines.find((l) => abiOf[l] !== process.versions.modules)!;
    const file = join(pkg, 'prebuilds', 'linux-x64', `gons.abi${abiOf[other]}.glibc.node`);
    const res = run(node20, ['-e', `const n = require(${JSON.stringify(join(pkg, 'dist/lib/native.js'))});
      try { n.loadAddon({ kind: 'prebuild', addon: ${JSON.stringify(file)}, preinit: '' }); } catch (e) { console.log(JSON.stringify({ code: e.code, builtFor: e.builtFor, message: e.message, cause: e.cause && e.cause.code })); }`]);
    t.equal(res.status, 0, { stderr: res.stderr });
    const err = JSON.parse(res.stdout || '{}');
    t.match(err, {
      code: 'ERR_GONS_ABI_MISMATCH', builtFor: abiOf[other], cause: 'ERR_DLOPEN_FAILED',
      message: new RegExp(`was built for NODE_MODULE_VERSION ${abiOf[other]} \\(Node ${other}\\), but this is Node ${process.version.replace(/\./g, '\\.')} .*Use a Node line gons has prebuilds for \\(linux-x64 glibc 115 \\(Node 20\\), `),
    });
  });

  t.test('npm 12: install scripts blocked, the prebuild serves', async (t) => {
    // npm 12 needs Node >= 22.22 / 24.15: it runs on the registry's Node 24 line, and is itself cached.
    const line24 = nodeLine('24');
    const npmCache = process.getuid?.() === 0 ? '/var/cache/gons-npm' : join(process.env.XDG_CACHE_HOME ?? join(process.env.HOME ?? tmpdir(), '.cache'), 'gons-npm');
    const prefix = join(npmCache, '12');
    let cli = join(prefix, 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
    if (!existsSync(cli)) {
      mkdirSync(npmCache, { recursive: true, mode: 0o755 });
      const staging = mkdtempSync(join(npmCache, '.12-'));
      const got = run(join(line24, 'bin', 'node'), [npmCli, 'install', '-g', 'npm@12', '--prefix', staging]);
      t.equal(got.status, 0, 'npm@12 installs from the registry', { stderr: got.stderr });
      if (got.status !== 0) return;
      if (!existsSync(cli)) execFileSync('mv', ['-T', staging, prefix]);
      else rmSync(staging, { recursive: true, force: true });
    }
    cli = realpathSync(cli);
    const bin12 = bareBin(join(work, 'bin12'), join(line24, 'bin', 'node'), cli);
    const version = run('npm', ['--version'], { env: { PATH: bin12 } }).stdout.trim();
    t.match(version, /^12\./, `npm ${version}`);
    const npm12 = install('app12', bin12);
    t.equal(npm12.res.status, 0, 'npm 12 installs the tarball', { stderr: npm12.res.stderr });
    t.comment(`npm ${version} install (Node ${run(join(line24, 'bin', 'node'), ['--version']).stdout.trim()}):\n${(npm12.res.stdout + npm12.res.stderr).trim()}`);
    t.notOk(existsSync(join(npm12.app, 'node_modules', 'gons', 'build')), 'nothing was built');
    if (needsRoot) return;
    const res = await runExample(npm12.app, join(line24, 'bin', 'node'), bin12);
    t.equal(res.status, 0, 'the README example runs', { stderr: res.stderr });
    const out = JSON.parse(res.stdout || '{}');
    t.equal(out.result?.hostname, 'gons-installed', 'in the uts namespace');
    t.match(out.native, { kind: 'prebuild', addon: /prebuilds\/linux-x64\/gons\.abi137\.glibc\.node$/ });
  });

  const qemu = run('sh', ['-c', 'command -v qemu-aarch64']).stdout.trim();
  const noArm = !cross ? 'no arm64 prebuilds (no aarch64-linux-gnu-g++)' : !qemu ? 'no qemu-aarch64 (apt-get install qemu-user)' : needsRoot;
  t.test('arm64, under qemu-user: every addon loads under its line, the hook joins uts and net', { skip: noArm }, async (t) => {
    // A process under qemu-user always has a second thread, so a mount (or user, time) join cannot work there.
    const ns = await createNamespaces(t, ['uts', 'net'], { hostname: 'gons-arm64' });
    const probe = join(work, 'arm64-probe.cjs');
    writeFileSync(probe, `const n = require(${JSON.stringify(join(pkg, 'dist/lib/native.js'))});
const fs = require('node:fs');
console.log(JSON.stringify({ arch: process.arch, abi: process.versions.modules, native: n.native, state: n.addon.hookState(),
  hostname: require('node:os').hostname(), uts: fs.statSync('/proc/self/ns/uts').ino, net: fs.statSync('/proc/self/ns/net').ino }));`);
    for (const line of lines) {
      const node = join(nodeLine(line, 'arm64'), 'bin', 'node');
      const res = run(qemu, ['-L', '/usr/aarch64-linux-gnu', '-E', `LD_PRELOAD=${join(pkg, 'prebuilds/linux-arm64/gons_preinit.so')}`,
        '-E', `gons_uts=${ns.paths.uts}`, '-E', `gons_net=${ns.paths.net}`, node, probe]);
      t.equal(res.status, 0, `arm64 Node ${line} ran`, { stderr: res.stderr });
      if (res.status !== 0) continue;
      const out = JSON.parse(res.stdout);
      t.match(out, { arch: 'arm64', abi: abiOf[line], native: { kind: 'prebuild', addon: new RegExp(`prebuilds/linux-arm64/gons\\.abi${abiOf[line]}\\.glibc\\.node$`) } },
        `arm64 Node ${line}: the arm64 prebuild for ABI ${abiOf[line]} loaded`);
      t.match(out.state, { errno: 0 }, 'the hook recorded no failure');
      t.equal(out.state.joined, 0x04000000 | 0x40000000, 'it joined uts and net (CLONE_NEWUTS | CLONE_NEWNET)');
      t.equal(out.hostname, 'gons-arm64');
      t.equal(out.uts, statSync(ns.paths.uts).ino, 'in the target uts namespace');
      t.equal(out.net, statSync(ns.paths.net).ino, 'and the target net namespace');
    }
  });

  t.test('arm64, under qemu-user: the netns helper runs, and refuses no arguments in its defined way', { skip: !cross ? 'no arm64 prebuilds (no aarch64-linux-gnu-g++)' : !qemu ? 'no qemu-aarch64 (apt-get install qemu-user)' : false }, async (t) => {
    const helper = join(pkg, 'prebuilds', 'linux-arm64', 'gons_netns_helper');
    t.equal(statSync(helper).mode & 0o777, 0o755, 'installed executable (0755)');
    t.match(run('file', ['-b', helper]).stdout, /ELF 64-bit .*ARM aarch64/, 'an arm64 executable');
    // fd 5 is where it replies "<errno> <syscall>" (native/netns-helper.c): a socket pair from Node, read back here.
    const res = spawnSync(qemu, ['-L', '/usr/aarch64-linux-gnu', helper], { stdio: ['ignore', 'pipe', 'pipe', 'ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    t.notMatch(res.stderr, /format error|Invalid ELF|cannot/i, 'no exec format error', { stderr: res.stderr });
    t.equal(res.status, 1, 'exits 1');
    t.equal(res.output[5], '22 argv', 'and replies EINVAL at argv on fd 5');
  });
});
