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
  z.object({ step: z.literal('new-password'), accountId: z.string(), factors }),
  z.object({ step: z.literal('reset-request'), email: z.string() }),
  z.object({ step: z.literal('reset-code'), email: z.string(), flowId: z.string() }),
  // NOTE: the reset grant lives only in the interaction record (server side), never in a page.
  z.object({ step: z.literal('reset-password'), email: z.string(), grant: z.string() }),
]);

export function readFlowState(interaction: InteractionDetails): SignInState {
  const raw = (interaction.result as { signIn?: unknown } | undefined)?.signIn;
  const parsed = storedSchema.safeParse(raw);
  if (!parsed.success) return { step: 'identify' };
  const stored = parsed.data;
  switch (stored.step) {
    case 'email-code':
      return { step: 'email-code', email: stored.email };
    case 'reset-request':
    case 'reset-code':
    case 'reset-password':
      return stored;
    default:
      return { step: stored.step, accountId: stored.accountId, factors: stored.factors };
  }
}

export async function saveFlowState(interaction: InteractionDetails, state: SignInState): Promise<void> {
  // NOTE: `result` is what the provider reads when the browser resumes the authorization; it
  // holds no `login` until every required factor is done, so resuming early signs no one in.
  interaction.result = state.step === 'identify' ? {} : { signIn: state.step === 'email-code' ? { factors: [], ...state } : state };
  await interaction.persist();
}
