/** A re-execution entry with a large module set: TypeScript's compiler (some 9 MB of JavaScript), then its action. */
import 'typescript';
import { checkAction, register } from '../reexec/index';

register('noop', () => undefined);
void checkAction();
