import Router from '@koa/router';
import type { InteractionResults } from 'oidc-provider';
import { z } from 'zod';

import { accountReadKey } from '../accounts/account.service.js';
import { AppError } from '../http/app-error.js';
import { primeRead } from '../http/request-context.js';
import { parseForm } from '../http/form-body.js';
import { clientFlag, factorsFromAmr } from '../oidc/policy.js';
import type { LoginResult } from './flow.js';
import { createConsent } from './consent.js';
import { createKnownBrowserCheck } from './known-browser.js';
import type { SignInEvent } from './flow.js';
import { effectiveState, pageFor, transition } from './flow.js';
import { readFlowState, readKept, saveFlowState } from './flow-store.js';
import { pageErrorFrom } from './page-errors.js';
import type { SignInDeps } from './sign-in-kit.js';
import { createSignInKit } from './sign-in-kit.js';
import type { SignInContext, SignInMiddleware, SignInRequestState } from './sign-in-context.js';
import type { FlowActions, SignInStrategy, StrategyRoute } from './strategy.js';
import type { StrategyFactory } from './strategy-registry.js';
import { SIGN_IN_STRATEGIES } from './strategy-registry.js';

const uidSchema = z.string().regex(/^[A-Za-z0-9_-]{10,64}$/);

/** Where the browser may end up after a form POST on these pages (see security-headers.ts). */
function redirectTarget(params: Record<string, unknown>): string | undefined {
  const uri = typeof params.redirect_uri === 'string' ? URL.parse(params.redirect_uri) : null;
  if (!uri) return undefined;
  return uri.protocol === 'http:' || uri.protocol === 'https:' ? uri.origin : uri.protocol;
}

const noStore: SignInMiddleware = async function noStore(ctx, next) {
  ctx.set('Cache-Control', 'no-store');
  await next();
};

/**
 * The one router of the sign-in: every request loads the interaction (from the browser's
 * interaction cookie) and the client once, the account the flow names once when the step needs
 * it, then dispatches to the strategy of the route (POST) or of the current step (GET).
 */
