import type { SignInKit } from './sign-in-kit.js';
import type { SignInStrategy } from './strategy.js';
import { createEmailCodeStrategy } from './strategies/email-code.strategy.js';
import { createNewPasswordStrategy } from './strategies/new-password.strategy.js';
import { createPasswordStrategy } from './strategies/password.strategy.js';
import { createResetCodeStrategy } from './strategies/reset-code.strategy.js';
import { createResetPasswordStrategy } from './strategies/reset-password.strategy.js';
import { createResetRequestStrategy } from './strategies/reset-request.strategy.js';
import { createSignUpStrategy } from './strategies/sign-up.strategy.js';
import { createVerifyEmailStrategy } from './strategies/verify-email.strategy.js';
import { createRecoveryCodeStrategy } from './strategies/recovery-code.strategy.js';
import { createTotpEnrolmentStrategy } from './strategies/totp-enrolment.strategy.js';
import { createTotpStrategy } from './strategies/totp.strategy.js';

export type StrategyFactory = (kit: SignInKit) => SignInStrategy;

/** Every sign-in strategy. A new one is added here (see index.ts). */
export const SIGN_IN_STRATEGIES: readonly StrategyFactory[] = [
  createPasswordStrategy,
  createEmailCodeStrategy,
  createTotpStrategy,
  createRecoveryCodeStrategy,
  createTotpEnrolmentStrategy,
  createNewPasswordStrategy,
  createResetRequestStrategy,
  createResetCodeStrategy,
  createResetPasswordStrategy,
  createSignUpStrategy,
  createVerifyEmailStrategy,
];
