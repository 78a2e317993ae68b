import { errors } from 'oidc-provider';

/**
 * Driver errors that mean "the database cannot be reached right now", as opposed to a bug
 * or a bad query. Requests that hit one get 503 and may be retried; the driver reconnects
 * by itself when the server is back.
 */
const UNAVAILABLE_NAMES = new Set([
  'MongoServerSelectionError',
  'MongoNetworkError',
  'MongoNetworkTimeoutError',
  'MongoNotConnectedError',
  'MongoTopologyClosedError',
  'MongoPoolClearedError',
  'PoolClosedError',
  'MongoExpiredSessionError',
]);

export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth += 1) {
    if (e instanceof Error) {
      if (UNAVAILABLE_NAMES.has(e.name)) return true;
      // Mongoose's own "buffering timed out" when the connection is down.
      if (e.name === 'MongooseError' && /buffering timed out|Client must be connected/i.test(e.message)) return true;
      if (e.name === 'MongooseServerSelectionError') return true;
      e = (e as Error & { cause?: unknown }).cause;
    } else {
      break;
    }
  }
  return false;
}

/**
 * The provider-facing form: oidc-provider renders `expose`d errors with their status and
 * `error` code, so the token endpoint answers 503 {"error":"temporarily_unavailable"}
 * (RFC 6749 §4.1.2.1 defines that code) instead of a 500.
 */
export class DatabaseUnavailableError extends errors.OIDCProviderError {
  constructor(cause: unknown) {
    super(503, 'temporarily_unavailable', { cause });
    Object.assign(this, {
      error_description: 'the service is temporarily unavailable, try again shortly',
      expose: true,
      // NOTE: never redirect this error to the client: we may not have verified the redirect_uri.
      allow_redirect: false,
    });
  }
}

export async function guardDatabase<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (err) {
    if (isDatabaseUnavailable(err)) throw new DatabaseUnavailableError(err);
    throw err;
  }
}
