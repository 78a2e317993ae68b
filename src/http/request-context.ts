import { AsyncLocalStorage } from 'node:async_hooks';

import type { Middleware } from 'koa';

/**
 * Who is on the other end of the current request, for code that has no `ctx` at hand: the
 * provider's model events (a token saved, destroyed) and services writing the audit log.
 *
 * NOTE: the store is bound around the whole rest of the Koa chain, the mounted provider
 * included, and EventEmitter listeners run synchronously inside `emit`, so a provider event
 * listener sees the request that caused the event (test/audit/audit-events.test.ts checks it).
 */
export interface RequestInfo {
  requestId: string | undefined;
  /**
   * The client IP (Koa's ctx.ip): without TRUST_PROXY the socket's address; with it, the
   * PROXY_HOPS-th X-Forwarded-For entry counted from the right (app.maxIpsCount), never the
   * leftmost one, which the client writes itself.
   */
  ip: string | undefined;
  userAgent: string | undefined;
  method: string;
  /** The path as the host app saw it (the provider is mounted at the root, so it is the provider's too). */
  path: string;
  /**
   * Records read during this request, by key (`rememberRead`): a record is read from the
   * database at most once per request. Absent outside a request, where nothing is remembered.
   */
  reads?: Map<string, Promise<unknown>>;
}

const storage = new AsyncLocalStorage<RequestInfo>();

export function currentRequest(): RequestInfo | undefined {
  return storage.getStore();
}

/** Runs `fn` as if inside a request (tests, and work a request hands off). */
export function runWithRequest<T>(info: RequestInfo, fn: () => T): T {
  return storage.run(info, fn);
}

/**
 * Reads `key` once per request: the first call runs `read`, later calls in the same request get
 * its result (a failed read is not remembered). Outside a request it always reads.
 *
 * NOTE: a remembered value is shared by every caller of the request, so callers must not mutate
 * it (the adapter remembers the stored document and parses a fresh payload for each caller).
 * Whoever writes a record forgets it (`forgetReads`) before the next read in the same request.
 */
export function rememberRead<T>(key: string, read: () => Promise<T>): Promise<T> {
  const reads = storage.getStore()?.reads;
  if (!reads) return read();
  const known = reads.get(key) as Promise<T> | undefined;
  if (known) return known;
  const pending = read();
  reads.set(key, pending);
  pending.catch(() => {
    if (reads.get(key) === pending) reads.delete(key);
  });
  return pending;
}

/** What this request read (or was handed, `primeRead`) under `key`, without reading: undefined when nothing. */
export function peekRead<T>(key: string): Promise<T> | undefined {
  return storage.getStore()?.reads?.get(key) as Promise<T> | undefined;
}

/**
 * Hands this request a record it need not read: one a record of the same flow carried, written
 * by this server (the adapter's `carried`, see mongo-adapter.ts). Never replaces a read already made.
 */
export function primeRead(key: string, value: unknown): void {
  const reads = storage.getStore()?.reads;
  if (reads && !reads.has(key)) reads.set(key, Promise.resolve(value));
}

/** Forgets what this request read under keys starting with `prefix` (every key when omitted). */
export function forgetReads(prefix?: string): void {
  const reads = storage.getStore()?.reads;
  if (!reads) return;
  if (prefix === undefined) {
    reads.clear();
    return;
  }
  for (const key of reads.keys()) if (key.startsWith(prefix)) reads.delete(key);
}

/** Runs the rest of the request inside its RequestInfo. Install after the request id. */
export function bindRequestContext(): Middleware {
  return async function bindRequestContext(ctx, next) {
    const info: RequestInfo = {
      requestId: ctx.state.requestId as string | undefined,
      ip: ctx.ip || undefined,
      userAgent: ctx.get('user-agent').slice(0, 300) || undefined,
      method: ctx.method,
      path: ctx.path,
      reads: new Map(),
    };
    await storage.run(info, next);
  };
}
