/**
 * The package as a consumer gets it: what the tarball holds, types that
 * resolve under every TypeScript module resolution and type-check under strict
 * consumer settings, and the native loader: which build it picks, and errors
 * that say what to do (real files, real dlopen failures). The pack-and-install
 * proof (no compiler, npm 12, every prebuild) is test/install.test.ts.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { currentTarget, detectLibc, helperPath, listPrebuilds, loadAddon, native, preinitPath, resolveNative, type NativeTarget } from '../lib/native';
import { projectRoot } from './fixtures/helpers';

const npmEnv = { ...process.env, npm_config_loglevel: 'error' };

t.test('the tarball holds what a consumer needs, and nothing else', async (t) => {
  const [pack] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: projectRoot, env: npmEnv, encoding: 'utf8' }));
  const files: string[] = pack.files.map((f: { path: string }) => f.path);
  for (const needed of ['LICENSE', 'README.md', 'binding.gyp', 'native/preinit.c', 'native/preinit.h', 'native/addon.cc',
    'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/reexec/index.d.ts', 'dist/testing/index.d.ts']) {
    t.ok(files.includes(needed), `ships ${needed}`);
  }
  // What the build reads: binding.gyp's sources and every file they #include, transitively (an install builds them).
  const gyp = readFileSync(join(projectRoot, 'binding.gyp'), 'utf8');
  const needed = [...gyp.matchAll(/"(native\/[^"]+\.(?:c|cc))"/g)].map((m) => m[1]);
  for (let i = 0; i < needed.length; i++) {
    for (const [, inc] of readFileSync(join(projectRoot, needed[i]), 'utf8').matchAll(/^#include "([^"]+)"/gm)) {
      const file = join('native', inc);
      if (!needed.includes(file)) needed.push(file);
    }
  }
  t.ok(needed.length >= 4, `the build reads ${needed.join(', ')}`);
  t.same(needed.filter((f) => !files.includes(f)), [], 'the tarball holds every source the install builds');
  t.same(files.filter((f) => /\.ts$/.test(f) && !f.endsWith('.d.ts')), [], 'no TypeScript sources');
  t.same(files.filter((f) => /^(native\/(fuzz|test)\/|test\/|bench\/|examples\/|scripts\/|tsconfig)/.test(f)), [], 'no fuzz corpus, drivers, tests or build config');
  t.same(files.filter((f) => f.endsWith('.map')), [], 'no source maps (README, Install: the JavaScript ships readable, without them)');
});

t.test('package.json: what npm shows and checks, prebuilds in the tarball, no build on install where one matches', async (t) => {
  const pkg = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8'));
  // No repository, bugs or homepage until a real one exists: the former github.com/gons-js/gons was a placeholder nobody
  // confirmed, and a made-up URL on the registry page is worse than none.
  t.same([pkg.repository, pkg.bugs, pkg.homepage], [undefined, undefined, undefined], 'no made-up repository, bugs or homepage URL');
  t.ok(pkg.keywords.includes('namespaces'));
  t.same(pkg.os, ['linux']);
  t.same(pkg.cpu, ['x64', 'arm64'], 'the architectures with prebuilds');
  t.ok(pkg.files.includes('prebuilds/linux-*/gons.abi*.node') && pkg.files.includes('prebuilds/linux-*/gons_preinit.so'), 'prebuilds ship');
  t.ok(pkg.files.includes('prebuilds/linux-*/gons_netns_helper'), 'and the netns helper beside each hook');
  t.equal(pkg.gypfile, false, 'npm adds no `node-gyp rebuild` of its own (it fails with no compiler, and rolls back the install)');
  t.equal(pkg.scripts.install, 'node-gyp-build', 'the install step builds only when no prebuild loads');
  t.ok(pkg.dependencies['node-gyp-build'], 'which is why node-gyp-build is a dependency');
  t.match(pkg.scripts.prepack, /scripts\/prebuilds\.sh/, 'npm pack and npm publish build the prebuilds from source');
  t.match(pkg.scripts.prepare, /tsconfig\.build\.json/, 'and compile the shipped JavaScript without source maps');
});

