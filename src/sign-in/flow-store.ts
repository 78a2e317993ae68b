import type Provider from 'oidc-provider';
import { z } from 'zod';

import type { SignInState } from './flow.js';

export type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;

const factors = z.array(z.enum(['pwd', 'email', 'totp', 'recovery']));

/**
 * The flow state as stored in the interaction record (`result.signIn`), which the browser reaches
 * only through its interaction cookie. The stored shape is the one earlier versions wrote
 * (`{ accountId?, factors, step, email? }`), so sign-ins in progress survive an upgrade.
 */
const storedSchema = z.discriminatedUnion('step', [
  z.object({ step: z.literal('email-code'), email: z.string(), factors: factors.optional() }),
  z.object({ step: z.literal('second-factor'), accountId: z.string(), factors }),
  z.object({ step: z.literal('recovery-codes'), accountId: z.string(), factors }),
  z.object({ step: z.literal('recovery-used'), accountId: z.string(), factors, left: z.number().int().min(0).max(1000) }),
  z.object({ step: z.literal('new-password'), accountId: z.string(), factors }),
  z.object({ step: z.literal('reset-request'), email: z.string() }),
  z.object({ step: z.literal('reset-code'), email: z.string(), flowId: z.string() }),
  // NOTE: the reset grant lives only in the interaction record (server side), never in a page.
  z.object({ step: z.literal('reset-password'), email: z.string(), grant: z.string() }),
  // Stored explicitly once a sign-up opened with prompt=create was left for the login page.
  z.object({ step: z.literal('identify') }),
  z.object({ step: z.literal('sign-up'), name: z.string().max(200).optional() }),
  z.object({ step: z.literal('verify-email'), flowId: z.string().max(64), email: z.string().max(254), name: z.string().max(200).optional() }),
  z.object({
    step: z.literal('consent'),
    accountId: z.string(),
    factors,
    login: z.object({ accountId: z.string(), amr: z.array(z.string()), acr: z.string(), ts: z.number().int(), remember: z.boolean() }),
    shown: z.object({ email: z.string().max(254), name: z.string().max(200).optional() }),
  }),
]);

/** `prompt=create` (Initiating User Registration via OpenID Connect 1.0 §3): the flow opens on the sign-up form. */
export function requestsCreate(params: Record<string, unknown>): boolean {
  return typeof params.prompt === 'string' && params.prompt.split(' ').includes('create');
}

export function readFlowState(interaction: InteractionDetails): SignInState {
  const raw = (interaction.result as { signIn?: unknown } | undefined)?.signIn;
  const parsed = storedSchema.safeParse(raw);
  if (!parsed.success) return requestsCreate(interaction.params) ? { step: 'sign-up' } : { step: 'identify' };
  const stored = parsed.data;
  switch (stored.step) {
    case 'email-code':
      return { step: 'email-code', email: stored.email };
    case 'reset-request':
    case 'reset-code':
    case 'reset-password':
    case 'identify':
    case 'sign-up':
    case 'verify-email':
    case 'recovery-used':
      return stored;
    case 'consent':
      // NOTE: the login result the factors earned; it reaches the provider only with the consent.
      return stored.login.accountId === stored.accountId ? stored : { step: 'identify' };
    default:
      return { step: stored.step, accountId: stored.accountId, factors: stored.factors };
  }
}

/**
 * What a refused POST keeps for the page the browser is redirected to (post/redirect/get): the
 * GET only reads it. Kept until the next write of the flow state. `enrolment` is the sealed
 * authenticator secret (as the enrolment form carries it), `recoveryCodes` sealed too.
 */
export interface KeptInput {
  /** The address typed on the first-factor page (shown again there). */
  email?: string | undefined;
  /** The name typed on the sign-up form (shown again there). */
  name?: string | undefined;
  enrolment?: string | undefined;
  /** The password policy's message for a refused new password. */
  refusal?: string | undefined;
  recoveryCodes?: string | undefined;
}

const keptSchema = z.object({
  email: z.string().max(254).optional(),
  name: z.string().max(200).optional(),
  enrolment: z.string().max(2048).optional(),
  refusal: z.string().max(500).optional(),
  recoveryCodes: z.string().max(4096).optional(),
});

export function readKept(interaction: InteractionDetails): KeptInput {
  const raw = (interaction.result as { kept?: unknown } | undefined)?.kept;
  return keptSchema.safeParse(raw).data ?? {};
}

export async function saveFlowState(interaction: InteractionDetails, state: SignInState, kept?: KeptInput): Promise<void> {
  // NOTE: `result` is what the provider reads when the browser resumes the authorization; it
  // holds no `login` until every required factor is done, so resuming early signs no one in.
  // `identify` is stored explicitly only where an empty result would reopen the sign-up form (prompt=create).
  const empty = state.step === 'identify' && !requestsCreate(interaction.params);
  const signIn = empty ? {} : { signIn: state.step === 'email-code' ? { factors: [], ...state } : state };
  const keep = kept && Object.values(kept).some((v) => v !== undefined) ? { kept } : {};
  const result = { ...signIn, ...keep };
  // A write that stores nothing new (a resend to the same address, "back" on the first page) is skipped.
  if (JSON.stringify(result) === JSON.stringify(interaction.result ?? {})) return;
  interaction.result = result;
  await interaction.persist();
}
