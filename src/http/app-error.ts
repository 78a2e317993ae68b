/**
 * Our own errors: a status, a namespaced code and whether the
 * message may be shown. Protocol failures use oidc-provider's `errors.*` instead.
 */
export class AppError extends Error {
  override name = 'AppError';
  readonly status: number;
  readonly code: string;
  readonly expose: boolean;

  constructor(status: number, code: string, message: string, options?: { expose?: boolean; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.status = status;
    this.code = code;
    this.expose = options?.expose ?? status < 500;
  }
}
