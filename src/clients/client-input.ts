import type { AdapterPayload, ResponseType } from 'oidc-provider';
import { z } from 'zod';

import { safeText } from '../accounts/account.service.js';
import { FieldValidationError } from '../http/app-error.js';
import { LOOPBACK_HOSTS, RedirectUriError, checkBackchannelLogoutUri, classifyRedirectUri } from './redirect-uri.js';

/**
 * What an admin may set on a client, checked once here for every way in (console, management
 * API, CLI, seed): the zod schema takes care of each field on its own, `normalizeClientInput`
 * of the rules between fields, and both report per-field messages (ClientValidationError).
 */

/** Per-client TTL overrides may shorten or lengthen the defaults, within these bounds (seconds). */
export const CLIENT_TTL_MAXIMA = {
  /** Bearer tokens cannot be recalled from resource servers that cache them: a day at most. */
  accessToken: 24 * 60 * 60,
  idToken: 24 * 60 * 60,
  // Refresh tokens: at most the absolute cap (REFRESH_TOKEN_ABSOLUTE_TTL), checked against config.
} as const;

/** The methods that authenticate with a shared secret (RFC 6749 §2.3.1). */
const SECRET_METHODS = new Set(['client_secret_basic', 'client_secret_post']);

export function usesSecret(method: string): boolean {
  return SECRET_METHODS.has(method);
}

/** JWK members that only private (or symmetric) keys have (RFC 7518 §6.2.2, §6.3.2, §6.4.1). */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

function webUri(raw: string, { loopbackHttp }: { loopbackHttp: boolean }): boolean {
  const url = URL.parse(raw);
  if (!url || raw.includes('#') || url.username || url.password) return false;
  if (url.protocol === 'https:') return true;
  return loopbackHttp && url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname);
}

const ttlOverride = (max: number, what: string) =>
  z
    .number()
    .int('must be a whole number of seconds')
    .positive('must be a positive number of seconds')
    .max(max, `must be at most ${max} seconds`)
    .optional()
    .describe(`${what} lifetime for this client in seconds, instead of the server default`);

