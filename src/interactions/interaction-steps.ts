import type { RouterContext, RouterMiddleware } from '@koa/router';
import type Provider from 'oidc-provider';
import type { InteractionResults } from 'oidc-provider';
import { z } from 'zod';

import type { Factor } from '../oidc/policy.js';
import { clientFlag } from '../oidc/policy.js';
import { AppError } from '../http/app-error.js';
import type { FormFields } from '../http/form-body.js';
import type { Logger } from '../logging/logger.js';
import type { CsrfTokens } from './csrf.js';

/**
 * The small named middleware every interaction route is built from (multi-step handlers are arrays of small named middleware),
 * and the sign-in progress kept between pages.
 */

export type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;

export interface InteractionClient {
  name: string;
  logoUri?: string | undefined;
  uri?: string | undefined;
  policyUri?: string | undefined;
  tosUri?: string | undefined;
  /** The client's `require_mfa` metadata. */
  requiresMfa: boolean;
  /** Registered itself (RFC 7591): its name and logo are its own claims, reviewed by nobody. */
  registeredDynamically: boolean;
  /** Where the person will be sent back: an origin, or a private-use scheme such as `com.example.app:`. */
  returnTo?: string | undefined;
}

export interface InteractionState {
  form: FormFields;
  interaction: InteractionDetails;
  client: InteractionClient;
  formActionOrigins: string[];
  requestId: string;
  log?: Logger;
}

export type Step = RouterMiddleware<InteractionState>;
export type StepContext = RouterContext<InteractionState>;

const uidSchema = z.string().regex(/^[A-Za-z0-9_-]{10,64}$/);

/**
 * How far this sign-in has come. Kept server-side in the interaction record (which the browser
 * reaches only through its interaction cookie), never in the form or the URL: the account a
 * second factor is checked for comes from here, not from anything the browser sends.
 */
const progressSchema = z.object({
  /** Set once a first factor has identified the account. */
  accountId: z.string().optional(),
  /** Factors verified in this interaction. */
  factors: z.array(z.enum(['pwd', 'email', 'totp', 'recovery'])),
  /**
   * The page the person is on. `new-password`: every required factor is done, and the account
   * must set a new password before the provider hears `login` (factor.routes.ts, advance).
   */
  step: z.enum(['email-code', 'second-factor', 'recovery-codes', 'new-password']),
  /** The address a sign-in code was sent to (step `email-code`). */
  email: z.string().optional(),
});
export type SignInProgress = z.infer<typeof progressSchema>;

export function readProgress(interaction: InteractionDetails): SignInProgress | undefined {
  const raw = (interaction.result as { signIn?: unknown } | undefined)?.signIn;
  const parsed = progressSchema.safeParse(raw);
  return parsed.success ? parsed.data : undefined;
}

export async function saveProgress(interaction: InteractionDetails, progress: SignInProgress | undefined): Promise<void> {
  // NOTE: `result` is what the provider reads when the browser resumes the authorization; it
  // holds no `login` until every required factor is done, so resuming early signs no one in.
  interaction.result = progress ? { signIn: progress } : {};
  await interaction.persist();
}

export function describeWait(seconds: number): string {
  if (seconds < 60) return `${seconds} second${seconds === 1 ? '' : 's'}`;
  const minutes = Math.ceil(seconds / 60);
  return `${minutes} minute${minutes === 1 ? '' : 's'}`;
}

/**
 * What a refused attempt says. The IP's limit is named as such, so that people on a shared
 * network know why; neither says anything about whether an account exists.
 */
export function tooManyAttempts(fromIp: boolean, retryAfterSeconds: number): string {
  return fromIp
    ? `Too many failed sign-in attempts from your network. Wait ${describeWait(retryAfterSeconds)}, then try again.`
    : `Too many failed attempts. Wait ${describeWait(retryAfterSeconds)}, then try again.`;
}

/** Where the browser may end up after a form POST on these pages (see security-headers.ts). */
function redirectTarget(params: Record<string, unknown>): string | undefined {
  const uri = typeof params.redirect_uri === 'string' ? URL.parse(params.redirect_uri) : null;
  if (!uri) return undefined;
  return uri.protocol === 'http:' || uri.protocol === 'https:' ? uri.origin : uri.protocol;
}

export const noStore: Step = async function noStore(ctx, next) {
  ctx.set('Cache-Control', 'no-store');
  await next();
};

export function createInteractionSteps(deps: { provider: Provider; csrf: CsrfTokens }) {
  const { provider, csrf } = deps;

  /**
   * Loads the interaction from the browser's interaction cookie (never from the URL alone)
   * and checks that the URL names the same one.
   */
  const loadInteraction: Step = async function loadInteraction(ctx, next) {
    const uid = ctx.params.uid;
    if (!uidSchema.safeParse(uid).success) throw new AppError(404, 'interaction.not_found', 'This sign-in does not exist or has expired.');
    const interaction = await provider.interactionDetails(ctx.req, ctx.res);
    if (interaction.uid !== uid) {
      throw new AppError(400, 'interaction.mismatch', 'This sign-in was started in another tab or has expired. Go back to the application and try again.');
    }
    const client = await provider.Client.find(String(interaction.params.client_id));
    if (!client) throw new AppError(400, 'interaction.client_gone', 'The application that sent you here no longer exists.');
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
    await next();
  };

  const requirePrompt = (...names: string[]): Step =>
    async function assertPrompt(ctx, next) {
      if (!names.includes(ctx.state.interaction.prompt.name)) {
        throw new AppError(400, 'interaction.wrong_step', 'This step of the sign-in is not the current one. Go back to the application and try again.');
      }
      await next();
    };

  const checkCsrf: Step = async function checkCsrf(ctx, next) {
    if (!csrf.verify(ctx.state.interaction.uid, ctx.state.form.csrf)) {
      throw new AppError(403, 'request.csrf', 'The form has expired or did not come from this site. Go back and try again.');
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
  const finish = async (ctx: StepContext, result: InteractionResults) => {
    const redirectTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
    ctx.status = 303;
    ctx.redirect(redirectTo);
  };

  /** Back to the interaction's page (POST → redirect → GET), which shows the current step. */
  const showCurrentStep = (ctx: StepContext, query = '') => {
    ctx.status = 303;
    ctx.redirect(`/interaction/${ctx.state.interaction.uid}${query}`);
  };

  return { loadInteraction, requirePrompt, checkCsrf, finish, showCurrentStep };
}

export type InteractionSteps = ReturnType<typeof createInteractionSteps>;

/** Factors the current sign-in has (for step-up: what the session already has, plus this interaction's). */
export function uniqueFactors(...lists: readonly (readonly Factor[])[]): Factor[] {
  return [...new Set(lists.flat())];
}
