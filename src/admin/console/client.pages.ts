import { z } from 'zod';

import { defaults } from '../../../config/defaults.js';
import { optionalProfileScopes } from '../../accounts/profile-claims.js';
import { CLIENT_TTL_MAXIMA, usesSecret } from '../../clients/client-input.js';
import { fullAuthority } from '../../clients/admin-authority.js';
import { BUILT_IN_CLIENT_IDS, ClientValidationError } from '../../clients/client.service.js';
import type { ClientInput, ClientView } from '../../clients/client.service.js';
import type { Config } from '../../config/config.js';
import type { SecretBox } from '../../crypto/secret-box.js';
import { isStorableString } from '../../db/storable.js';
import { AppError } from '../../http/app-error.js';
import type { FormFields } from '../../http/form-body.js';
import type { ApiResourceView } from '../../resources/api-resource.service.js';
import { ADMIN_BASE_PATH } from '../admin-client.js';
import { unknownResourceFields } from '../client-resources.js';
import { apiResourceHref } from './api-resource.pages.js';
import type { ConsoleContext, ConsoleState, ConsoleStep } from './console-kit.js';
import { durationInWords, lifetimeText, noticeFrom, utcTime } from './console-kit.js';
import { errorSummary, lines, secondsFromForm } from './form-values.js';
import type { ConsolePages } from './console.routes.js';

/**
 * The console's Clients section: list (search, pagination), detail, create, edit, secret
 * rotation and deletion, over the same ClientService as the management API and the CLI (which
 * validates and records the audit events; the admin is the actor).
 *
 * A new secret is shown exactly once. NOTE: the POST that makes it does not render it: a reload
 * of that page would post the form again (a second client, or a second rotation, which ends the
 * grace period of the secret before at once: ClientService.rotateSecret). Instead the
 * POST seals the secret into a short-lived cookie bound to this admin session and this client
 * and redirects (303) to `/clients/:id/secret`, which reads the cookie once, deletes it and shows
 * the secret; a reload, Back or Forward then finds no cookie and says the secret was shown.
 */

const CLIENTS_PATH = `${ADMIN_BASE_PATH}/clients`;

/** Clients this server writes itself at every start: an admin may look at them, not change them. */
const BUILT_IN_CLIENTS: ReadonlySet<string> = new Set(BUILT_IN_CLIENT_IDS);

const GRANT_TYPES = [
  { value: 'authorization_code', label: 'Authorization code', hint: 'People sign in (with PKCE).' },
  { value: 'refresh_token', label: 'Refresh token', hint: 'Stay signed in; needs authorization code.' },
  { value: 'client_credentials', label: 'Client credentials', hint: 'The client acts on its own behalf (needs a secret or keys).' },
] as const;

const AUTH_METHODS = [
  { value: 'client_secret_basic', label: 'Client secret in HTTP Basic (client_secret_basic)' },
  { value: 'client_secret_post', label: 'Client secret in the request body (client_secret_post)' },
  { value: 'private_key_jwt', label: 'Signed JWT with the client’s key (private_key_jwt)' },
  { value: 'none', label: 'None: a public client, PKCE only (none)' },
] as const;

/** What the form shows for each ClientInput field, in the form's order (the error summary follows it). */
const FIELD_LABELS: Record<string, string> = {
  name: 'Display name',
  logoUri: 'Logo URL',
  redirectUris: 'Redirect URIs',
  postLogoutRedirectUris: 'Post-logout redirect URIs',
  backchannelLogoutUri: 'Back-channel logout URI',
  backchannelLogoutSessionRequired: 'Logout token carries the session id',
  grantTypes: 'Grant types',
  applicationType: 'Application type',
  tokenEndpointAuthMethod: 'Token endpoint authentication',
  jwksUri: 'JWKS URI',
  jwks: 'JWKS',
  scopes: 'Allowed scopes',
  requireMfa: 'Require MFA',
  firstParty: 'First-party',
  skipPkce: 'Allow requests without PKCE',
  allowedResources: 'API resources',
  defaultResource: 'Default API resource',
  accessTokenTtl: 'Access token lifetime',
  idTokenTtl: 'ID token lifetime',
  refreshTokenTtl: 'Refresh token lifetime',
};

