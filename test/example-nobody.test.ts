/** The README's testing example passes as nobody too (with `user: true`), run as tap would run it. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { needsRoot } from './fixtures/helpers';

t.test('the testing example passes as nobody', { skip: needsRoot }, async (t) => {
  for (const file of ['example.test.mjs', 'example-cjs.test.cjs']) {
    const env = { PATH: process.env.PATH, HOME: '/tmp' };
    const res = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', process.execPath, join(__dirname, file)], {
      env, encoding: 'utf8',
    });
    t.equal(res.status, 0, `${file} exits 0`, { stderr: res.stderr });
    t.match(res.stdout, /^ok 1 - runs in a new uts namespace/m, file);
    t.notMatch(res.stdout, /not ok/, file);
  }
});
