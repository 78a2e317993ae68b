import { z } from 'zod';

import { fullAuthority } from '../../clients/admin-authority.js';
import type { ClientService, ClientView } from '../../clients/client.service.js';
import type { Config } from '../../config/config.js';
import { isStorableString } from '../../db/storable.js';
import { AppError } from '../../http/app-error.js';
import type { FormFields } from '../../http/form-body.js';
import type { ApiResourceInput, ApiResourceView, NewApiResourceInput } from '../../resources/api-resource.service.js';
import {
  ApiResourceValidationError,
  MAX_RESOURCE_SCOPES,
  MAX_RESOURCE_TOKEN_TTL,
  MIN_RESOURCE_TOKEN_TTL,
} from '../../resources/api-resource.service.js';
import { ADMIN_BASE_PATH } from '../admin-client.js';
import type { ConsoleContext, ConsoleState, ConsoleStep } from './console-kit.js';
import { lifetimeText, noticeFrom, utcTime } from './console-kit.js';
import { errorSummary, lines, secondsFromForm } from './form-values.js';
import type { ConsolePages } from './console.routes.js';

/**
 * The console's API resources section (RFC 8707): the apps' own APIs that access tokens can be
 * for. List, detail, create, edit (the identifier never changes: tokens already issued name it)
 * and delete after a confirmation, over the same ApiResourceService as the management API and
 * the command line, which validates and records the audit events (the admin is the actor).
 *
 * Without JavaScript, the scopes are one textarea: a line per scope, its name, a space, then
 * the description people read on the consent page. A scope name cannot contain a space
 * (RFC 6749 §3.3), so the first space is where the description starts, whatever the name holds
 * (`notes:read`, `https://…/read`).
 */

export const API_RESOURCES_PATH = `${ADMIN_BASE_PATH}/api-resources`;

export function apiResourceHref(identifier: string, rest = ''): string {
  return `${API_RESOURCES_PATH}/${encodeURIComponent(identifier)}${rest}`;
}

/** The form's fields in its order (the error summary follows it), with their labels. */
const FIELD_LABELS: Record<string, string> = {
  identifier: 'Identifier',
  name: 'Display name',
  tokenFormat: 'Access token format',
  accessTokenTtl: 'Access token lifetime',
  scopes: 'Scopes',
  introspectionClients: 'Clients that may introspect',
};

/** The form as a person typed it: re-shown unchanged when the service refuses it. */
interface ResourceFormValues {
  identifier: string;
  name: string;
  tokenFormat: string;
  accessTokenTtl: string;
  scopes: string;
  introspectionClients: string;
}

const NEW_RESOURCE_VALUES: ResourceFormValues = {
  identifier: '',
  name: '',
  tokenFormat: 'jwt',
  accessTokenTtl: '',
  scopes: '',
  introspectionClients: '',
};

/** Longer than any valid form: a huge field is refused by the service, not echoed back whole. */
const MAX_FIELD = 20_000;

function valuesFromForm(fields: FormFields): ResourceFormValues {
  const text = (key: string) => (fields[key] ?? '').slice(0, MAX_FIELD);
  return {
    identifier: text('identifier'),
    name: text('name'),
    tokenFormat: text('tokenFormat'),
    accessTokenTtl: text('accessTokenTtl'),
    scopes: text('scopes'),
    introspectionClients: text('introspectionClients'),
  };
}

function valuesFromView(resource: ApiResourceView): ResourceFormValues {
  return {
    identifier: resource.identifier,
    name: resource.name,
    tokenFormat: resource.tokenFormat,
    accessTokenTtl: resource.accessTokenTtl === undefined ? '' : String(resource.accessTokenTtl),
    scopes: resource.scopes.map((s) => `${s.name} ${s.description}`).join('\n'),
    introspectionClients: resource.introspectionClients.join('\n'),
  };
}

/**
 * The form as the service's input; the service checks everything. A lifetime that is not even a
 * number gets its own message here and is passed on as typed, so that the service refuses it too.
 */
function inputFromValues(values: ResourceFormValues): { input: NewApiResourceInput; formErrors: Record<string, string> } {
  const formErrors: Record<string, string> = {};
  const accessTokenTtl = secondsFromForm(values.accessTokenTtl, 'accessTokenTtl', formErrors);
  const scopes = lines(values.scopes).map((line) => {
    const space = line.search(/\s/);
    return space === -1 ? { name: line, description: '' } : { name: line.slice(0, space), description: line.slice(space + 1).trim() };
  });
  const input = {
    identifier: values.identifier,
    name: values.name,
    tokenFormat: values.tokenFormat,
    accessTokenTtl,
    scopes,
    introspectionClients: lines(values.introspectionClients),
  };
  // The radio and the lifetime as posted: the service refuses what is wrong.
  return { input: input as unknown as NewApiResourceInput, formErrors };
}

