/** The re-execution entry of `npm run bench:visit`: registers its actions and calls checkAction(), nothing else. */
import { readFileSync } from 'node:fs';
import { checkAction, register } from '../reexec/index';

/** Interface names of the current network namespace: /proc/self/net/dev follows the reader's net namespace. */
export function interfaces(): string[] {
  return readFileSync('/proc/self/net/dev', 'utf8').split('\n').slice(2).map((l) => l.split(':')[0].trim()).filter(Boolean);
}

register('interfaces', interfaces);
void checkAction();
