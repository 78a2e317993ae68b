import { AppError } from '../http/app-error.js';
import type { SignInKit } from './sign-in-kit.js';
import type { SignInContext } from './sign-in-context.js';
import { describeClaim, describeScope } from './scope-descriptions.js';

interface ConsentDetails {
  missingOIDCScope?: string[];
  missingOIDCClaims?: string[];
  missingResourceScopes?: Record<string, string[]>;
}

/**
 * The provider's `consent` prompt: what the client asks for, and the grant when the person allows
 * it. Not a strategy: it proves nothing, and runs after the sign-in has finished.
 */
export function createConsent(kit: SignInKit) {
  const { provider, audit, pages } = kit.deps;
  const detailsOf = (ctx: SignInContext) => ctx.state.interaction.prompt.details as ConsentDetails;

  /** GET, with the session's account loaded by the router. */
  const show = async (ctx: SignInContext) => {
    const { interaction, account } = ctx.state;
    if (!account) throw new AppError('interaction.session_ended');
    const details = detailsOf(ctx);
    const resourceScopes = Object.values(details.missingResourceScopes ?? {}).flat();
    const { uid, client, csrf, abortAction } = kit.page(ctx);
    await pages.render(ctx, 'interactions/consent', {
      title: 'Allow access',
      uid: interaction.uid,
      client,
      account: { email: account.email, name: account.name },
      scopes: [...new Set([...(details.missingOIDCScope ?? []), ...resourceScopes])].map(describeScope),
      claims: (details.missingOIDCClaims ?? []).map(describeClaim),
      action: `/interaction/${uid}/confirm`,
      abortAction,
      csrf,
    });
  };

  /** POST /confirm: the grant, saved; the provider continues with it. */
  const grant = async (ctx: SignInContext): Promise<{ consent: { grantId: string } }> => {
    const { interaction } = ctx.state;
    const accountId = interaction.session?.accountId;
    if (!accountId) throw new AppError('interaction.session_ended');
    const details = detailsOf(ctx);
    const clientId = kit.clientId(ctx);
    const grant = interaction.grantId ? await provider.Grant.find(interaction.grantId) : new provider.Grant({ accountId, clientId });
    if (!grant) throw new AppError('interaction.grant_gone');
    if (details.missingOIDCScope?.length) grant.addOIDCScope(details.missingOIDCScope.join(' '));
    if (details.missingOIDCClaims?.length) grant.addOIDCClaims(details.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    kit.log(ctx).info('consent granted', { accountId, client: clientId });
    const scopes = [...(details.missingOIDCScope ?? []), ...Object.values(details.missingResourceScopes ?? {}).flat()];
    await audit.record({ action: 'consent.granted', outcome: 'success', actor: { type: 'account', id: accountId }, target: { type: 'client', id: clientId, label: ctx.state.client.name }, clientId, details: { scopes, claims: details.missingOIDCClaims ?? [] } });
    return { consent: { grantId } };
  };

  /** An abort at the consent page is a refusal, recorded as such. */
  const recordDenied = async (ctx: SignInContext) => {
    const { prompt, session } = ctx.state.interaction;
    if (prompt.name !== 'consent' || !session?.accountId) return;
    const clientId = kit.clientId(ctx);
    await audit.record({ action: 'consent.denied', outcome: 'success', actor: { type: 'account', id: session.accountId }, target: { type: 'client', id: clientId, label: ctx.state.client.name }, clientId });
  };

  return { show, grant, recordDenied };
}