/**
 * The service's fields (`scopes.2.description`, `introspectionClients.0`) under the form's
 * fields: a scope or client is a line of its textarea, counted from 1.
 */
function formFieldErrors(fields: Record<string, string>): Record<string, string> {
  const out: Record<string, string[]> = {};
  for (const [key, message] of Object.entries(fields)) {
    const [field = 'input', index] = key.split('.');
    const where = index !== undefined && /^\d+$/.test(index) ? `line ${Number(index) + 1}: ` : '';
    (out[Object.hasOwn(FIELD_LABELS, field) ? field : 'input'] ??= []).push(`${where}${message}`);
  }
  return Object.fromEntries(Object.entries(out).map(([key, messages]) => [key, messages.join('; ')]));
}

const FORMAT_LABELS: Record<string, string> = {
  jwt: 'JWT (RFC 9068): the API checks it against this server’s keys',
  opaque: 'Opaque: the API asks this server about it (introspection)',
};

function lifetime(resource: ApiResourceView, config: Pick<Config, 'ttl'>): string {
  return lifetimeText(resource.accessTokenTtl, config.ttl.accessToken);
}

function rowFor(resource: ApiResourceView, config: Pick<Config, 'ttl'>) {
  return {
    identifier: resource.identifier,
    href: apiResourceHref(resource.identifier),
    name: resource.name,
    tokenFormat: resource.tokenFormat,
    scopeCount: resource.scopes.length,
    lifetime: lifetime(resource, config),
  };
}

/** Fixed notices by key: nothing from the query string is shown as text. */
const NOTICES: Record<string, string> = {
  created: 'The API resource was registered. Clients can now be allowed to get tokens for it (on each client’s form).',
  updated: 'The changes were saved. Tokens already issued keep what they were issued with.',
  deleted: 'The API resource was deleted: no new tokens are issued for it.',
};

const noticeFor = (query: unknown) => noticeFrom(NOTICES, query);

const identifierParam = z.string().min(1).max(2000).refine(isStorableString);

/** Every client that names this resource (admin pages only: the clients are read page by page). */
async function clientsNaming(clients: ClientService, identifier: string): Promise<{ name: string; clientId: string; href: string }[]> {
  const found: ClientView[] = [];
  let cursor: string | undefined;
  do {
    const page = await clients.list({ limit: 200, cursor });
    found.push(...page.clients.filter((c) => c.allowedResources.includes(identifier)));
    cursor = page.nextCursor;
  } while (cursor);
  return found.map((c) => ({ name: c.name, clientId: c.clientId, href: `${ADMIN_BASE_PATH}/clients/${encodeURIComponent(c.clientId)}` }));
}

type ResourcePageState = ConsoleState & { resource: ApiResourceView };

