/** What a run left behind in this process: open fds, child processes, zombies. Shared by stress.ts and the tests. */
import { readFileSync, readdirSync } from 'node:fs';

/** Open fds of this process. */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Pids of this process's children (of any of its threads), with their state letter. */
export function children(): Array<{ pid: number; state: string }> {
  const pids = readdirSync('/proc/self/task').flatMap((tid) => {
    try {
      return readFileSync(`/proc/self/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  });
  return pids.map((pid) => {
    try {
      // "pid (comm) S ...": the state follows the last ')'.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return { pid, state: stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) };
    } catch {
      return { pid, state: 'gone' };
    }
  }).filter((c) => c.state !== 'gone');
}

/** Waits until this process has no children (or `ms` passed) and returns those left. */
export async function settledChildren(ms = 2000): Promise<Array<{ pid: number; state: string }>> {
  const until = Date.now() + ms;
  let left = children();
  while (left.length > 0 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 20));
    left = children();
  }
  return left;
}
