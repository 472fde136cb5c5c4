// Prints the failures of a raw TAP log (tap --reporter=tap): each failing test
// point as its chain of subtest names, then the start of its YAML diagnostics.
// CI shows only the tail of a run; this digest goes there, so a failure deep in
// the middle of a 4,000-line log can be read from the tail.
// Usage: node scripts/tap-failures.mjs LOG [MAX_LINES]
import { readFileSync } from 'node:fs';

const [log, max = '80'] = process.argv.slice(2);
const lines = readFileSync(log, 'utf8').split('\n');
const chain = []; // chain[depth] = the name of the open subtest at that indentation
const reported = []; // reported[depth]: a failure inside the open subtest at that depth is listed already
const out = [];
for (let i = 0; i < lines.length; i++) {
  const line = lines[i];
  const depth = (line.length - line.trimStart().length) / 4;
  const sub = /^\s*# Subtest: (.*)$/.exec(line);
  if (sub) {
    chain.length = depth;
    chain[depth] = sub[1];
    reported.length = depth;
    continue;
  }
  const bad = /^\s*not ok \d+ - (.*)$/.exec(line);
  if (!bad) continue;
  // A failing subtest repeats its children's failures: it is listed only when none was (a timeout, a crash).
  const closes = chain[depth] === bad[1].replace(/ # time=.*$/, '');
  const listed = closes && reported[depth];
  if (closes) reported[depth] = false;
  for (let d = 0; d < depth; d++) reported[d] = true;
  if (listed) continue;
  out.push(`not ok: ${[...chain.slice(0, depth), bad[1]].join(' > ')}`);
  if (lines[i + 1]?.trim() === '---') {
    for (let j = i + 2, n = 0; j < lines.length && lines[j].trim() !== '...' && n < 14; j++, n++) out.push(`    ${lines[j].trim()}`);
  }
}
const limit = Number(max);
process.stdout.write(out.slice(0, limit).join('\n') + (out.length > limit ? `\n... ${out.length - limit} more lines\n` : out.length ? '\n' : ''));