/** The form as a person typed it: re-shown unchanged when the service refuses it. */
interface ClientFormValues {
  name: string;
  logoUri: string;
  redirectUris: string;
  postLogoutRedirectUris: string;
  backchannelLogoutUri: string;
  backchannelLogoutSessionRequired: boolean;
  grantTypes: string[];
  applicationType: string;
  tokenEndpointAuthMethod: string;
  jwksUri: string;
  jwks: string;
  scopes: string[];
  requireMfa: boolean;
  firstParty: boolean;
  skipPkce: boolean;
  allowedResources: string[];
  defaultResource: string;
  accessTokenTtl: string;
  idTokenTtl: string;
  refreshTokenTtl: string;
}

const NEW_CLIENT_VALUES: ClientFormValues = {
  name: '',
  logoUri: '',
  redirectUris: '',
  postLogoutRedirectUris: '',
  backchannelLogoutUri: '',
  backchannelLogoutSessionRequired: false,
  grantTypes: ['authorization_code', 'refresh_token'],
  applicationType: 'web',
  tokenEndpointAuthMethod: 'client_secret_basic',
  jwksUri: '',
  jwks: '',
  scopes: [...defaults.scopes],
  requireMfa: false,
  firstParty: false,
  skipPkce: false,
  allowedResources: [],
  defaultResource: '',
  accessTokenTtl: '',
  idTokenTtl: '',
  refreshTokenTtl: '',
};

/** Checkbox names: one field each (the form parser refuses a repeated name). */
const grantField = (grant: string) => `grantTypes.${grant}`;
const scopeField = (scope: string) => `scopes.${scope}`;
/**
 * API resource checkboxes are numbered and carry the identifier as their value (an identifier is
 * a URI, long and full of punctuation). Whatever identifiers a posted form names are checked
 * against the registered resources before anything is saved (client-resources.ts).
 */
const resourceField = (index: number) => `resources.${index}`;
const RESOURCE_FIELD = /^resources\.\d{1,3}$/;

function valuesFromView(client: ClientView, jwks: unknown): ClientFormValues {
  const seconds = (n: number | undefined) => (n === undefined ? '' : String(n));
  return {
    name: client.name,
    logoUri: client.logoUri ?? '',
    redirectUris: client.redirectUris.join('\n'),
    postLogoutRedirectUris: client.postLogoutRedirectUris.join('\n'),
    backchannelLogoutUri: client.backchannelLogoutUri ?? '',
    backchannelLogoutSessionRequired: client.backchannelLogoutSessionRequired,
    grantTypes: client.grantTypes,
    applicationType: client.applicationType,
    tokenEndpointAuthMethod: client.tokenEndpointAuthMethod,
    jwksUri: client.jwksUri ?? '',
    jwks: jwks === undefined ? '' : JSON.stringify(jwks, null, 2),
    scopes: client.scopes,
    requireMfa: client.requireMfa,
    firstParty: client.firstParty,
    skipPkce: client.skipPkce,
    allowedResources: client.allowedResources,
    defaultResource: client.defaultResource ?? '',
    accessTokenTtl: seconds(client.accessTokenTtl),
    idTokenTtl: seconds(client.idTokenTtl),
    refreshTokenTtl: seconds(client.refreshTokenTtl),
  };
}

function valuesFromForm(fields: FormFields, knownScopes: readonly string[]): ClientFormValues {
  const text = (key: string) => fields[key] ?? '';
  return {
    name: text('name'),
    logoUri: text('logoUri'),
    redirectUris: text('redirectUris'),
    postLogoutRedirectUris: text('postLogoutRedirectUris'),
    backchannelLogoutUri: text('backchannelLogoutUri'),
    backchannelLogoutSessionRequired: fields.backchannelLogoutSessionRequired !== undefined,
    grantTypes: GRANT_TYPES.map((g) => g.value).filter((g) => fields[grantField(g)] !== undefined),
    applicationType: text('applicationType'),
    tokenEndpointAuthMethod: text('tokenEndpointAuthMethod'),
    jwksUri: text('jwksUri'),
    jwks: text('jwks'),
    scopes: knownScopes.filter((s) => fields[scopeField(s)] !== undefined),
    requireMfa: fields.requireMfa !== undefined,
    firstParty: fields.firstParty !== undefined,
    skipPkce: fields.skipPkce !== undefined,
    allowedResources: [...new Set(Object.entries(fields).filter(([key]) => RESOURCE_FIELD.test(key)).map(([, value]) => value))],
    defaultResource: text('defaultResource'),
    accessTokenTtl: text('accessTokenTtl'),
    idTokenTtl: text('idTokenTtl'),
    refreshTokenTtl: text('refreshTokenTtl'),
  };
}