export const clientInputSchema = z.object({
  name: safeText(100)
    .refine((s) => s.trim().length > 0, 'must not be empty')
    .describe('Display name, shown on the consent page (1-100 characters; trimmed)'),
  logoUri: z
    .string()
    .max(2000, 'must be at most 2000 characters')
    .refine((s) => webUri(s, { loopbackHttp: true }), 'must be an https URL (http only for 127.0.0.1, localhost and [::1])')
    .optional()
    .describe('Logo shown on the consent page: an https URL'),
  redirectUris: z
    .array(z.string().max(2000))
    .max(20, 'at most 20 redirect URIs')
    .describe(
      'Where authorization responses go (exact match). Required with authorization_code (1-20). Absolute, no fragment, no wildcards, ' +
        'https except http on 127.0.0.1, localhost or [::1]; private-use schemes (com.example.app:/cb) only for native public clients',
    ),
  postLogoutRedirectUris: z
    .array(z.string().max(2000))
    .max(20, 'at most 20 post-logout redirect URIs')
    .default([])
    .describe('Where to return after sign-out (0-20), same rules as redirectUris'),
  backchannelLogoutUri: z
    .string()
    .max(2000, 'must be at most 2000 characters')
    .optional()
    .describe(
      'OpenID Connect Back-Channel Logout: where this server POSTs a signed logout token when a session the client signed in ' +
        'through ends. Absolute, no fragment, https except http on 127.0.0.1, localhost or [::1]; needs authorization_code',
    ),
  backchannelLogoutSessionRequired: z
    .boolean()
    .default(false)
    .describe('The logout token carries the session id (sid) the client saw in its ID tokens; needs backchannelLogoutUri'),
  grantTypes: z
    .array(z.enum(['authorization_code', 'refresh_token', 'client_credentials']))
    .min(1, 'at least one grant type is required')
    .default(['authorization_code', 'refresh_token'])
    .describe('OAuth grants the client may use; refresh_token needs authorization_code'),
  applicationType: z
    .enum(['web', 'native'])
    .default('web')
    .describe('web (server or browser app) or native (desktop or mobile app; may use private-use scheme redirect URIs)'),
  tokenEndpointAuthMethod: z
    .enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'])
    .default('client_secret_basic')
    .describe(
      'How the client authenticates at the token endpoint; none makes a public client (no secret, PKCE only), ' +
        'private_key_jwt needs jwksUri or jwks',
    ),
  jwksUri: z
    .string()
    .max(2000, 'must be at most 2000 characters')
    .refine((s) => webUri(s, { loopbackHttp: false }), 'must be an https URL')
    .optional()
    .describe("URL of the client's public keys (JWKS), for private_key_jwt"),
  jwks: z
    .object({
      keys: z
        .array(z.record(z.string(), z.unknown()))
        .min(1, 'must contain at least one key')
        .max(10, 'at most 10 keys')
        .refine((keys) => keys.every((k) => typeof k.kty === 'string'), 'every key needs a "kty"')
        .refine(
          (keys) => keys.every((k) => PRIVATE_JWK_MEMBERS.every((m) => !(m in k))),
          `must contain public keys only (no ${PRIVATE_JWK_MEMBERS.join(', ')} members)`,
        ),
    })
    .optional()
    .describe("The client's public keys as a JWKS, for private_key_jwt (instead of jwksUri)"),
  scopes: z
    .array(z.string().max(100))
    .min(1, 'at least one scope is required')
    .max(50)
    .default(['openid', 'offline_access', 'email', 'profile'])
    .describe('Scopes the client may ask for: the OpenID Connect scopes and the management API scopes'),
  requireMfa: z.boolean().default(false).describe('Every sign-in to this client needs a second factor'),
  firstParty: z.boolean().default(false).describe('One of our own apps: its sign-ins skip the consent page'),
  skipPkce: z
    .boolean()
    .default(false)
    .describe(
      'Let this confidential client make authorization requests without PKCE (for relying parties that predate it). ' +
        'Off by default; never for a public client (tokenEndpointAuthMethod none)',
    ),
  allowedResources: z
    .array(z.string().max(2000))
    .max(20, 'at most 20 API resources')
    .default([])
    .describe('Identifiers of the API resources (RFC 8707) this client may get access tokens for (0-20)'),
  defaultResource: z
    .string()
    .max(2000)
    .optional()
    .describe('The API resource an authorization or token request without `resource` is for; one of allowedResources'),
  accessTokenTtl: ttlOverride(CLIENT_TTL_MAXIMA.accessToken, 'Access token'),
  idTokenTtl: ttlOverride(CLIENT_TTL_MAXIMA.idToken, 'ID token'),
  refreshTokenTtl: z
    .number()
    .int('must be a whole number of seconds')
    .positive('must be a positive number of seconds')
    .optional()
    .describe('Refresh token idle lifetime for this client in seconds (the absolute cap still applies), instead of the server default'),
});

export type ClientInput = z.input<typeof clientInputSchema>;
type ParsedClientInput = z.output<typeof clientInputSchema>;

/** The older, smaller input the CLI and the development seed use. */
export const newClientSchema = z.object({
  name: safeText(100).refine((s) => s.trim().length > 0, 'must not be empty'),
  redirectUris: z.array(z.string().max(2000)).min(1, 'at least one redirect URI is required').max(20, 'at most 20 redirect URIs'),
  postLogoutRedirectUris: z.array(z.string().max(2000)).max(20, 'at most 20 post-logout redirect URIs').default([]),
  /** OpenID Connect Back-Channel Logout (validateClientInput checks it). */
  backchannelLogoutUri: z.string().max(2000, 'must be at most 2000 characters').optional(),
  backchannelLogoutSessionRequired: z.boolean().default(false),
  /** A public client: token_endpoint_auth_method none, no secret. */
  public: z.boolean().default(false),
  /** Every sign-in to this client needs a second factor (src/oidc/policy.ts). */
  requireMfa: z.boolean().default(false),
  /** A confidential client that may leave out PKCE (never a public one: validateClientInput). */
  skipPkce: z.boolean().default(false),
  /** Only for seeding well-known demo clients; normally generated. */
  clientId: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._~-]{7,63}$/, 'must be 8-64 of A-Z a-z 0-9 . _ ~ -, starting with a letter or digit')
    .optional(),
});

