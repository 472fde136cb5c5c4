/**
 * Typed actions, typed events and factories, at compile time: snippets that
 * use the package's published typings (dist/reexec/index.d.ts) are compiled
 * with the TypeScript API. The good ones must compile cleanly (the result
 * types checked exactly, not as `any`); each bad one must fail, on its last
 * line. Without the typing (a `register()` that returns nothing, a `run()`
 * that takes any param) the bad ones compile and this test fails.
 */
import { join } from 'node:path';
import t from 'tap';
import ts from 'typescript';
import { projectRoot } from './fixtures/helpers';

const api = JSON.stringify(join(projectRoot, 'dist/reexec/index'));
const prelude = `
import { type NamespacePool, type NamespaceWorker, type PoolWorkerExit, createNamespacePool, openNamespaceWorker, register, runReexecAction } from ${api};
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
declare const worker: NamespaceWorker;
declare const pool: NamespacePool;
const where = { namespaces: [{ type: 'uts' as const, path: '/proc/self/ns/uts' }] };
const peek = register('peek', async (file: string) => ({ file, size: file.length }));
type Peeked = { file: string; size: number };
const count = register('count', () => 42);
const maybe = register('maybe', (n?: number) => String(n));
`;

const good: Record<string, string> = {
  'a handle resolves to the awaited result, in all three calls': `
export async function f() {
  const r1 = await runReexecAction(peek, { param: 'x', timeout: 5 });
  const r2 = await worker.run(peek, 'x', { timeout: 5 });
  const r3 = await pool.run(where, peek, 'x');
  const ok: [Equal<typeof r1, Peeked>, Equal<typeof r2, Peeked>, Equal<typeof r3, Peeked>] = [true, true, true];
  const n = await worker.run(count);
  const okCount: Equal<typeof n, number> = true;
  return [ok, okCount];
}`,
  'param is optional only where the function takes none, or an optional one': `
export async function f() {
  const n = await runReexecAction(count);
  const m = await worker.run(maybe);
  const o = await pool.run(where, count, undefined, { timeout: 5 });
  const ok: [Equal<typeof n, number>, Equal<typeof m, string>, Equal<typeof o, number>] = [true, true, true];
  return ok;
}`,
  'names keep working as before': `
export async function f() {
  const a = await runReexecAction<number>('peek', { param: 1 });
  const b = await worker.run<string[]>('peek', { any: 'thing' });
  const c = await pool.run(where, 'peek', 3);
  const w = await openNamespaceWorker();
  const p = createNamespacePool({ max: 1 });
  const ok: [Equal<typeof a, number>, Equal<typeof b, string[]>, Equal<typeof c, unknown>] = [true, true, true];
  return [ok, w, p];
}`,
  'events are typed': `
worker.on('exit', (code, signal, reason) => { const c: number | null = code; const s: NodeJS.Signals | null = signal; const r: 'target-exited' | undefined = reason; return [c, s, r]; });
pool.on('workerExit', (e) => { const r: PoolWorkerExit['reason'] = e.reason; return r; });
pool.once('workerStart', ({ pid, key }) => [pid, key]);`,
};

const bad: Record<string, string> = {
  'runReexecAction: a param of the wrong type': `runReexecAction(peek, { param: 1 });`,
  'runReexecAction: a missing param': `runReexecAction(peek);`,
  'worker.run: a param of the wrong type': `worker.run(peek, 1);`,
  'worker.run: a missing param': `worker.run(peek);`,
  'pool.run: a param of the wrong type': `pool.run(where, peek, { file: 'x' });`,
  'a param for an action that takes none': `worker.run(count, 'x');`,
  'the result is not any': `export const r: Promise<string> = worker.run(peek, 'x');`,
  'a wrong exit listener': `worker.on('exit', (code: string) => code);`,
  'an event the worker does not emit': `worker.on('message', () => {});`,
  'a wrong pool event payload': `pool.on('workerStart', (e: PoolWorkerExit) => e.reason);`,
  'no worker constructor': `export const w = new NamespaceWorker();`,
  'no pool constructor': `import { NamespacePool as P } from ${api}; export const p = new P();`,
};

t.test('typed actions, events and factories compile as documented, and misuse does not', async (t) => {
  const files = new Map<string, string>();
  const name = (i: number, kind: string) => join(projectRoot, `types-snippet-${kind}-${i}.ts`);
  Object.values(good).forEach((src, i) => files.set(name(i, 'good'), prelude + src));
  Object.values(bad).forEach((src, i) => files.set(name(i, 'bad'), prelude + src));
  const options: ts.CompilerOptions = { strict: true, noEmit: true, skipLibCheck: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, types: ['node'], noUnusedLocals: false };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.fileExists = (f) => files.has(f) || fileExists.call(host, f);
  host.readFile = (f) => files.get(f) ?? readFile.call(host, f);
  host.getSourceFile = (f, lang, ...rest) => files.has(f) ? ts.createSourceFile(f, files.get(f)!, lang) : getSourceFile.call(host, f, lang, ...rest);
  const program = ts.createProgram([...files.keys()], options, host);
  const errors = (file: string) => ts.getPreEmitDiagnostics(program, program.getSourceFile(file)).filter((d) => d.file?.fileName === file);
  const text = (d: ts.Diagnostic) => ts.flattenDiagnosticMessageText(d.messageText, '\n');
  Object.keys(good).forEach((title, i) => t.same(errors(name(i, 'good')).map(text), [], `compiles: ${title}`));
  Object.keys(bad).forEach((title, i) => {
    const file = name(i, 'bad');
    const lastLine = files.get(file)!.split('\n').length - 1;
    const found = errors(file);
    t.ok(found.length > 0, `an error: ${title}`);
    t.same(found.map((d) => d.file!.getLineAndCharacterOfPosition(d.start!).line), found.map(() => lastLine), `on the misuse's line only: ${title}`);
  });
});