export const registerApiResourcePages: ConsolePages = (router, deps, kit) => {
  const { resources, clients, config } = deps;
  // An administrator in the console holds every management API scope: kit.requireAdmin checked
  // the admin role (and a second factor) on this request. So the console acts with full authority.
  const authority = (ctx: ConsoleContext) => fullAuthority(kit.actor(ctx));

  const loadResource: ConsoleStep = async function loadResource(ctx, next) {
    const parsed = identifierParam.safeParse(ctx.params.id);
    const resource = parsed.success ? await resources.get(parsed.data) : undefined;
    if (!resource) throw new AppError('resource.not_found', { identifier: String(ctx.params.id) });
    (ctx.state as ResourcePageState).resource = resource;
    await next();
  };
  const current = (ctx: ConsoleContext) => (ctx.state as ResourcePageState).resource;

  const renderForm = (
    ctx: ConsoleContext,
    options: { mode: 'create' | 'edit'; values: ResourceFormValues; errors?: Record<string, string>; resource?: ApiResourceView },
    status = 200,
  ) => {
    const errors = options.errors ?? {};
    const resource = options.resource;
    return kit.render(
      ctx,
      'admin/api-resources/form',
      'api-resources',
      {
        title: resource ? `Edit ${resource.name}` : 'New API resource',
        mode: options.mode,
        action: resource ? apiResourceHref(resource.identifier) : API_RESOURCES_PATH,
        cancelHref: resource ? apiResourceHref(resource.identifier) : API_RESOURCES_PATH,
        resource: resource ? { identifier: resource.identifier, name: resource.name } : undefined,
        values: options.values,
        errors,
        errorSummary: errorSummary(errors, FIELD_LABELS, 'The API resource'),
        formats: Object.entries(FORMAT_LABELS).map(([value, label]) => ({ value, label, id: `f-format-${value}` })),
        ttlDefault: config.ttl.accessToken,
        ttlMin: MIN_RESOURCE_TOKEN_TTL,
        ttlMax: MAX_RESOURCE_TOKEN_TTL,
        maxScopes: MAX_RESOURCE_SCOPES,
      },
      status,
    );
  };

  /** Runs a create or an update; a refusal re-renders the form with each message beside its field. */
  const saveOr400 = async (
    ctx: ConsoleContext,
    mode: 'create' | 'edit',
    save: (input: NewApiResourceInput) => Promise<ApiResourceView>,
    resource?: ApiResourceView,
  ): Promise<ApiResourceView | undefined> => {
    // The identifier is never taken from an edit form: it does not change.
    const values = { ...valuesFromForm(ctx.state.form), ...(resource ? { identifier: resource.identifier } : {}) };
    const { input, formErrors } = inputFromValues(values);
    try {
      // A lifetime that is not a number goes to the service as typed, which refuses it with
      // every other field's problem: such a form is never saved.
      return await save(input);
    } catch (err) {
      const again = (errors: Record<string, string>, status: number) => renderForm(ctx, { mode, values, errors, ...(resource ? { resource } : {}) }, status);
      if (err instanceof ApiResourceValidationError) {
        await again({ ...formFieldErrors(err.fields), ...formErrors }, 400);
        return undefined;
      }
      if (err instanceof AppError && err.code === 'resource.exists') {
        await again({ identifier: 'is already registered: edit that API resource instead' }, 409);
        return undefined;
      }
      throw err;
    }
  };

  router.get('/api-resources', kit.requireAdmin, async function apiResourceList(ctx) {
    const all = await resources.list();
    await kit.render(ctx, 'admin/api-resources/list', 'api-resources', {
      title: 'API resources',
      notice: noticeFor(ctx.query.notice),
      resources: all.map((r) => rowFor(r, config)),
      newHref: `${API_RESOURCES_PATH}/new`,
    });
  });

  router.get('/api-resources/new', kit.requireAdmin, async function newApiResourceForm(ctx) {
    await renderForm(ctx, { mode: 'create', values: NEW_RESOURCE_VALUES });
  });

  router.post('/api-resources', ...kit.post, async function createApiResource(ctx) {
    const created = await saveOr400(ctx, 'create', (input) => resources.create(input, authority(ctx)));
    if (created) kit.redirect(ctx, `${apiResourceHref(created.identifier)}?notice=created`);
  });

  router.get('/api-resources/:id', kit.requireAdmin, loadResource, async function apiResourceDetail(ctx) {
    const resource = current(ctx);
    await kit.render(ctx, 'admin/api-resources/detail', 'api-resources', {
      title: resource.name,
      notice: noticeFor(ctx.query.notice),
      resource: {
        ...rowFor(resource, config),
        formatLabel: FORMAT_LABELS[resource.tokenFormat],
        scopes: resource.scopes,
        introspectionClients: resource.introspectionClients,
        createdAt: utcTime(resource.createdAt),
        updatedAt: utcTime(resource.updatedAt),
      },
      clients: await clientsNaming(clients, resource.identifier),
      editHref: apiResourceHref(resource.identifier, '/edit'),
      deleteHref: apiResourceHref(resource.identifier, '/delete'),
      listHref: API_RESOURCES_PATH,
    });
  });

  router.get('/api-resources/:id/edit', kit.requireAdmin, loadResource, async function editApiResourceForm(ctx) {
    const resource = current(ctx);
    await renderForm(ctx, { mode: 'edit', values: valuesFromView(resource), resource });
  });

  router.post('/api-resources/:id', ...kit.post, loadResource, async function updateApiResource(ctx) {
    const resource = current(ctx);
    const updated = await saveOr400(
      ctx,
      'edit',
      ({ identifier: _fixed, ...input }: NewApiResourceInput) => resources.update(resource.identifier, input as ApiResourceInput, authority(ctx)),
      resource,
    );
    if (updated) kit.redirect(ctx, `${apiResourceHref(resource.identifier)}?notice=updated`);
  });

  router.get('/api-resources/:id/delete', kit.requireAdmin, loadResource, async function confirmDeleteApiResource(ctx) {
    const resource = current(ctx);
    await kit.render(ctx, 'admin/api-resources/confirm-delete', 'api-resources', {
      title: `Delete ${resource.name}`,
      resource: { identifier: resource.identifier, name: resource.name, href: apiResourceHref(resource.identifier) },
      clients: await clientsNaming(clients, resource.identifier),
      action: apiResourceHref(resource.identifier, '/delete'),
    });
  });

  router.post('/api-resources/:id/delete', ...kit.post, loadResource, async function deleteApiResource(ctx) {
    const resource = current(ctx);
    if (!(await resources.remove(resource.identifier, authority(ctx)))) {
      throw new AppError('resource.not_found', { identifier: resource.identifier });
    }
    kit.redirect(ctx, `${API_RESOURCES_PATH}?notice=deleted`);
  });
};