export type NewClientInput = z.input<typeof newClientSchema>;

/** Fields of ClientInput that NewClientInput does not have: their presence says which input this is. */
const CLIENT_INPUT_ONLY = [
  'logoUri',
  'grantTypes',
  'applicationType',
  'tokenEndpointAuthMethod',
  'jwksUri',
  'jwks',
  'scopes',
  'firstParty',
  'allowedResources',
  'defaultResource',
  'accessTokenTtl',
  'idTokenTtl',
  'refreshTokenTtl',
] as const;

export function isNewClientInput(input: NewClientInput | ClientInput): input is NewClientInput {
  const has = (key: string) => (input as Record<string, unknown>)[key] !== undefined;
  return (has('public') || has('clientId')) && !CLIENT_INPUT_ONLY.some(has);
}

/** Human names of the input fields, for the one-line summary (the CLI prints it). */
const FIELD_LABELS: Record<string, string> = {
  name: 'name',
  logoUri: 'logo URI',
  redirectUris: 'redirect URIs',
  postLogoutRedirectUris: 'post-logout redirect URIs',
  backchannelLogoutUri: 'back-channel logout URI',
  backchannelLogoutSessionRequired: 'back-channel logout session required',
  grantTypes: 'grant types',
  applicationType: 'application type',
  tokenEndpointAuthMethod: 'token endpoint auth method',
  jwksUri: 'JWKS URI',
  jwks: 'JWKS',
  scopes: 'scopes',
  requireMfa: 'require MFA',
  firstParty: 'first party',
  skipPkce: 'skip PKCE',
  allowedResources: 'API resources',
  defaultResource: 'default API resource',
  accessTokenTtl: 'access token TTL',
  idTokenTtl: 'ID token TTL',
  refreshTokenTtl: 'refresh token TTL',
  public: 'public',
  clientId: 'client id',
};

/**
 * A refused client input: `fields` holds one human message per input field (the console shows
 * each beside its field), the message summarises them all on one line.
 */
export class ClientValidationError extends FieldValidationError {
  override name = 'ClientValidationError';

  constructor(fields: Record<string, string>) {
    super('client.invalid', fields, (field) => FIELD_LABELS[field] ?? field);
  }
}

/** Collects per-field problems; several problems in one field are joined. */
class FieldErrors {
  private readonly fields: Record<string, string[]> = {};

  add(field: string, message: string): void {
    (this.fields[field] ??= []).push(message);
  }

  /** Zod's issues, under `field` when the schema was one field's, else under the path's first key. */
  addZod(error: z.ZodError, field?: string): void {
    for (const issue of error.issues) {
      const path = field === undefined ? issue.path : [field, ...issue.path];
      const [key, ...rest] = path;
      // An array item's position is counted from 1 for people.
      const where = rest.map((p) => (typeof p === 'number' ? `item ${p + 1}` : String(p))).join(' ');
      this.add(typeof key === 'string' ? key : 'input', where ? `${where}: ${issue.message}` : issue.message);
    }
  }

  throwIfAny(): void {
    const entries = Object.entries(this.fields);
    if (entries.length > 0) throw new ClientValidationError(Object.fromEntries(entries.map(([k, v]) => [k, v.join('; ')])));
  }
}