export function createSignInRouter(deps: SignInDeps, factories: readonly StrategyFactory[] = SIGN_IN_STRATEGIES): Router<SignInRequestState> {
  const { provider, accounts, csrf, config } = deps;
  const kit = createSignInKit(deps);
  const noteSignIn = createKnownBrowserCheck(deps);
  const consent = createConsent(kit);
  const strategies = new Map<string, SignInStrategy>();
  for (const factory of factories) {
    const strategy = factory(kit);
    if (strategies.has(strategy.id)) throw new Error(`two sign-in strategies are named ${strategy.id}`);
    strategies.set(strategy.id, strategy);
  }
  const strategyFor = (id: string): SignInStrategy => {
    const strategy = strategies.get(id);
    if (!strategy) throw new Error(`no sign-in strategy ${id}`);
    return strategy;
  };
  const wrongStep = () => new AppError('interaction.wrong_step');

  /**
   * Loads the interaction from the browser's interaction cookie (never from the URL alone),
   * checks that the URL names the same one, and loads its client and flow state.
   */
  const loadInteraction: SignInMiddleware = async function loadInteraction(ctx, next) {
    const uid = ctx.params.uid;
    if (!uidSchema.safeParse(uid).success) throw new AppError('interaction.not_found');
    const interaction = await provider.interactionDetails(ctx.req, ctx.res);
    if (interaction.uid !== uid) {
      throw new AppError('interaction.mismatch');
    }
    const client = await provider.Client.find(String(interaction.params.client_id));
    if (!client) throw new AppError('interaction.client_gone');
    ctx.state.interaction = interaction;
    ctx.state.client = {
      name: client.clientName ?? client.clientId,
      logoUri: client.logoUri ?? undefined,
      uri: client.clientUri ?? undefined,
      policyUri: client.policyUri ?? undefined,
      tosUri: client.tosUri ?? undefined,
      requiresMfa: clientFlag(client, 'require_mfa'),
      registeredDynamically: clientFlag(client, 'dynamically_registered'),
      returnTo: redirectTarget(interaction.params),
    };
    const target = ctx.state.client.returnTo;
    ctx.state.formActionOrigins = target ? [target] : [];
    const session = { accountId: interaction.session?.accountId, factors: factorsFromAmr(interaction.session?.amr as string[] | undefined) };
    ctx.state.flow = effectiveState(interaction.prompt.name, readFlowState(interaction), session);
    ctx.state.kept = readKept(interaction);
    ctx.state.pageError = undefined;
    ctx.state.account = undefined;
    await next();
  };

  /** The account this request is about: the session's at consent and step-up, else the flow's. Read once. */
  const loadAccount = async (ctx: SignInContext) => {
    const { interaction, flow } = ctx.state;
    const id = interaction.prompt.name === 'consent' ? interaction.session?.accountId : 'accountId' in flow ? flow.accountId : undefined;
    ctx.state.account = id ? await accounts.findById(id) : undefined;
  };

  const requirePrompt = (names: readonly string[]): SignInMiddleware =>
    async function assertPrompt(ctx, next) {
      if (!names.includes(ctx.state.interaction.prompt.name)) throw wrongStep();
      await next();
    };

  const checkCsrf: SignInMiddleware = async function checkCsrf(ctx, next) {
    if (!csrf.verify(ctx.state.interaction.uid, ctx.state.form.csrf)) {
      throw new AppError('request.csrf');
    }
    await next();
  };

  /**
   * Ends this interaction: the provider continues the authorization with this result.
   * NOTE: merged with the earlier interactions' results of the same authorization request. The
   * provider's `login_prompt` and `max_age` checks look for a `login` result of the current
   * request, so a consent result without it would make prompt=login (and max_age=0) ask for the
   * password again after consent — and prompt=login consent loop between the two pages forever.
   * (Error results are never merged.)
   */
  const finish = async (ctx: SignInContext, result: InteractionResults) => {
    const redirectTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
    ctx.status = 303;
    ctx.redirect(redirectTo);
  };

  /**
   * Finishing a sign-in: with the login result alone, or, when the client asks for consent this
   * browser never gave (the login prompt's consent preview: no session, so no grant), by showing
   * the consent page first and handing the provider login and consent in ONE result. One
   * interaction and one resume instead of two: the provider saves the session once. NOTE: the
   * session id still changes at sign-in: a browser without a session cookie gets a new random id,
   * and one whose cookie names any session (live or not) has it re-identified by the provider's
   * resume, as before (test/sign-in/one-interaction.test.ts).
   */
  const finishLogin = async (ctx: SignInContext, login: LoginResult) => {
    const { interaction, account } = ctx.state;
    const preview = (interaction.prompt.details as { consent?: unknown }).consent;
    const consentFirst = interaction.prompt.name === 'login' && !interaction.session?.accountId && typeof preview === 'object' && preview !== null;
    // The account this request checked the factors for: the interaction carries it to the resume
    // (mongo-adapter.ts, CARRYING_MODELS), whose findAccount then reads nothing.
    if (account?.id === login.accountId && !account.disabled) primeRead(accountReadKey(account.id), account);
    if (!consentFirst || !account || account.id !== login.accountId) return finish(ctx, { login });
    const state = { step: 'consent' as const, accountId: login.accountId, factors: factorsFromAmr(login.amr), login, shown: { email: account.email, name: account.name } };
    await saveFlowState(interaction, state);
    ctx.state.flow = state;
    flow.showCurrentStep(ctx);
  };

  const flow: FlowActions = {
    showCurrentStep(ctx, query = '') {
      ctx.status = 303;
      ctx.redirect(`/interaction/${ctx.state.interaction.uid}${query}`);
    },
    async fail(ctx, code, options = {}) {
      const { wait, keep, restart, method } = options;
      const state = restart ? { step: 'identify' as const } : ctx.state.flow;
      // Nothing to write when the step and what is kept are already so (a repeated refusal).
      const unchanged = (!restart || ctx.state.flow.step === 'identify') && JSON.stringify(keep ?? {}) === JSON.stringify(ctx.state.kept);
      if ((restart || keep) && !unchanged) {
        try {
          await saveFlowState(ctx.state.interaction, state, keep);
          ctx.state.flow = state;
        } catch (err) {
          // NOTE: best effort. A burst of refused POSTs on one interaction writes the same record
          // at once, and a write that loses that race must not turn a refusal into a 500: the
          // page then shows the refusal without what was to be kept.
          kit.log(ctx).warn('refused form state not kept', { error: (err as Error).name, reason: (err as Error).message });
        }
      }
      const query = new URLSearchParams({ error: code });
      if (wait !== undefined) query.set('wait', String(Math.max(1, Math.ceil(wait))));
      if (method) query.set('method', method);
      flow.showCurrentStep(ctx, `?${query.toString()}`);
    },
    async commit(ctx, event, keep) {
      const next = transition(ctx.state.flow, event, kit.flowContext(ctx));
      if ('refused' in next) throw wrongStep();
      if ('state' in next) {
        await saveFlowState(ctx.state.interaction, next.state, keep);
        ctx.state.flow = next.state;
      }
      return next;
    },
    async advance(ctx, event: SignInEvent) {
      const next = await flow.commit(ctx, event);
      const { params } = ctx.state.interaction;
      if ('finish' in next) {
        const login = next.finish;
        kit.log(ctx).info('sign-in succeeded', { accountId: login.accountId, amr: login.amr, acr: login.acr, client: params.client_id });
        await noteSignIn(ctx, login.accountId);
        return finishLogin(ctx, login);
      }
      const { state } = next;
      const accountId = 'accountId' in state ? state.accountId : undefined;
      if (state.step === 'new-password') kit.log(ctx).info('new password required', { accountId, client: params.client_id });
      if (state.step === 'second-factor') kit.log(ctx).info('second factor required', { accountId, reasons: next.reasons, client: params.client_id });
      // The next step's strategy may act on arrival (mail the second-factor code).
      const arrived = strategyFor(pageFor(state, kit.flowContext(ctx)));
      if (arrived.enter && (await arrived.enter(ctx, flow))) return;
      flow.showCurrentStep(ctx);
    },
    async identified(ctx, account, factor) {
      ctx.state.account = account;
      await flow.advance(ctx, { type: 'identified', account, factor });
    },
  };

  const showCurrentStep: SignInMiddleware = async function showCurrentStep(ctx) {
    const { interaction, flow: state } = ctx.state;
    const prompt = interaction.prompt.name;
    if (prompt === 'consent') {
      await loadAccount(ctx);
      return consent.show(ctx);
    }
    // The sign-in's own consent step: the page names the account the factors were checked for.
    if (prompt === 'login' && state.step === 'consent') return consent.show(ctx);
    if (prompt !== 'login' && prompt !== 'mfa') throw new AppError('interaction.unknown_prompt');
    if ('accountId' in state) {
      await loadAccount(ctx);
      kit.requireAccount(ctx);
    }
    // Post/redirect/get: the refusal the query names, with its status (nothing written here).
    const pageError = pageErrorFrom(ctx.query, ctx.state.kept.refusal);
    ctx.state.pageError = pageError;
    await strategyFor(pageFor(state, kit.flowContext(ctx), ctx.query.method)).show(ctx);
    if (pageError && ctx.status === 200) {
      ctx.status = pageError.status;
      if (pageError.wait) ctx.set('Retry-After', String(pageError.wait));
    }
  };

  const runRoute = (route: StrategyRoute): SignInMiddleware =>
    async function runStrategy(ctx) {
      if (route.loadsAccount && 'accountId' in ctx.state.flow) await loadAccount(ctx);
      await route.handle(ctx, flow);
    };

  const grantConsent: SignInMiddleware = async function grantConsent(ctx) {
    const { interaction, flow: state } = ctx.state;
    if (interaction.prompt.name === 'consent') return finish(ctx, await consent.grant(ctx));
    // The sign-in's own consent step (login prompt): the login its factors earned, with the grant.
    if (state.step !== 'consent') throw wrongStep();
    const { login } = state;
    return finish(ctx, { login, ...(await consent.grant(ctx)) });
  };

  const abort: SignInMiddleware = async function abort(ctx) {
    const { prompt, params } = ctx.state.interaction;
    kit.log(ctx).info('interaction aborted', { prompt: prompt.name, client: params.client_id });
    await consent.recordDenied(ctx);
    await finish(ctx, { error: 'access_denied', error_description: 'End-User aborted interaction' });
  };

  /**
   * "Use another account" / "Back to sign in": forget this interaction's progress and start
   * again. Back from the email-code page keeps the address, shown again on the login page.
   */
  const restart: SignInMiddleware = async function restart(ctx) {
    const { flow: state, interaction } = ctx.state;
    const next = transition(state, { type: 'restart' }, kit.flowContext(ctx));
    if ('refused' in next) throw wrongStep();
    if ('state' in next) {
      await saveFlowState(interaction, next.state, state.step === 'email-code' ? { email: state.email } : undefined);
      ctx.state.flow = next.state;
    }
    flow.showCurrentStep(ctx);
  };

  const router = new Router<SignInRequestState>({ prefix: '/interaction' });
  const form = parseForm({ limit: config.formBodyLimit });
  // Every POST: parse (size-limited), load the interaction from its cookie, check the prompt, then CSRF.
  const post = (prompts: readonly string[], ...rest: SignInMiddleware[]) => [noStore, form, loadInteraction, requirePrompt(prompts), checkCsrf, ...rest];

  router.get('/:uid', noStore, loadInteraction, showCurrentStep);
  router.post('/:uid/confirm', ...post(['consent', 'login'], grantConsent));
  router.post('/:uid/abort', noStore, form, loadInteraction, checkCsrf, abort);
  router.post('/:uid/restart', ...post(['login'], restart));
  for (const strategy of strategies.values()) {
    for (const route of strategy.routes) router.post(`/:uid${route.path}`, ...post(route.prompts, runRoute(route)));
  }
  return router;
}