/**
 * The form as a ClientInput for the service, which checks everything. What cannot even be read
 * (JSON, numbers) gets its own message here, and is passed on as typed so that the service
 * refuses that field too: a form with such a mistake can never be saved.
 */
function inputFromValues(values: ClientFormValues): { input: ClientInput; formErrors: Record<string, string> } {
  const formErrors: Record<string, string> = {};
  const optional = (text: string) => (text.trim() === '' ? undefined : text.trim());
  const seconds = (key: string, text: string): unknown => secondsFromForm(text, key, formErrors);
  let jwks: unknown;
  if (values.jwks.trim() !== '') {
    try {
      jwks = JSON.parse(values.jwks) as unknown;
    } catch {
      formErrors.jwks = 'is not valid JSON: give a JSON object like {"keys": [ … ]}';
      jwks = values.jwks;
    }
  }
  const input = {
    name: values.name,
    logoUri: optional(values.logoUri),
    redirectUris: lines(values.redirectUris),
    postLogoutRedirectUris: lines(values.postLogoutRedirectUris),
    backchannelLogoutUri: optional(values.backchannelLogoutUri),
    backchannelLogoutSessionRequired: values.backchannelLogoutSessionRequired,
    grantTypes: values.grantTypes,
    applicationType: values.applicationType,
    tokenEndpointAuthMethod: values.tokenEndpointAuthMethod,
    jwksUri: optional(values.jwksUri),
    jwks,
    scopes: values.scopes,
    requireMfa: values.requireMfa,
    firstParty: values.firstParty,
    skipPkce: values.skipPkce,
    allowedResources: values.allowedResources,
    defaultResource: optional(values.defaultResource),
    accessTokenTtl: seconds('accessTokenTtl', values.accessTokenTtl),
    idTokenTtl: seconds('idTokenTtl', values.idTokenTtl),
    refreshTokenTtl: seconds('refreshTokenTtl', values.refreshTokenTtl),
  };
  // Values the service has not checked yet (the select, radios, JSON): it refuses what is wrong.
  return { input: input as unknown as ClientInput, formErrors };
}

/** "3 seconds", "1 day", "2 hours 30 minutes": how long a grace period is, in words. */
function formatDuration(totalSeconds: number): string {
  return totalSeconds <= 0 ? 'no time at all' : durationInWords(totalSeconds);
}

function formatTime(date: Date | undefined): string {
  return date ? utcTime(date) : '';
}

function clientHref(clientId: string, rest = ''): string {
  return `${CLIENTS_PATH}/${encodeURIComponent(clientId)}${rest}`;
}

/** How the client authenticates, in words. */
function secretStatus(client: ClientView): string {
  if (client.tokenEndpointAuthMethod === 'none') return 'No secret: a public client (PKCE only).';
  if (!usesSecret(client.tokenEndpointAuthMethod)) return `No secret: authenticates with ${client.tokenEndpointAuthMethod}.`;
  if (!client.secretRotatedAt) return 'Set when the client was made (never rotated).';
  const rotated = `Rotated at ${formatTime(client.secretRotatedAt)}`;
  return client.previousSecretExpiresAt
    ? `${rotated}, previous secret valid until ${formatTime(client.previousSecretExpiresAt)}.`
    : `${rotated}; the previous secret no longer works.`;
}

function rowFor(client: ClientView) {
  return {
    clientId: client.clientId,
    href: clientHref(client.clientId),
    name: client.name,
    logoUri: client.logoUri,
    type: client.public ? 'public' : 'confidential',
    grantTypes: client.grantTypes,
    tags: [
      ...(BUILT_IN_CLIENTS.has(client.clientId) ? ['built-in'] : []),
      ...(client.dynamic ? ['registered dynamically'] : []),
      ...(client.requireMfa ? ['requires MFA'] : []),
      ...(client.firstParty ? ['first-party'] : []),
      ...(client.skipPkce ? ['PKCE optional'] : []),
    ],
  };
}