export interface ClientRules {
  /** Every scope a client may be allowed (the provider's scopes and the management API's). */
  knownScopes: readonly string[];
  /** REFRESH_TOKEN_ABSOLUTE_TTL: no idle period may be longer than the whole chain. */
  maxRefreshTokenTtl: number;
}

/** A checked client input, ready to become provider metadata. */
export interface ValidClient extends Omit<ParsedClientInput, 'name'> {
  name: string;
  responseTypes: ResponseType[];
}

function checkUris(
  errors: FieldErrors,
  field: 'redirectUris' | 'postLogoutRedirectUris',
  uris: string[],
  client: Pick<ParsedClientInput, 'tokenEndpointAuthMethod' | 'applicationType'>,
): void {
  for (const uri of uris) {
    try {
      const kind = classifyRedirectUri(uri, { publicClient: client.tokenEndpointAuthMethod === 'none' });
      if (kind === 'private-use' && client.applicationType !== 'native') {
        errors.add(field, `${uri}: private-use schemes are allowed only for native applications (applicationType native)`);
      }
      // The provider refuses these for native apps: a loopback redirect is plain http (RFC 8252 §7.3).
      if (kind === 'https' && client.applicationType === 'native' && LOOPBACK_HOSTS.has(new URL(uri).hostname)) {
        errors.add(field, `${uri}: a native application uses http, not https, on a loopback host (RFC 8252 §7.3)`);
      }
    } catch (err) {
      if (!(err instanceof RedirectUriError)) throw err;
      errors.add(field, `${err.uri}: ${err.problem}`);
    }
  }
}

/**
 * Parses and checks a ClientInput: each field on its own, then the rules between fields. Every
 * problem is reported at once: a rule runs whenever the fields it reads parsed.
 */
