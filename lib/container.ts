/**
 * Containers by name: `target: { container, engine }` is resolved to the
 * container's init process through the engine's HTTP API on its unix socket
 * (Docker's Engine API, podman's compatible one), with Node's own `http`.
 *
 * Race-free: the pid the engine names is pinned with a pidfd, then the
 * engine is asked again; only when it still says "running, with this pid"
 * while the pidfd still refers to a live process is the pid used. A pid
 * reused in between (the container stopped, another process got its pid)
 * never passes both checks.
 */
import { request } from 'node:http';
import { readFileSync } from 'node:fs';
import { ContainerError, type ContainerErrorCode, gonsError } from './errors';
import { addon } from './native';
import type { NamespaceType } from './namespaces';
import { checkKeys } from './options';
import { type Target, checkTarget } from './target';

export { ContainerError };

/** A running container of a container engine, by name or id. */
export interface ContainerTarget {
  /** The container's name or id (as `docker ps` shows it). */
  container: string;
  /** `'docker'` (the default: /var/run/docker.sock), `'podman'`, or the absolute path of an engine's API socket. */
  engine?: 'docker' | 'podman' | string;
  /** Which of its namespaces; as `Target.types`. */
  types?: NamespaceType[] | 'all';
}

/** Whether a target names a container rather than a pid. */
export function isContainerTarget(target: unknown): target is ContainerTarget {
  return typeof target === 'object' && target !== null && 'container' in target;
}

/** Docker's rule for names ([a-zA-Z0-9][a-zA-Z0-9_.-]*); ids are hex and fit it too. */
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,252}$/;
/** How long the engine may take to answer one request. */
const ENGINE_TIMEOUT_MS = 30_000;
/** An inspect answer is a few KiB; anything this large is no answer. */
const MAX_ANSWER_BYTES = 8 << 20;

/** The socket of an engine: Docker's, podman's (rootful or this user's rootless one), or an explicit path. */
export function engineSocket(engine: ContainerTarget['engine'] = 'docker'): string {
  if (engine === 'docker') return '/var/run/docker.sock';
  if (engine === 'podman') {
    if (process.geteuid?.() === 0) return '/run/podman/podman.sock';
    return `${process.env.XDG_RUNTIME_DIR || `/run/user/${process.geteuid?.()}`}/podman/podman.sock`;
  }
  return engine;
}

/** Checks a container target's shape (`where` starts the messages). */
export function checkContainerTarget(where: string, target: ContainerTarget): void {
  checkKeys(where, 'target option', target, ['container', 'engine', 'types']);
  const invalid = (message: string, code: 'ERR_INVALID_ARG_VALUE' | 'ERR_INVALID_ARG_TYPE' = 'ERR_INVALID_ARG_VALUE') => gonsError(code, `${where}: ${message}`);
  const { container, engine } = target;
  if (typeof container !== 'string') throw invalid(`target.container must be a container's name or id, not ${typeof container}`, 'ERR_INVALID_ARG_TYPE');
  if (!NAME.test(container)) throw invalid(`target.container ${JSON.stringify(container)} is no container name or id ([a-zA-Z0-9][a-zA-Z0-9_.-]*)`);
  if (engine !== undefined && engine !== 'docker' && engine !== 'podman' && !(typeof engine === 'string' && engine.startsWith('/') && !engine.includes('\0'))) {
    throw invalid(`target.engine must be 'docker', 'podman' or the absolute path of an engine's socket, not ${JSON.stringify(engine)}`);
  }
  // A unix socket's path has room for 107 bytes (sun_path); a longer one fails at connect with an errno that
  // depends on the Node line (ENOENT, EINVAL): say what is wrong instead.
  if (typeof engine === 'string' && engine.startsWith('/') && Buffer.byteLength(engine) > 107) {
    throw invalid(`target.engine: a unix socket's path has at most 107 bytes, not ${Buffer.byteLength(engine)}: ${JSON.stringify(engine)}`);
  }
  // The types as a pid target's (the pid is checked once known).
  checkTarget(where, { pid: 1, types: target.types });
}

/** What the engine says of a container: its init's pid while it runs. */
interface ContainerState {
  running: boolean;
  pid: number;
}

