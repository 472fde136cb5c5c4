/**
 * Options objects fail closed: a misspelt key (`nameSpaces`) must never be
 * ignored, since ignoring it would run code in the wrong namespaces.
 */
import { gonsError } from './errors';

/** Edit distance, for "did you mean" hints; names are short, so the plain table is fine. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}

/** The allowed key a misspelt one most likely meant: same letters in another case, or at most two edits away. */
export function closestKey(key: string, allowed: readonly string[]): string | undefined {
  const folded = allowed.find((k) => k.toLowerCase() === key.toLowerCase());
  if (folded !== undefined) return folded;
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of allowed) {
    const d = distance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best;
}

/**
 * Throws `ERR_INVALID_ARG_TYPE` unless `value` is undefined or a plain
 * object, and `ERR_INVALID_ARG_VALUE` for an own key not in `allowed`,
 * naming the key and the likely intended one.
 */
export function checkKeys(where: string, what: string, value: unknown, allowed: readonly string[]): void {
  if (value === undefined) return;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw gonsError('ERR_INVALID_ARG_TYPE', `${where}: ${what} must be an object`);
  }
  for (const key of Object.keys(value)) {
    if (allowed.includes(key)) continue;
    const hint = closestKey(key, allowed);
    throw gonsError('ERR_INVALID_ARG_VALUE', `${where}: unknown ${what} key ${JSON.stringify(key)}${hint ? ` (did you mean ${JSON.stringify(hint)}?)` : ''}`);
  }
}