export function validateClientInput(input: unknown, rules: ClientRules): ValidClient {
  const errors = new FieldErrors();
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ClientValidationError({ input: 'must be an object' });
  }
  const parsed: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(clientInputSchema.shape)) {
    const result = (schema as z.ZodType).safeParse((input as Record<string, unknown>)[key]);
    if (result.success) parsed[key] = result.data;
    else errors.addZod(result.error, key);
  }
  const ok = (...keys: (keyof ParsedClientInput)[]) => keys.every((k) => k in parsed);
  const data = parsed as ParsedClientInput;

  const grantTypes = ok('grantTypes') ? [...new Set(data.grantTypes)] : [];
  const authorizationCode = grantTypes.includes('authorization_code');
  const method = data.tokenEndpointAuthMethod;
  if (ok('grantTypes') && grantTypes.includes('refresh_token') && !authorizationCode) {
    errors.add('grantTypes', 'refresh_token needs authorization_code (refresh tokens come from a sign-in)');
  }
  // RFC 9700 §2.1.1: a public client has no secret, so PKCE is what ties its code to it.
  if (ok('skipPkce', 'tokenEndpointAuthMethod') && data.skipPkce && method === 'none') {
    errors.add('skipPkce', 'a public client (tokenEndpointAuthMethod none) always uses PKCE');
  }
  if (ok('grantTypes', 'tokenEndpointAuthMethod') && method === 'none' && grantTypes.includes('client_credentials')) {
    errors.add('grantTypes', 'a public client (tokenEndpointAuthMethod none) cannot use client_credentials: it has no credentials');
  }

  const redirectUris = ok('redirectUris') ? [...new Set(data.redirectUris)] : [];
  const postLogoutRedirectUris = ok('postLogoutRedirectUris') ? [...new Set(data.postLogoutRedirectUris)] : [];
  if (ok('grantTypes', 'redirectUris') && authorizationCode && redirectUris.length === 0) {
    errors.add('redirectUris', 'at least one redirect URI is required with authorization_code');
  }
  if (ok('grantTypes') && !authorizationCode) {
    if (redirectUris.length > 0) errors.add('redirectUris', 'redirect URIs are used only with the authorization_code grant');
    if (postLogoutRedirectUris.length > 0) {
      errors.add('postLogoutRedirectUris', 'post-logout redirect URIs are used only with the authorization_code grant');
    }
  }
  if (ok('tokenEndpointAuthMethod', 'applicationType')) {
    checkUris(errors, 'redirectUris', redirectUris, data);
    checkUris(errors, 'postLogoutRedirectUris', postLogoutRedirectUris, data);
  }
  // OpenID Connect Back-Channel Logout §2.2: only a client that signs people in has sessions to end.
  if (ok('backchannelLogoutUri') && data.backchannelLogoutUri !== undefined) {
    try {
      checkBackchannelLogoutUri(data.backchannelLogoutUri, { loopbackHttp: true });
    } catch (err) {
      if (!(err instanceof RedirectUriError)) throw err;
      errors.add('backchannelLogoutUri', `${err.uri}: ${err.problem}`);
    }
    if (ok('grantTypes') && !authorizationCode) errors.add('backchannelLogoutUri', 'is used only with the authorization_code grant');
  }
  if (ok('backchannelLogoutUri', 'backchannelLogoutSessionRequired') && data.backchannelLogoutSessionRequired && data.backchannelLogoutUri === undefined) {
    errors.add('backchannelLogoutSessionRequired', 'is used only with backchannelLogoutUri');
  }

  if (ok('tokenEndpointAuthMethod', 'jwksUri', 'jwks')) {
    if (method === 'private_key_jwt') {
      if (data.jwksUri === undefined && data.jwks === undefined) {
        errors.add('jwks', 'private_key_jwt needs the client’s public keys: give jwksUri or jwks');
      } else if (data.jwksUri !== undefined && data.jwks !== undefined) {
        errors.add('jwksUri', 'give either jwksUri or jwks, not both');
      }
    } else {
      if (data.jwksUri !== undefined) errors.add('jwksUri', 'is used only with tokenEndpointAuthMethod private_key_jwt');
      if (data.jwks !== undefined) errors.add('jwks', 'is used only with tokenEndpointAuthMethod private_key_jwt');
    }
  }

  const scopes = ok('scopes') ? [...new Set(data.scopes)] : [];
  const known = new Set(rules.knownScopes);
  const unknown = scopes.filter((s) => !known.has(s));
  if (unknown.length > 0) {
    errors.add('scopes', `unknown scope${unknown.length > 1 ? 's' : ''} ${unknown.map((s) => `"${s}"`).join(', ')} (known: ${[...known].join(', ')})`);
  }
  const allowedResources = ok('allowedResources') ? [...new Set(data.allowedResources)] : [];
  const badResource = allowedResources.find((r) => !isResourceIdentifier(r));
  if (badResource !== undefined) errors.add('allowedResources', `"${badResource.slice(0, 100)}" is not an absolute URI without a fragment`);
  if (ok('defaultResource', 'allowedResources') && data.defaultResource !== undefined && !allowedResources.includes(data.defaultResource)) {
    errors.add('defaultResource', 'must be one of the allowed API resources');
  }
  if (ok('refreshTokenTtl') && data.refreshTokenTtl !== undefined && data.refreshTokenTtl > rules.maxRefreshTokenTtl) {
    errors.add('refreshTokenTtl', `must be at most ${rules.maxRefreshTokenTtl} seconds (REFRESH_TOKEN_ABSOLUTE_TTL)`);
  }
  errors.throwIfAny();

  return {
    ...data,
    name: data.name.trim(),
    grantTypes,
    redirectUris,
    postLogoutRedirectUris,
    scopes,
    allowedResources,
    responseTypes: authorizationCode ? ['code'] : [],
  };
}

/** RFC 8707 §2: an absolute URI without a fragment (whether it names a registered API is the caller's check). */
function isResourceIdentifier(value: string): boolean {
  const url = URL.parse(value);
  return url !== null && !url.hash && !value.includes('#') && value === value.trim();
}

