// `tap build` (tap applies a change of its plugins only from its next start), then
// makes the links it puts under .tap/plugins/node_modules relative: it writes them
// absolute, and the tests that run as nobody see the checkout staged elsewhere, with
// its own path out of reach (test/fixtures/helpers.ts, inStage).
import { execFileSync } from 'node:child_process';
import { lstatSync, readdirSync, readlinkSync, symlinkSync, unlinkSync } from 'node:fs';
import { dirname, isAbsolute, join, relative } from 'node:path';

execFileSync('npx', ['tap', 'build'], { stdio: ['ignore', 'ignore', 'inherit'] });
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isSymbolicLink()) {
      const target = readlinkSync(path);
      if (!isAbsolute(target)) continue;
      unlinkSync(path);
      symlinkSync(relative(dirname(path), target), path);
    } else if (st.isDirectory()) {
      walk(path);
    }
  }
};
walk(join(process.cwd(), '.tap', 'plugins', 'node_modules'));