/** One `GET /containers/<name>/json`; the engine's conditions as `ContainerError`s. */
function inspect(where: string, container: string, socketPath: string, signal?: AbortSignal): Promise<ContainerState> {
  const fail = (code: ContainerErrorCode, what: string, more: { statusCode?: number; cause?: unknown } = {}) =>
    gonsError(code, `${where}: container ${JSON.stringify(container)}: ${what}`, { container, socketPath, ...more });
  return new Promise((resolve, reject) => {
    const req = request({
      socketPath, path: `/containers/${encodeURIComponent(container)}/json`, method: 'GET', headers: { Host: 'localhost' }, signal, timeout: ENGINE_TIMEOUT_MS,
    }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) req.destroy(fail('ERR_GONS_ENGINE_API', `the engine at ${socketPath} answered more than ${MAX_ANSWER_BYTES} bytes`));
        else chunks.push(chunk);
      });
      /* c8 ignore next -- the engine broke the connection mid-answer */
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: { message?: unknown; State?: { Running?: unknown; Pid?: unknown } } | undefined;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        const status = res.statusCode ?? 0;
        const said = typeof body?.message === 'string' ? `: ${body.message}` : '';
        if (status === 404) return reject(fail('ERR_GONS_NO_SUCH_CONTAINER', `no such container (engine at ${socketPath}${said})`, { statusCode: status }));
        if (status !== 200) return reject(fail('ERR_GONS_ENGINE_API', `the engine at ${socketPath} answered HTTP ${status}${said}`, { statusCode: status }));
        const state = body?.State;
        if (!state || typeof state.Running !== 'boolean' || !Number.isSafeInteger(state.Pid)) {
          return reject(fail('ERR_GONS_ENGINE_API', `the engine at ${socketPath} answered without State.Running and State.Pid`, { statusCode: status }));
        }
        resolve({ running: state.Running, pid: state.Pid as number });
      });
    });
    /* c8 ignore next -- an engine that accepts and never answers */
    req.on('timeout', () => req.destroy(fail('ERR_GONS_ENGINE_API', `the engine at ${socketPath} did not answer within ${ENGINE_TIMEOUT_MS} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      // Our own (an answer too large) or the caller's abort.
      if (err instanceof ContainerError || err.name === 'AbortError') return reject(err);
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        return reject(fail('ERR_GONS_ENGINE_UNAVAILABLE', `no container engine listens on ${socketPath} (${err.code}): is it running? Pass target.engine: 'docker', 'podman' or its socket's path`, { cause: err }));
      }
      if (err.code === 'EACCES') {
        return reject(fail('ERR_GONS_ENGINE_PERMISSION', `permission denied on the engine socket ${socketPath}: run as root or as a member of its group (e.g. docker), or use your rootless engine's socket`, { cause: err }));
      }
      reject(fail('ERR_GONS_ENGINE_API', `cannot talk to the engine at ${socketPath}: ${err.message}`, { cause: err }));
    });
    req.end();
  });
}

/** A container's init, pinned: `target` to plan with, `stillPinned()` to check after planning, `close()` the pin. */
export interface PinnedContainer {
  target: Target;
  /** Throws unless the pinned process still lives (its pid was not reused since). */
  stillPinned(): void;
  close(): void;
}

/**
 * Resolves a container to its init process, race-free (see the top of this
 * file). Rejects with a `ContainerError`, or a `TypeError` for a malformed
 * target.
 */
export async function resolveContainer(where: string, target: ContainerTarget, signal?: AbortSignal): Promise<PinnedContainer> {
  checkContainerTarget(where, target);
  const socketPath = engineSocket(target.engine);
  const notRunning = () => gonsError('ERR_GONS_CONTAINER_NOT_RUNNING', `${where}: container ${JSON.stringify(target.container)} is not running`, {
    container: target.container, socketPath,
  });
  const first = await inspect(where, target.container, socketPath, signal);
  if (!first.running || first.pid <= 0) throw notRunning();
  const opened = addon.pidfdOpen(first.pid);
  if ('errno' in opened) throw notRunning(); // its init is gone already
  const fd = opened.fd;
  const alive = () => readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/^Pid:\s*(-?\d+)$/m)?.[1] === String(first.pid);
  try {
    const second = await inspect(where, target.container, socketPath, signal);
    if (!second.running || second.pid !== first.pid || !alive()) throw notRunning();
  } catch (err) {
    addon.closeFd(fd);
    throw err;
  }
  return {
    target: { pid: first.pid, ...(target.types === undefined ? {} : { types: target.types }) },
    stillPinned: () => {
      if (!alive()) throw notRunning();
    },
    close: () => addon.closeFd(fd),
  };
}