/** The legacy input as a ClientInput: a native app when a public client has a private-use redirect. */
export function parseNewClientInput(input: NewClientInput): { input: ClientInput; clientId: string | undefined } {
  const parsed = newClientSchema.safeParse(input);
  if (!parsed.success) {
    const errors = new FieldErrors();
    errors.addZod(parsed.error);
    errors.throwIfAny();
  }
  const data = parsed.data as z.output<typeof newClientSchema>;
  const native =
    data.public &&
    data.redirectUris.some((uri) => {
      try {
        return classifyRedirectUri(uri, { publicClient: true }) === 'private-use';
      } catch {
        return false;
      }
    });
  return {
    clientId: data.clientId,
    input: {
      name: data.name,
      redirectUris: data.redirectUris,
      postLogoutRedirectUris: data.postLogoutRedirectUris,
      ...(data.backchannelLogoutUri !== undefined ? { backchannelLogoutUri: data.backchannelLogoutUri } : {}),
      backchannelLogoutSessionRequired: data.backchannelLogoutSessionRequired,
      grantTypes: ['authorization_code', 'refresh_token'],
      applicationType: native ? 'native' : 'web',
      tokenEndpointAuthMethod: data.public ? 'none' : 'client_secret_basic',
      requireMfa: data.requireMfa,
      skipPkce: data.skipPkce,
    },
  };
}

/** Metadata keys an admin edits; every other key of a stored client is kept as it is on update. */
export const MANAGED_METADATA = [
  'client_name',
  'logo_uri',
  'application_type',
  'redirect_uris',
  'post_logout_redirect_uris',
  'backchannel_logout_uri',
  'backchannel_logout_session_required',
  'grant_types',
  'response_types',
  'token_endpoint_auth_method',
  'jwks_uri',
  'jwks',
  'scope',
  'require_mfa',
  'first_party',
  'skip_pkce',
  'allowed_resources',
  'default_resource',
  'access_token_ttl',
  'id_token_ttl',
  'refresh_token_ttl',
] as const;

/**
 * The provider's metadata (RFC 7591 §2 names; our own extras in provider.ts extraClientMetadata).
 * Flags and overrides are written only when set, so that a client without them reads as before.
 */
export function metadataFor(clientId: string, client: ValidClient): AdapterPayload {
  return {
    client_id: clientId,
    client_name: client.name,
    ...(client.logoUri !== undefined ? { logo_uri: client.logoUri } : {}),
    application_type: client.applicationType,
    redirect_uris: client.redirectUris,
    post_logout_redirect_uris: client.postLogoutRedirectUris,
    ...(client.backchannelLogoutUri !== undefined ? { backchannel_logout_uri: client.backchannelLogoutUri } : {}),
    ...(client.backchannelLogoutSessionRequired ? { backchannel_logout_session_required: true } : {}),
    grant_types: client.grantTypes,
    response_types: client.responseTypes,
    token_endpoint_auth_method: client.tokenEndpointAuthMethod,
    ...(client.jwksUri !== undefined ? { jwks_uri: client.jwksUri } : {}),
    ...(client.jwks !== undefined ? { jwks: client.jwks } : {}),
    scope: client.scopes.join(' '),
    ...(client.requireMfa ? { require_mfa: true } : {}),
    ...(client.firstParty ? { first_party: true } : {}),
    ...(client.skipPkce ? { skip_pkce: true } : {}),
    ...(client.allowedResources.length > 0 ? { allowed_resources: client.allowedResources } : {}),
    ...(client.defaultResource !== undefined ? { default_resource: client.defaultResource } : {}),
    ...(client.accessTokenTtl !== undefined ? { access_token_ttl: client.accessTokenTtl } : {}),
    ...(client.idTokenTtl !== undefined ? { id_token_ttl: client.idTokenTtl } : {}),
    ...(client.refreshTokenTtl !== undefined ? { refresh_token_ttl: client.refreshTokenTtl } : {}),
  };
}
