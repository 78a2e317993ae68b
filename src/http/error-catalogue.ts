/**
 * Every error code of our own (AppError), with its HTTP status and its one message. A message
 * that names something (a field, a client) is a function of those names; the parameters are
 * typed per code. Messages are shown to people (error pages, problem+json `detail`, the CLI's
 * stderr): sentence case, say what to do next, never a secret.
 *
 * NOTE: codes are part of the management API's and the JSON error bodies' contract: add codes,
 * never rename one.
 */
type Message = string | ((params: never) => string);

interface Entry {
  status: number;
  message: Message;
}

const SESSION_ENDED = 'Your sign-in has ended. Go back to the application and sign in again.';
const CSRF = 'The form has expired or did not come from this site. Go back and try again.';

export const ERROR_CATALOGUE = {
  // --- Requests (any surface) ---
  not_found: { status: 404, message: 'This page does not exist.' },
  'request.csrf': { status: 403, message: CSRF },
  'request.cross_site': { status: 403, message: 'This form was sent from another site, so it was not accepted. Open the page on this site and try again.' },
  'request.body_required': { status: 400, message: 'This request needs a JSON body.' },
  'request.unsupported_media_type': { status: 415, message: (p: { expected: string }) => `Send the body as ${p.expected}.` },
  'request.malformed_json': { status: 400, message: (p: { problem: string }) => `The body is not valid ${p.problem}.` },
  'request.too_large': { status: 413, message: (p: { what: 'body' | 'form' }) => `The ${p.what} is too large.` },
  'request.invalid': { status: 400, message: (p: { where: 'body' | 'query' | 'path' | 'fields' }) => (p.where === 'fields' ? 'The request has invalid fields.' : p.where === 'body' ? 'The request body has invalid fields.' : `The request has invalid ${p.where} parameters.`) },
  'request.duplicate_field': { status: 400, message: (p: { field: string }) => `The form field "${p.field.slice(0, 40)}" was sent more than once.` },

  // --- Sign-in (the interaction pages; src/sign-in) ---
  'interaction.not_found': { status: 404, message: 'This sign-in does not exist or has expired.' },
  'interaction.mismatch': { status: 400, message: 'This sign-in was started in another tab or has expired. Go back to the application and try again.' },
  'interaction.client_gone': { status: 400, message: 'The application that sent you here no longer exists.' },
  'interaction.unknown_prompt': { status: 400, message: 'This sign-in step is not supported.' },
  'interaction.grant_gone': { status: 400, message: 'This sign-in has expired. Go back to the application and try again.' },
  'interaction.no_account': { status: 400, message: SESSION_ENDED },
  // At consent: the browser's session (not this sign-in) is gone.
  'interaction.session_ended': { status: 400, message: 'Your session has ended. Go back to the application and sign in again.' },
  'interaction.wrong_step': { status: 400, message: 'This step of the sign-in is not the current one. Go back to the application and try again.' },

  // --- The server signing in to itself (account page, admin console) ---
  'sign_in.state': { status: 400, message: 'This sign-in link has expired or was opened in another browser. Try again.' },
  'sign_in.code': { status: 400, message: 'This sign-in could not be completed. Try again.' },

  // --- Admin console and management API ---
  'admin.signed_out': { status: 401, message: 'Your admin session has ended. Sign in again.' },
  'admin.mfa_required': { status: 401, message: 'The admin console needs your authenticator app. Sign in again.' },
  'admin.forbidden': { status: 403, message: 'This account is not an administrator. Sign in with an admin account to use the console.' },
  'auth.account_not_found': { status: 403, message: 'The account this token acts for no longer exists.' },
  'auth.account_disabled': { status: 403, message: 'The account this token acts for is disabled.' },
  'auth.not_admin': { status: 403, message: 'The account this token acts for is not an administrator.' },
  'audit.invalid_cursor': { status: 400, message: 'The page cursor is not valid. Start again from the first page.' },

  // --- Accounts and users ---
  'account.invalid': { status: 400, message: (p: { issue: string }) => p.issue },
  'account.invalid_password': { status: 400, message: (p: { issue: string }) => `password: ${p.issue}` },
  'account.email_taken': { status: 409, message: 'An account with this email address already exists.' },
  'account.not_found': { status: 404, message: 'No such account.' },
  'user.invalid': { status: 400, message: (p: { summary: string }) => p.summary || 'invalid input' },
  'user.not_found': { status: 404, message: 'No user with this id. It may have been deleted.' },
  'user.email_taken': { status: 409, message: 'A user with this email address already exists.' },
  'user.session_not_found': { status: 404, message: 'This person has no such session. It may have ended already.' },
  'user.app_not_found': { status: 404, message: 'This person has not connected this app, or its access was already revoked.' },
  'user.self': { status: 409, message: (p: { what: string }) => `You cannot ${p.what} your own account. Ask another administrator.` },
  'user.scope_not_held': {
    status: 403,
    message: (p: { action: string; missing: readonly string[] }) =>
      `${p.action} needs every management API scope, as an administrator holds them; the caller does not hold ${p.missing.join(', ')}.`,
  },
  'mfa.already_enrolled': { status: 409, message: 'An authenticator app is already set up.' },
  'mfa.not_enrolled': { status: 409, message: 'No authenticator app is set up.' },

  // --- Clients and registration tokens ---
  // NOTE: the command line prints these as they are (`error: no client with id "…"`).
  'client.not_found': { status: 404, message: (p: { clientId: string }) => `no client with id "${p.clientId.slice(0, 100)}"` },
  'client.invalid': { status: 400, message: (p: { summary: string }) => `invalid client: ${p.summary}` },
  'client.scope_not_held': {
    status: 403,
    message: (p: { operation: string; grantScope: string; missing: readonly string[] }) =>
      `${p.operation} a client with management API scopes or first-party status needs ${p.grantScope} and each of its management API scopes; the caller does not hold ${p.missing.join(', ')}`,
  },
  'client.invalid_cursor': { status: 400, message: 'The page cursor is not valid. Start again from the first page.' },
  'client.built_in': {
    status: 409,
    message: (p: { name: string }) => `“${p.name}” is built into this server and is set up again at every start: it cannot be edited, have its secret rotated or be deleted.`,
  },
  'client.exists': { status: 409, message: (p: { clientId: string }) => `A client with id "${p.clientId}" already exists.` },
  'client.no_secret': { status: 400, message: (p: { clientId: string; method: string }) => `client "${p.clientId}" authenticates with ${p.method} and has no secret to rotate` },
  // The console's rotation page for such a client: the page cannot exist in the client's state.
  'client.nothing_to_rotate': { status: 409, message: (p: { method: string }) => `This client authenticates with ${p.method} and has no secret to rotate.` },
  'client.rotation_conflict': {
    status: 409,
    message: 'The secret of this client was rotated by someone else just now. Reload, and rotate again if you still need to.',
  },
  // --- API resources (src/resources/api-resource.service.ts) ---
  'resource.invalid': { status: 400, message: (p: { summary: string }) => `invalid API resource: ${p.summary}` },
  'resource.not_found': { status: 404, message: (p: { identifier: string }) => `no API resource "${p.identifier.slice(0, 200)}"` },
  'resource.exists': { status: 409, message: (p: { identifier: string }) => `An API resource "${p.identifier.slice(0, 200)}" already exists.` },
  'registration_token.invalid': { status: 400, message: (p: { issue: string }) => p.issue },
  'registration_token.not_found': { status: 404, message: 'No registration token with this id, or it was already revoked.' },

  // --- Signing keys (`keys` commands; src/oidc/key-rotation.service.ts) ---
  'signing_key.not_found': { status: 404, message: (p: { kid: string }) => `no signing key with kid "${p.kid.slice(0, 100)}" (see \`keys list\`)` },
  'signing_key.already_retired': { status: 409, message: (p: { kid: string }) => `signing key "${p.kid}" is already retired` },
  'signing_key.signing': {
    status: 409,
    message: (p: { kid: string; alg: string }) =>
      `signing key "${p.kid}" is the active ${p.alg} key: it signs every new token, so it cannot be retired. Rotate first (keys rotate --alg ${p.alg}), then retire it once it is no longer needed.`,
  },
  'signing_key.still_needed': { status: 409, message: (p: { kid: string; why: string }) => `signing key "${p.kid}" is still needed: ${p.why}. Wait, or retire it anyway with --force.` },
  'signing_key.no_active_key': {
    status: 409,
    message: (p: { alg: string }) => `there is no active ${p.alg} key to rotate yet: the server creates the first keys when it first starts`,
  },
  'signing_key.rotation_pending': {
    status: 409,
    message: (p: { alg: string; kid: string; activatesAt: string }) =>
      `a new ${p.alg} key (${p.kid}) is already waiting to activate at ${p.activatesAt}; retire it first to rotate again`,
  },
} as const satisfies Record<string, Entry>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

type Catalogue = typeof ERROR_CATALOGUE;
/** The parameters a code's message needs: none for a fixed message. */
export type ErrorParams<C extends ErrorCode> = Catalogue[C]['message'] extends (params: infer P) => string ? P : undefined;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CATALOGUE, code);
}

export function errorStatus(code: ErrorCode): number {
  return ERROR_CATALOGUE[code].status;
}

export function errorMessage<C extends ErrorCode>(code: C, params: ErrorParams<C>): string {
  const message: Message = ERROR_CATALOGUE[code].message;
  return typeof message === 'string' ? message : (message as (p: ErrorParams<C>) => string)(params);
}

/** Whether the code's message is built from parameters (then they follow the code). */
export function takesParams(code: ErrorCode): boolean {
  return typeof ERROR_CATALOGUE[code].message === 'function';
}
