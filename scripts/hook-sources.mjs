// The pre-init hook's units, one path (relative to the package root) per line: the sources of binding.gyp's
// gons_preinit target, the one list. The sanitizer driver (test/hook-scenarios.test.ts) and the fuzzer
// (scripts/fuzz.sh) link these with the constructor disabled.
import { readFileSync } from 'node:fs';

const gyp = readFileSync(new URL('../binding.gyp', import.meta.url), 'utf8');
const target = /"target_name": "gons_preinit"[\s\S]*?"sources": \[([^\]]*)\]/.exec(gyp);
const sources = target ? [...target[1].matchAll(/"([^"]+\.c)"/g)].map((m) => m[1]) : [];
if (!sources.includes('native/preinit.c')) {
  console.error(`hook-sources: no gons_preinit sources with native/preinit.c in binding.gyp (found: ${sources.join(', ')})`);
  process.exit(1);
}
console.log(sources.join('\n'));
