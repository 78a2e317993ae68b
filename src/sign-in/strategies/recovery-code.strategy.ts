import { z } from 'zod';

import type { SignInKit } from '../sign-in-kit.js';
import type { SignInStrategy } from '../strategy.js';
import { renderTotpPage } from './totp.strategy.js';

const recoveryForm = z.object({
  csrf: z.string(),
  code: z
    .string()
    .max(64)
    .transform((s) => s.trim())
    .pipe(z.string().regex(/^[A-Za-z0-9 -]{8,40}$/)),
});

/** One of the authenticator app's recovery codes, each usable once (`?method=recovery`). */
export function createRecoveryCodeStrategy(kit: SignInKit): SignInStrategy {
  const { totp } = kit.deps;
  return {
    id: 'recovery-code',
    show: (ctx) => renderTotpPage(kit, ctx, 'recovery'),
    routes: [
      {
        path: '/second-factor/recovery',
        prompts: ['login', 'mfa'],
        loadsAccount: true,
        async handle(ctx, flow) {
          const { account } = kit.requireMethod(ctx, 'recovery-code');
          const parsed = recoveryForm.safeParse(ctx.state.form);
          if (!parsed.success) return flow.fail(ctx, 'recovery_code_required', { method: 'recovery' });
          return kit.guarded(ctx, { kind: 'recovery', account, auditAction: 'mfa.recovery_code' }, (code, wait) => flow.fail(ctx, code, { wait, method: 'recovery' }), async (attempt) => {
            const result = await totp.verifyRecoveryCode(account.id, parsed.data.code);
            if (!result.ok) {
              await attempt.failed();
              kit.log(ctx).info('second factor failed', { accountId: account.id, method: 'recovery', reason: result.reason });
              await kit.auditFactor(ctx, 'mfa.recovery_code', account, 'failure', { reason: `code_${result.reason}` });
              return flow.fail(ctx, 'recovery_code_invalid', { method: 'recovery' });
            }
            await attempt.succeeded();
            kit.log(ctx).info('second factor succeeded', { accountId: account.id, method: 'recovery', recoveryCodesLeft: result.remaining });
            await kit.auditFactor(ctx, 'mfa.recovery_code', account, 'success', { details: { recoveryCodesLeft: result.remaining } });
            return flow.advance(ctx, { type: 'verified', factor: 'recovery' });
          });
        },
      },
    ],
  };
}
