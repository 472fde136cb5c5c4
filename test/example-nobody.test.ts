/** The README's testing example passes as nobody too (with `user: true`), run as tap would run it. */
import { join } from 'node:path';
import t from 'tap';
import { asNobody, needsNobody, projectRoot } from './fixtures/helpers';

t.test('the testing example passes as nobody', { skip: needsNobody() }, async (t) => {
  for (const file of ['example.test.mjs', 'example-cjs.test.cjs']) {
    const res = asNobody(process.execPath, [join(projectRoot, 'test', file)], { PATH: process.env.PATH, HOME: '/tmp' });
    t.equal(res.status, 0, `${file} exits 0`, { stderr: res.stderr });
    t.match(res.stdout, /^ok 1 - runs in a new uts namespace/m, file);
    t.notMatch(res.stdout, /not ok/, file);
  }
});