/** The client's API resources by name; one no longer registered says so. */
function resourcesOf(client: ClientView, registered: readonly ApiResourceView[]) {
  const byId = new Map(registered.map((r) => [r.identifier, r]));
  const entry = (identifier: string) => {
    const resource = byId.get(identifier);
    return { identifier, name: resource?.name, href: resource ? apiResourceHref(identifier) : undefined };
  };
  return {
    allowedResources: client.allowedResources.map(entry),
    defaultResource: client.defaultResource === undefined ? undefined : entry(client.defaultResource),
  };
}

function detailFor(client: ClientView, config: Pick<Config, 'ttl'>, registered: readonly ApiResourceView[]) {
  return {
    ...rowFor(client),
    builtIn: BUILT_IN_CLIENTS.has(client.clientId),
    redirectUris: client.redirectUris,
    postLogoutRedirectUris: client.postLogoutRedirectUris,
    backchannelLogoutUri: client.backchannelLogoutUri,
    backchannelLogoutSessionRequired: client.backchannelLogoutSessionRequired,
    responseTypes: client.responseTypes,
    applicationType: client.applicationType,
    tokenEndpointAuthMethod: client.tokenEndpointAuthMethod,
    jwksUri: client.jwksUri,
    hasJwks: client.hasJwks,
    scopes: client.scopes,
    requireMfa: client.requireMfa,
    firstParty: client.firstParty,
    skipPkce: client.skipPkce,
    ...resourcesOf(client, registered),
    dynamic: client.dynamic,
    accessTokenTtl: lifetimeText(client.accessTokenTtl, config.ttl.accessToken),
    idTokenTtl: lifetimeText(client.idTokenTtl, config.ttl.idToken),
    refreshTokenTtl: lifetimeText(client.refreshTokenTtl, config.ttl.refreshTokenIdle),
    usesSecret: usesSecret(client.tokenEndpointAuthMethod),
    secretStatus: secretStatus(client),
    createdAt: formatTime(client.createdAt),
    updatedAt: formatTime(client.updatedAt),
  };
}

/** Fixed notices by key: nothing from the query string is shown as text. */
const NOTICES: Record<string, string> = {
  created: 'The client was created. It has no secret, so there is nothing to copy.',
  updated: 'The changes were saved. They apply to the client’s next request.',
  'secret-dropped': 'The changes were saved. The client no longer uses a secret: its old secrets stopped working.',
  deleted: 'The client was deleted, with every code, token and grant issued to it.',
};

const noticeFor = (query: unknown) => noticeFrom(NOTICES, query);

const listQuery = z.object({
  q: z.string().max(200).optional(),
  cursor: z.string().max(1000).optional(),
});

const clientIdParam = z.string().min(1).max(200).refine(isStorableString);

/** One shown-once secret on its way from the POST to the page that shows it. */
interface PendingSecret {
  kind: 'created' | 'updated' | 'rotated';
  secret: string;
  /** ISO time until which the previous secret still works (rotations). */
  previousSecretExpiresAt?: string | undefined;
}

const pendingSecretSchema = z.object({
  kind: z.enum(['created', 'updated', 'rotated']),
  secret: z.string().min(1),
  previousSecretExpiresAt: z.string().optional(),
});

const SECRET_COOKIE = 'admin-secret-once';
/** Long enough for a redirect on a slow connection; the secret is not kept anywhere else readable. */
const SECRET_COOKIE_MAX_AGE_MS = 5 * 60 * 1000;

function pendingSecrets(secretBox: SecretBox) {
  // Bound to this admin's SSO session and this client: another session, or another client's
  // page, cannot open it.
  const context = (ctx: ConsoleContext, clientId: string) => `console_secret_once:${ctx.state.admin.sessionUid}:${clientId}`;
  const cookieOptions = (ctx: ConsoleContext, clientId: string) => ({
    httpOnly: true,
    sameSite: 'strict' as const,
    secure: ctx.secure,
    path: clientHref(clientId, '/secret'),
    overwrite: true,
  });
  return {
    /** Keeps the secret for the page and redirects there. */
    showOnce(ctx: ConsoleContext, clientId: string, pending: PendingSecret): void {
      const sealed = secretBox.seal(JSON.stringify(pending), context(ctx, clientId));
      ctx.cookies.set(SECRET_COOKIE, sealed, { ...cookieOptions(ctx, clientId), maxAge: SECRET_COOKIE_MAX_AGE_MS });
      ctx.status = 303;
      ctx.redirect(clientHref(clientId, '/secret'));
    },
    /** The secret waiting for this page, once: the cookie is deleted whatever it held. */
    take(ctx: ConsoleContext, clientId: string): PendingSecret | undefined {
      const sealed = ctx.cookies.get(SECRET_COOKIE);
      if (sealed === undefined) return undefined;
      ctx.cookies.set(SECRET_COOKIE, null, cookieOptions(ctx, clientId));
      try {
        return pendingSecretSchema.parse(JSON.parse(secretBox.open(sealed, context(ctx, clientId))));
      } catch {
        return undefined;
      }
    },
  };
}