t.test('types resolve for node10, node16/nodenext and bundler consumers, and check with esModuleInterop and skipLibCheck off and no `types`', async (t) => {
  const app = mkdtempSync(join(tmpdir(), 'gons-consumer-'));
  t.teardown(() => rmSync(app, { recursive: true, force: true }));
  const tarball = execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', app], { cwd: projectRoot, env: npmEnv, encoding: 'utf8' }).trim().split('\n').at(-1)!;
  const pkg = join(app, 'node_modules', 'gons');
  mkdirSync(pkg, { recursive: true });
  execFileSync('tar', ['xzf', join(app, tarball), '-C', pkg, '--strip-components=1']);
  for (const dep of ['debug', '@types', 'ms', 'nan']) symlinkSync(join(projectRoot, 'node_modules', dep), join(app, 'node_modules', dep));
  writeFileSync(join(app, 'consumer.ts'), [
    "import { status, type Namespace } from 'gons';",
    "import { register, runReexecAction, ReexecError, type ReexecOptions } from 'gons/reexec';",
    "import { createNamespaces } from 'gons/testing';",
    "const ns: Namespace[] = [{ type: 'net', path: '/proc/1/ns/net' }];",
    "const o: ReexecOptions = { namespaces: ns, timeout: 1000 };",
    "register('x', () => 1);",
    'export const all = [status, runReexecAction, ReexecError, createNamespaces, o];',
  ].join('\n'));
  const tsc = join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc');
  for (const [module, resolution] of [['commonjs', 'node10'], ['node16', 'node16'], ['nodenext', 'nodenext'], ['esnext', 'bundler']]) {
    // `types: []`: a consumer whose settings load no @types package; the declarations must pull in Node's themselves.
    // esModuleInterop off: `import net from 'node:net'` in a declaration would fail (TS1192); skipLibCheck off (for two
    // resolutions: it checks all of @types/node, ~10 s each): every shipped .d.ts is checked, not only what is used.
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        noEmit: true, strict: true, skipLibCheck: !['node10', 'nodenext'].includes(resolution), esModuleInterop: false, types: [], module, moduleResolution: resolution,
        target: 'es2022', ignoreDeprecations: '5.0', traceResolution: true,
      },
      files: ['consumer.ts'],
    }));
    const args = [tsc, '-p', 'tsconfig.json'];
    let out = '';
    try {
      out = execFileSync(process.execPath, args, { cwd: app, encoding: 'utf8' });
    } catch (err) {
      t.fail(`${resolution}: tsc failed`, { stdout: (err as { stdout?: string }).stdout?.split('\n').filter((l) => /error TS/.test(l)) });
      continue;
    }
    const resolved = [...out.matchAll(/Module name '(gons[^']*)' was successfully resolved to '([^']+)'/g)].map((m) => [m[1], m[2].replace(`${pkg}/`, '')]);
    t.same(Object.fromEntries(resolved), {
      gons: 'dist/lib/index.d.ts', 'gons/reexec': 'dist/reexec/index.d.ts', 'gons/testing': 'dist/testing/index.d.ts',
    }, `${resolution}: every entry point resolves to the shipped declarations`);
  }
});

