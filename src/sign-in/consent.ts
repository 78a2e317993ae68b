import { AppError } from '../http/app-error.js';
import type { ConsentPreview } from '../oidc/policy.js';
import type { SignInKit } from './sign-in-kit.js';
import type { SignInContext } from './sign-in-context.js';
import { findResource } from '../oidc/resource-servers.js';
import { describeClaim, describeScope } from './scope-descriptions.js';

type ConsentDetails = ConsentPreview;

/** One API the client asks access to, as the consent page shows it. */
export interface ConsentApi {
  identifier: string;
  name: string;
  scopes: { name: string; description: string }[];
}

/**
 * Consent: what the client asks for, and the grant when the person allows it. Not a strategy: it
 * proves nothing. Two places ask: the provider's `consent` prompt (a session that signed in
 * earlier meets a client or scope it has not allowed), and the sign-in's own last step (`consent`,
 * a browser signing in afresh), which asks what the login prompt's consent preview lists and
 * hands the provider login and consent in one result.
 */
export function createConsent(kit: SignInKit) {
  const { provider, audit, pages, resources, config } = kit.deps;

  /**
   * The scopes asked of each API, with the API's display name and the descriptions its admin
   * wrote; only the scopes the API (still) defines. The management API's come from our own list.
   */
  const apisOf = async (details: ConsentDetails): Promise<ConsentApi[]> => {
    const apis: ConsentApi[] = [];
    for (const [identifier, asked] of Object.entries(details.missingResourceScopes ?? {})) {
      if (identifier === config.adminApi.resource) {
        apis.push({ identifier, name: 'Management API', scopes: asked.map(describeScope) });
        continue;
      }
      const resource = await findResource(resources, identifier);
      if (!resource) continue;
      const defined = new Map(resource.scopes.map((scope) => [scope.name, scope.description]));
      const scopes = asked.flatMap((name) => {
        const description = defined.get(name);
        return description === undefined ? [] : [{ name, description }];
      });
      if (scopes.length > 0) apis.push({ identifier, name: resource.name, scopes });
    }
    return apis;
  };
  /** The sign-in's own consent step, if that is where this request is. */
  const ownStep = (ctx: SignInContext) => (ctx.state.interaction.prompt.name === 'login' && ctx.state.flow.step === 'consent' ? ctx.state.flow : undefined);
  const detailsOf = (ctx: SignInContext): ConsentDetails => {
    const details = ctx.state.interaction.prompt.details as ConsentDetails & { consent?: ConsentDetails };
    return ownStep(ctx) ? (details.consent ?? {}) : details;
  };
  /** The account consenting: the sign-in's (its step) or the session's (the provider's prompt). */
  const accountIdOf = (ctx: SignInContext) => ownStep(ctx)?.accountId ?? ctx.state.interaction.session?.accountId;

  /** GET: the sign-in's step names the account it checked; at the provider's prompt the router loaded the session's. */
  const show = async (ctx: SignInContext) => {
    const { interaction } = ctx.state;
    const step = ownStep(ctx);
    const account = step ? step.shown : ctx.state.account;
    if (!account) throw new AppError('interaction.session_ended');
    const details = detailsOf(ctx);
    const apis = await apisOf(details);
    const { uid, client, csrf, abortAction } = kit.page(ctx);
    await pages.render(ctx, 'interactions/consent', {
      title: 'Allow access',
      uid: interaction.uid,
      client,
      account: { email: account.email, name: account.name },
      scopes: (details.missingOIDCScope ?? []).map(describeScope),
      apis,
      claims: (details.missingOIDCClaims ?? []).map(describeClaim),
      action: `/interaction/${uid}/confirm`,
      abortAction,
      csrf,
    });
  };

  /** POST /confirm: the grant, saved; the provider continues with it. */
  const grant = async (ctx: SignInContext): Promise<{ consent: { grantId: string } }> => {
    const { interaction } = ctx.state;
    const accountId = accountIdOf(ctx);
    if (!accountId) throw new AppError('interaction.session_ended');
    const details = detailsOf(ctx);
    const clientId = kit.clientId(ctx);
    // The sign-in's own step runs without a session, so without a grant to add to.
    const grant = interaction.grantId && !ownStep(ctx) ? await provider.Grant.find(interaction.grantId) : new provider.Grant({ accountId, clientId });
    if (!grant) throw new AppError('interaction.grant_gone');
    if (details.missingOIDCScope?.length) grant.addOIDCScope(details.missingOIDCScope.join(' '));
    if (details.missingOIDCClaims?.length) grant.addOIDCClaims(details.missingOIDCClaims);
    // What the page showed: an API changed or deleted since the request was made loses what it
    // no longer defines (the token endpoint would drop those scopes anyway).
    const apis = await apisOf(details);
    for (const api of apis) grant.addResourceScope(api.identifier, api.scopes.map((scope) => scope.name).join(' '));
    const grantId = await grant.save();
    kit.log(ctx).info('consent granted', { accountId, client: clientId });
    const scopes = [...(details.missingOIDCScope ?? []), ...apis.flatMap((api) => api.scopes.map((scope) => scope.name))];
    // In the background (batched, see audit.service.ts): the grant it reports is already stored.
    audit.recordInBackground({ action: 'consent.granted', outcome: 'success', actor: { type: 'account', id: accountId }, target: { type: 'client', id: clientId, label: ctx.state.client.name }, clientId, details: { scopes, claims: details.missingOIDCClaims ?? [] } });
    return { consent: { grantId } };
  };

  /** An abort at the consent page is a refusal, recorded as such. */
  const recordDenied = async (ctx: SignInContext) => {
    const accountId = ctx.state.interaction.prompt.name === 'consent' || ownStep(ctx) ? accountIdOf(ctx) : undefined;
    if (!accountId) return;
    const clientId = kit.clientId(ctx);
    audit.recordInBackground({ action: 'consent.denied', outcome: 'success', actor: { type: 'account', id: accountId }, target: { type: 'client', id: clientId, label: ctx.state.client.name }, clientId });
  };

  return { show, grant, recordDenied };
}
