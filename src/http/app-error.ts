import type { ErrorCode, ErrorParams } from './error-catalogue.js';
import { errorMessage, errorStatus, takesParams } from './error-catalogue.js';

interface AppErrorOptions {
  /** Default: shown when the status is below 500. */
  expose?: boolean;
  cause?: unknown;
}

/** The arguments after the code: the message's parameters when it has any, then options. */
type CodeArgs<C extends ErrorCode> = ErrorParams<C> extends undefined ? [options?: AppErrorOptions] : [params: ErrorParams<C>, options?: AppErrorOptions];

/**
 * Our own errors: a status, a namespaced code and whether the message may be shown, all from
 * the code's entry in the catalogue (error-catalogue.ts). Protocol failures use oidc-provider's
 * `errors.*` instead. Throw `new AppError(code, params)` (checked per code); a subclass with
 * fields of its own extends this class and calls `super(code, params)`, as TypeScript cannot
 * extend AppError's generic constructor.
 */
export class AppErrorBase extends Error {
  override name = 'AppError';
  readonly status: number;
  readonly code: string;
  readonly expose: boolean;

  constructor(...args: [code: ErrorCode, ...rest: unknown[]] | [status: number, code: string, message: string, options?: AppErrorOptions]) {
    let status: number;
    let code: string;
    let message: string;
    let options: AppErrorOptions | undefined;
    if (typeof args[0] === 'number') {
      // The older form, with its own status and message (deprecated; see AppErrorConstructor).
      [status, code, message, options] = args as [number, string, string, AppErrorOptions?];
    } else {
      const catalogued = args[0];
      const hasParams = takesParams(catalogued);
      const params = hasParams ? args[1] : undefined;
      options = (hasParams ? args[2] : args[1]) as AppErrorOptions | undefined;
      status = errorStatus(catalogued);
      code = catalogued;
      message = errorMessage(catalogued, params as never);
    }
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.status = status;
    this.code = code;
    this.expose = options?.expose ?? status < 500;
  }
}

interface AppErrorConstructor {
  /** An error of the catalogue: its status and message come from the code's entry. */
  new <C extends ErrorCode>(code: C, ...args: CodeArgs<C>): AppErrorBase;
  /**
   * @deprecated use a catalogue code. The sign-in pages no longer use it; still used by the
   * password policy, password reset, invitations and two admin pages until they are migrated.
   */
  new (status: number, code: string, message: string, options?: AppErrorOptions): AppErrorBase;
  readonly prototype: AppErrorBase;
}

export const AppError = AppErrorBase as AppErrorConstructor;
export type AppError = AppErrorBase;


/** The catalogue's codes whose message is a summary of refused fields. */
export type FieldValidationCode = { [C in ErrorCode]: ErrorParams<C> extends { summary: string } ? C : never }[ErrorCode];

/**
 * A refused input with one human message per field (`fields`: forms show each beside its field,
 * the management API lists them), and the code's message built from a one-line summary of them
 * all. Each service has its own subclass, so that a caller catches only its own service's refusal.
 */
export abstract class FieldValidationError extends AppErrorBase {
  readonly fields: Record<string, string>;

  /** `label` names a field in the summary (default: the field's key). */
  protected constructor(code: FieldValidationCode, fields: Record<string, string>, label: (field: string) => string = (field) => field) {
    super(code, {
      summary: Object.entries(fields)
        .map(([field, message]) => `${label(field)}: ${message}`)
        .join('; '),
    });
    this.fields = fields;
  }
}