/** A package root with the given files (empty, or copied from `from`). */
function fakeRoot(t: Test, files: Record<string, string | null>): string {
  const root = mkdtempSync(join(tmpdir(), 'gons-native-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  for (const [file, from] of Object.entries(files)) {
    mkdirSync(join(root, file, '..'), { recursive: true });
    if (from) copyFileSync(from, join(root, file));
    else writeFileSync(join(root, file), '');
  }
  return root;
}

const here = currentTarget();
const x64: NativeTarget = { platform: 'linux', arch: 'x64', libc: 'glibc', abi: '137', node: 'v24.22.3' };
const allPrebuilds = Object.fromEntries(['x64', 'arm64'].flatMap((arch) => [
  ...['115', '127', '137', '147'].map((abi) => [`prebuilds/linux-${arch}/gons.abi${abi}.glibc.node`, null]),
  [`prebuilds/linux-${arch}/gons_preinit.so`, null],
]));

t.test('this process: the target is this platform, arch, libc and ABI; the loaded addon and the hook sit side by side', async (t) => {
  t.same(here, { platform: process.platform, arch: process.arch, libc: 'glibc', abi: process.versions.modules, node: process.version });
  t.equal(join(native.addon, '..'), join(native.preinit, '..'), 'the hook comes from where the addon came from');
  t.equal(helperPath, join(preinitPath, '..', 'gons_netns_helper'), 'the netns helper from beside the hook');
  t.equal(helperPath, native.helper);
  t.equal(native.kind, 'build', 'a checkout runs its source build');
});

t.test('libc is read from the C library mapped into the process', async (t) => {
  t.equal(detectLibc(), 'glibc');
  t.equal(detectLibc('7f00-7f01 r-xp 00000000 08:01 1 /lib/ld-musl-x86_64.so.1\n'), 'musl', 'Alpine\'s node maps musl\'s loader');
  t.equal(detectLibc('7f00-7f01 r-xp 00000000 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n'), 'glibc');
});

t.test('a source build comes first; else the prebuild of this platform, arch, libc and ABI, with its own hook', async (t) => {
  const both = fakeRoot(t, { ...allPrebuilds, 'build/Release/gons.node': null, 'build/Release/gons_preinit.so': null });
  t.same(resolveNative(both, x64), {
    kind: 'build', addon: join(both, 'build/Release/gons.node'), preinit: join(both, 'build/Release/gons_preinit.so'), helper: join(both, 'build/Release/gons_netns_helper'),
  }, 'build/Release wins over a matching prebuild (a developer, or a user who rebuilt)');
  const packed = fakeRoot(t, allPrebuilds);
  t.same(resolveNative(packed, x64), {
    kind: 'prebuild', addon: join(packed, 'prebuilds/linux-x64/gons.abi137.glibc.node'), preinit: join(packed, 'prebuilds/linux-x64/gons_preinit.so'),
    helper: join(packed, 'prebuilds/linux-x64/gons_netns_helper'),
  }, 'the helper is named beside the hook; its absence does not fail the load (the calls it serves take the child path)');
  t.same(resolveNative(packed, { ...x64, arch: 'arm64', abi: '115' }).addon, join(packed, 'prebuilds/linux-arm64/gons.abi115.glibc.node'));
  t.same(listPrebuilds(packed), [
    'linux-arm64 glibc 115 (Node 20)', 'linux-arm64 glibc 127 (Node 22)', 'linux-arm64 glibc 137 (Node 24)', 'linux-arm64 glibc 147 (Node 26)',
    'linux-x64 glibc 115 (Node 20)', 'linux-x64 glibc 127 (Node 22)', 'linux-x64 glibc 137 (Node 24)', 'linux-x64 glibc 147 (Node 26)',
  ]);
});

t.test('no build and no matching prebuild: the error names the target, what exists, and how to build', async (t) => {
  const packed = fakeRoot(t, allPrebuilds);
  const newer = { ...x64, abi: '150', node: 'v28.0.0' };
  t.throws(() => resolveNative(packed, newer), {
    code: 'ERR_GONS_NOT_BUILT', platform: 'linux', arch: 'x64', libc: 'glibc', abi: '150', path: join(packed, 'build/Release/gons.node'),
    message: /^gons: no native build for linux-x64 glibc 150 \(Node v28\.0\.0\): .*build\/Release\/gons\.node is missing, and the prebuilds are for linux-arm64 glibc 115 \(Node 20\), .*linux-x64 glibc 147 \(Node 26\)\. To build from source: `npm rebuild gons` \(needs python3, make and a C\/C\+\+ compiler, e\.g\. `apt-get install python3 make g\+\+`; npm 12 blocks install scripts, .*run `npm install-scripts approve gons` first\)\.$/,
  });
  t.throws(() => resolveNative(packed, { ...x64, libc: 'musl' }), { code: 'ERR_GONS_NOT_BUILT', message: /for linux-x64 musl 137 \(Node 24\).* musl libc \(Alpine\) is not prebuilt/ });
  t.throws(() => resolveNative(packed, { ...x64, platform: 'linux', arch: 'riscv64' }), { code: 'ERR_GONS_NOT_BUILT', message: /for linux-riscv64 glibc/ });
  t.throws(() => resolveNative(fakeRoot(t, {}), x64), { code: 'ERR_GONS_NOT_BUILT', prebuilds: [], message: /, and there are no prebuilds\./ });
});

t.test('an addon without its hook is an incomplete build, not a run without the hook', async (t) => {
  const root = fakeRoot(t, { 'build/Release/gons.node': null, 'prebuilds/linux-x64/gons.abi137.glibc.node': null });
  t.throws(() => resolveNative(root, x64), { code: 'ERR_GONS_NOT_BUILT', path: join(root, 'build/Release/gons_preinit.so'), message: /gons_preinit\.so is missing next to .*the native build is incomplete/ });
  rmSync(join(root, 'build'), { recursive: true });
  t.throws(() => resolveNative(root, x64), { code: 'ERR_GONS_NOT_BUILT', path: join(root, 'prebuilds/linux-x64/gons_preinit.so') });
});

/** A real module that registers as built for NODE_MODULE_VERSION 1: Node refuses it as it refuses another line's build. */
function otherAbiModule(dest: string): string {
  const src = join(dest, '..', 'fake.c');
  writeFileSync(src, [
    'struct node_module { int nm_version; unsigned nm_flags; void *nm_dso_handle; const char *nm_filename; void *nm_register_func;',
    '  void *nm_context_register_func; const char *nm_modname; void *nm_priv; void *nm_link; };',
    'extern void node_module_register(void *);',
    'static struct node_module mod = { 1, 0, 0, "fake.c", 0, 0, "fake", 0, 0 };',
    '__attribute__((constructor)) static void reg(void) { node_module_register(&mod); }',
  ].join('\n'));
  execFileSync('cc', ['-shared', '-fPIC', '-o', dest, src]);
  rmSync(src);
  return dest;
}
const noCompiler = spawnSync('cc', ['--version']).status === 0 ? false : 'no C compiler (cc) to make a module of another ABI';

t.test('a build for another Node ABI: gons says rebuild, or which lines have prebuilds — not Node\'s raw error', { skip: noCompiler }, async (t) => {
  const root = fakeRoot(t, { ...allPrebuilds, 'build/Release/gons_preinit.so': null });
  const built = otherAbiModule(join(root, 'build/Release/gons.node'));
  const target = { ...here, abi: process.versions.modules };
  const abiName = (abi: string) => ({ 115: ' (Node 20)', 127: ' (Node 22)', 137: ' (Node 24)', 147: ' (Node 26)' } as Record<string, string>)[abi] ?? '';
  t.throws(() => loadAddon(resolveNative(root, target), root, target), {
    code: 'ERR_GONS_ABI_MISMATCH', path: built, builtFor: '1', abi: process.versions.modules, cause: { code: 'ERR_DLOPEN_FAILED' },
    message: new RegExp(`^gons: ${built} was built for NODE_MODULE_VERSION 1, but this is Node ${process.version} \\(NODE_MODULE_VERSION ${process.versions.modules}${abiName(process.versions.modules).replace(/[()]/g, '\\$&')}\\)\\. Rebuild it for this Node \\(\`npm rebuild gons\`; .*\\), or remove ${root}/build to use the prebuild for this line\\.$`),
  });
  const alone = fakeRoot(t, { 'build/Release/gons_preinit.so': null });
  otherAbiModule(join(alone, 'build/Release/gons.node'));
  t.throws(() => loadAddon(resolveNative(alone, target), alone, target), {
    code: 'ERR_GONS_ABI_MISMATCH', message: /Rebuild it for this Node \(`npm rebuild gons`; in a checkout `npx node-gyp rebuild` with this Node's headers\)\.$/,
  }, 'with no prebuild for this line, rebuilding is the one way');
  // A prebuild of another ABI, loaded explicitly: the error lists the lines that have prebuilds.
  const prebuilt = otherAbiModule(join(root, 'gons.abi1.glibc.node'));
  t.throws(() => loadAddon({ kind: 'prebuild', addon: prebuilt, preinit: '', helper: '' }, root, { ...target, arch: 'x64' }), {
    code: 'ERR_GONS_ABI_MISMATCH', message: /Use a Node line gons has prebuilds for \(linux-x64 glibc 115 \(Node 20\), linux-x64 glibc 127 \(Node 22\), linux-x64 glibc 137 \(Node 24\), linux-x64 glibc 147 \(Node 26\)\), or build from source: `npm rebuild gons`/,
  });
  t.throws(() => loadAddon({ kind: 'prebuild', addon: prebuilt, preinit: '', helper: '' }, root, { ...target, arch: 'riscv64' }), {
    code: 'ERR_GONS_ABI_MISMATCH', message: /\(none for this platform\)/,
  });
});

t.test('a prebuild this system\'s glibc is too old for: gons says so, and how to build from source', async (t) => {
  // This build with its GLIBC_2.34 requirement renamed to one no glibc has: the dynamic loader refuses it as an older
  // glibc refuses the real one (the version's hash no longer matches, and the message names the version).
  const bytes = readFileSync(native.addon);
  const at = bytes.indexOf('GLIBC_2.3');
  t.ok(at > 0, 'the addon needs a GLIBC_2.3x symbol version');
  bytes.write('GLIBC_9.9', at, 'latin1');
  const root = fakeRoot(t, {});
  const file = join(root, 'gons.node');
  writeFileSync(file, bytes);
  t.throws(() => loadAddon({ kind: 'prebuild', addon: file, preinit: '', helper: '' }, root), {
    code: 'ERR_GONS_NATIVE_LOAD_FAILED', path: file, cause: { code: 'ERR_DLOPEN_FAILED' },
    message: /^gons: cannot load .*gons\.node: it needs glibc 9\.9\S* or newer, which this system's C library is not \(the prebuilds need glibc 2\.34: .*\)\. To build from source: `npm rebuild gons`/,
  });
  writeFileSync(file.replace('gons.node', 'text.node'), 'not an ELF file\n');
  t.throws(() => loadAddon({ kind: 'prebuild', addon: file.replace('gons.node', 'text.node'), preinit: '', helper: '' }, root), {
    code: 'ERR_GONS_NATIVE_LOAD_FAILED', message: /^gons: cannot load .*text\.node: .*(invalid ELF header|file too short)\. To build from source/,
  });
  t.throws(() => loadAddon({ kind: 'build', addon: join(root, 'missing.node'), preinit: '', helper: '' }, root), { code: 'MODULE_NOT_FOUND' }, 'other failures pass as they are');
});
