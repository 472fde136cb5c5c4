/** The re-execution entry of the benchmark: registers its actions and calls checkAction(), nothing else. */
import { checkAction, register } from '../reexec/index';

register('noop', () => undefined);
register('echo', (p: unknown) => p);
void checkAction();
