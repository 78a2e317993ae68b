import { ADMIN_CLIENT_ID } from '../admin-client.js';
import { isAdminScope, mintAdminApiToken } from '../api/api-tokens.js';
import type { ConsoleContext } from './console-kit.js';
import type { ConsolePages } from './console.routes.js';

/**
 * A management API token for the signed-in admin: pick scopes, get an access token for
 * /api/admin/v1 (mintAdminApiToken), shown once. The audit event names the scopes, never the
 * token.
 */

const SCOPE_DESCRIPTIONS: Record<string, string> = {
  'admin:clients:read': 'Read clients',
  'admin:clients:write': 'Create, change and delete clients, rotate secrets',
  'admin:clients:grant':
    'Give clients management API scopes (only those this token also has) or first-party status; change, rotate the secret of or delete such clients',
  'admin:users:read': 'Read users',
  'admin:users:write': 'Create, change, disable and delete users',
  'admin:audit:read': 'Read and export the audit log',
};

/**
 * NOTE: one checkbox per scope, each under its own name (`scope-<scope>`): the console's form
 * parser refuses a field sent twice, so the usual repeated `scope` field cannot be used.
 */
const fieldName = (scope: string) => `scope-${scope}`;

export const registerApiTokenPages: ConsolePages = (router, deps, kit) => {
  const { config, provider, audit } = deps;
  const scopes = config.adminApi.scopes.filter((s) => isAdminScope(config, s));

  const renderForm = async (ctx: ConsoleContext, checked: ReadonlySet<string>, error?: string) => {
    await kit.render(
      ctx,
      'admin/api-token',
      'api-token',
      {
        title: 'API token',
        scopes: scopes.map((scope) => ({ scope, name: fieldName(scope), description: SCOPE_DESCRIPTIONS[scope] ?? '', checked: checked.has(scope) })),
        error,
        apiBase: config.adminApi.resource,
        accessTokenTtl: config.ttl.accessToken,
      },
      error ? 400 : 200,
    );
  };

  router.get('/api-token', kit.requireAdmin, async function apiTokenForm(ctx) {
    // Reading is the common case; writing is a deliberate choice.
    await renderForm(ctx, new Set(scopes.filter((s) => s.endsWith(':read'))));
  });

  router.post('/api-token', ...kit.post, async function mintApiToken(ctx) {
    const chosen = scopes.filter((scope) => ctx.state.form[fieldName(scope)] === 'on');
    if (chosen.length === 0) {
      await renderForm(ctx, new Set(), 'Choose at least one scope.');
      return;
    }
    const { account } = ctx.state.admin;
    const { token, expiresIn } = await mintAdminApiToken(provider, config, { accountId: account.id, scopes: chosen });
    const expiresAt = new Date(Date.now() + expiresIn * 1000);
    // The scopes and the lifetime, never the token.
    await audit.record({
      action: 'api_token.issued',
      outcome: 'success',
      actor: kit.actor(ctx),
      target: { type: 'account', id: account.id, label: account.email },
      clientId: ADMIN_CLIENT_ID,
      details: { scopes: chosen, expiresIn },
    });
    // Shown once, rendered directly (no redirect): pages.render sets Cache-Control: no-store.
    await kit.render(ctx, 'admin/api-token', 'api-token', {
      title: 'API token',
      minted: {
        token,
        scopes: chosen,
        expiresAt,
        curlExample: `curl -H "Authorization: Bearer ${token}" ${config.adminApi.resource}/clients`,
      },
      apiBase: config.adminApi.resource,
    });
  });
};