/** What loadClient leaves for the steps after it. */
type ClientPageState = ConsoleState & { client: ClientView };

export const registerClientPages: ConsolePages = (router, deps, kit) => {
  const { clients, resources, config, secretBox } = deps;
  const knownScopes = [...defaults.scopes, ...optionalProfileScopes(config.profileScopes), ...config.adminApi.scopes];
  const secrets = pendingSecrets(secretBox);
  const graceSeconds = config.clientSecretGracePeriodSeconds;
  // An administrator in the console holds every management API scope: kit.requireAdmin checked
  // the admin role (and a second factor) on this request. So the console acts with full authority.
  const authority = (ctx: ConsoleContext) => fullAuthority(kit.actor(ctx));

  const loadClient: ConsoleStep = async function loadClient(ctx, next) {
    const parsed = clientIdParam.safeParse(ctx.params.id);
    const client = parsed.success ? await clients.get(parsed.data) : undefined;
    if (!client) throw new AppError('client.not_found', { clientId: String(ctx.params.id) });
    (ctx.state as ClientPageState).client = client;
    await next();
  };
  const current = (ctx: ConsoleContext) => (ctx.state as ClientPageState).client;

  // NOTE: the built-in clients are rewritten at every start (account-client.ts, admin-client.ts):
  // an edit would be lost, and a deletion or a public-to-secret switch would break the pages
  // that sign people in to /account and /admin. The service refuses too; refusing here first
  // gives the console's own page and keeps the forms away from them.
  const refuseBuiltIn: ConsoleStep = async function refuseBuiltIn(ctx, next) {
    const client = current(ctx);
    if (BUILT_IN_CLIENTS.has(client.clientId)) {
      throw new AppError('client.built_in', { name: client.name });
    }
    await next();
  };

  const refuseWithoutSecret: ConsoleStep = async function refuseWithoutSecret(ctx, next) {
    const client = current(ctx);
    if (!usesSecret(client.tokenEndpointAuthMethod)) {
      throw new AppError('client.nothing_to_rotate', { method: client.tokenEndpointAuthMethod });
    }
    await next();
  };

  const renderForm = async (
    ctx: ConsoleContext,
    options: { mode: 'create' | 'edit'; values: ClientFormValues; errors?: Record<string, string>; client?: ClientView },
    status = 200,
  ) => {
    const errors = options.errors ?? {};
    const registered = await resources.list();
    const known = new Set(registered.map((r) => r.identifier));
    // Registered APIs, then any the client (or the posted form) names that are not registered
    // (any more): shown, so that saving never drops one silently; the check refuses them.
    const resourceChoices = [
      ...registered.map((r) => ({ identifier: r.identifier, name: r.name, registered: true })),
      ...options.values.allowedResources.filter((id) => !known.has(id)).map((identifier) => ({ identifier, name: undefined, registered: false })),
    ].map((choice, index) => ({ ...choice, field: resourceField(index), id: `f-resource-${index}` }));
    return kit.render(
      ctx,
      'admin/clients/form',
      'clients',
      {
        title: options.mode === 'create' ? 'New client' : `Edit ${options.client?.name ?? 'client'}`,
        mode: options.mode,
        action: options.mode === 'create' ? CLIENTS_PATH : clientHref(options.client?.clientId ?? ''),
        cancelHref: options.mode === 'create' ? CLIENTS_PATH : clientHref(options.client?.clientId ?? ''),
        client: options.client ? { clientId: options.client.clientId, name: options.client.name } : undefined,
        values: options.values,
        errors,
        errorSummary: errorSummary(errors, FIELD_LABELS, 'The client'),
        grantTypes: GRANT_TYPES.map((g) => ({ ...g, field: grantField(g.value), id: `f-grant-${g.value}` })),
        authMethods: AUTH_METHODS,
        scopes: knownScopes.map((scope) => ({
          value: scope,
          field: scopeField(scope),
          id: `f-scope-${scope.replace(/[^A-Za-z0-9_-]/g, '-')}`,
          admin: config.adminApi.scopes.includes(scope),
        })),
        resources: resourceChoices,
        resourcesHref: `${ADMIN_BASE_PATH}/api-resources`,
        ttlDefaults: {
          accessToken: config.ttl.accessToken,
          idToken: config.ttl.idToken,
          refreshToken: config.ttl.refreshTokenIdle,
        },
        ttlMaxima: {
          accessToken: CLIENT_TTL_MAXIMA.accessToken,
          idToken: CLIENT_TTL_MAXIMA.idToken,
          refreshToken: config.ttl.refreshTokenAbsolute,
        },
      },
      status,
    );
  };

  /** Runs a create or an update; a refusal re-renders the form with each message beside its field. */
  const saveOr400 = async <T>(
    ctx: ConsoleContext,
    mode: 'create' | 'edit',
    save: (input: ClientInput) => Promise<T>,
    client?: ClientView,
  ): Promise<T | undefined> => {
    const values = valuesFromForm(ctx.state.form, knownScopes);
    const { input, formErrors } = inputFromValues(values);
    const unknownResources = await unknownResourceFields(resources, input);
    if (Object.keys(unknownResources).length > 0) {
      await renderForm(ctx, { mode, values, errors: { ...unknownResources, ...formErrors }, ...(client ? { client } : {}) }, 400);
      return undefined;
    }
    try {
      return await save(input);
    } catch (err) {
      if (!(err instanceof ClientValidationError)) throw err;
      await renderForm(ctx, { mode, values, errors: { ...err.fields, ...formErrors }, ...(client ? { client } : {}) }, 400);
      return undefined;
    }
  };

  router.get('/clients', kit.requireAdmin, async function clientList(ctx) {
    const parsed = listQuery.safeParse(ctx.query);
    const query = parsed.success ? parsed.data : {};
    const search = query.q?.trim() ?? '';
    const page = await clients.list({ search: search || undefined, cursor: query.cursor || undefined, limit: 25 });
    const keep = new URLSearchParams(search ? { q: search } : {});
    const next = page.nextCursor ? new URLSearchParams(keep) : undefined;
    next?.set('cursor', page.nextCursor ?? '');
    await kit.render(
      ctx,
      'admin/clients/list',
      'clients',
      {
        title: 'Clients',
        search,
        total: page.total,
        notice: noticeFor(ctx.query.notice),
        invalidQuery: !parsed.success,
        clients: page.clients.map(rowFor),
        newHref: `${CLIENTS_PATH}/new`,
        nextHref: next ? `${CLIENTS_PATH}?${next.toString()}` : undefined,
        firstHref: query.cursor ? `${CLIENTS_PATH}${search ? `?${keep.toString()}` : ''}` : undefined,
      },
      parsed.success ? 200 : 400,
    );
  });

  router.get('/clients/new', kit.requireAdmin, async function newClientForm(ctx) {
    await renderForm(ctx, { mode: 'create', values: NEW_CLIENT_VALUES });
  });

  router.post('/clients', ...kit.post, async function createClient(ctx) {
    const created = await saveOr400(ctx, 'create', (input) => clients.create(input, authority(ctx)));
    if (!created) return;
    if (created.clientSecret) {
      secrets.showOnce(ctx, created.clientId, { kind: 'created', secret: created.clientSecret });
    } else {
      kit.redirect(ctx, `${clientHref(created.clientId)}?notice=created`);
    }
  });

  router.get('/clients/:id', kit.requireAdmin, loadClient, async function clientDetail(ctx) {
    const client = current(ctx);
    await kit.render(ctx, 'admin/clients/detail', 'clients', {
      title: client.name,
      client: detailFor(client, config, await resources.list()),
      notice: noticeFor(ctx.query.notice),
      editHref: clientHref(client.clientId, '/edit'),
      rotateHref: clientHref(client.clientId, '/rotate-secret'),
      deleteHref: clientHref(client.clientId, '/delete'),
      listHref: CLIENTS_PATH,
    });
  });

  router.get('/clients/:id/secret', kit.requireAdmin, loadClient, async function shownOnceSecret(ctx) {
    const client = current(ctx);
    const pending = secrets.take(ctx, client.clientId);
    const previousUntil = pending?.previousSecretExpiresAt ? new Date(pending.previousSecretExpiresAt) : undefined;
    await kit.render(ctx, 'admin/clients/secret', 'clients', {
      title: pending ? 'Copy the client secret' : 'Client secret',
      client: { clientId: client.clientId, name: client.name, href: clientHref(client.clientId) },
      shown: pending !== undefined,
      kind: pending?.kind,
      secret: pending?.secret,
      previousSecretExpiresAt: previousUntil ? formatTime(previousUntil) : undefined,
      gracePeriod: formatDuration(graceSeconds),
      rotateHref: usesSecret(client.tokenEndpointAuthMethod) && !BUILT_IN_CLIENTS.has(client.clientId) ? clientHref(client.clientId, '/rotate-secret') : undefined,
    });
  });

  router.get('/clients/:id/edit', kit.requireAdmin, loadClient, refuseBuiltIn, async function editClientForm(ctx) {
    const client = current(ctx);
    // The JWKS itself is not in the view (only whether there is one): read it from the metadata.
    const jwks = client.hasJwks ? (await clients.find(client.clientId))?.jwks : undefined;
    await renderForm(ctx, { mode: 'edit', values: valuesFromView(client, jwks), client });
  });

  router.post('/clients/:id', ...kit.post, loadClient, refuseBuiltIn, async function updateClient(ctx) {
    const client = current(ctx);
    const updated = await saveOr400(ctx, 'edit', (input) => clients.update(client.clientId, input, authority(ctx)), client);
    if (!updated) return;
    if (updated.clientSecret) {
      // A switch to a method with a secret made a new one.
      secrets.showOnce(ctx, client.clientId, { kind: 'updated', secret: updated.clientSecret });
      return;
    }
    const dropped = usesSecret(client.tokenEndpointAuthMethod) && !usesSecret(updated.tokenEndpointAuthMethod);
    kit.redirect(ctx, `${clientHref(client.clientId)}?notice=${dropped ? 'secret-dropped' : 'updated'}`);
  });

  router.get('/clients/:id/rotate-secret', kit.requireAdmin, loadClient, refuseBuiltIn, refuseWithoutSecret, async function confirmRotate(ctx) {
    const client = current(ctx);
    await kit.render(ctx, 'admin/clients/confirm-rotate', 'clients', {
      title: `Rotate the secret of ${client.name}`,
      client: { clientId: client.clientId, name: client.name, href: clientHref(client.clientId) },
      action: clientHref(client.clientId, '/rotate-secret'),
      gracePeriodSeconds: graceSeconds,
      gracePeriod: formatDuration(graceSeconds),
      // A second rotation within the grace period ends the secret before the current one at once.
      previousStillValid: client.previousSecretExpiresAt ? formatTime(client.previousSecretExpiresAt) : undefined,
    });
  });

  router.post('/clients/:id/rotate-secret', ...kit.post, loadClient, refuseBuiltIn, refuseWithoutSecret, async function rotateSecret(ctx) {
    const client = current(ctx);
    const rotated = await clients.rotateSecret(client.clientId, authority(ctx));
    secrets.showOnce(ctx, client.clientId, {
      kind: 'rotated',
      secret: rotated.clientSecret,
      previousSecretExpiresAt: graceSeconds > 0 ? rotated.previousSecretExpiresAt.toISOString() : undefined,
    });
  });

  router.get('/clients/:id/delete', kit.requireAdmin, loadClient, refuseBuiltIn, async function confirmDelete(ctx) {
    const client = current(ctx);
    await kit.render(ctx, 'admin/clients/confirm-delete', 'clients', {
      title: `Delete ${client.name}`,
      client: { clientId: client.clientId, name: client.name, href: clientHref(client.clientId) },
      action: clientHref(client.clientId, '/delete'),
    });
  });

  router.post('/clients/:id/delete', ...kit.post, loadClient, refuseBuiltIn, async function deleteClient(ctx) {
    const client = current(ctx);
    if (!(await clients.remove(client.clientId, authority(ctx)))) {
      throw new AppError('client.not_found', { clientId: client.clientId });
    }
    kit.redirect(ctx, `${CLIENTS_PATH}?notice=deleted`);
  });
};
