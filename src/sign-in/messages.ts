/** Texts the sign-in pages (and the account pages) show. */

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

export function tooManyCodes(retryAfterSeconds: number): string {
  return `Too many wrong codes. Wait ${describeWait(retryAfterSeconds)}, then try again.`;
}

export function codeError(reason: 'invalid' | 'expired' | 'exhausted' | 'missing'): string {
  switch (reason) {
    case 'expired':
      return 'This code has expired. Send a new one.';
    case 'exhausted':
      return 'Too many wrong tries for this code. Send a new one.';
    case 'missing':
      return 'This code is no longer valid (a newer one may have been sent). Use the latest code, or send a new one.';
    default:
      return 'That code is not right. Check the email and try again.';
  }
}

export function recoveryCodesText(productName: string, codes: string[]): string {
  return [
    `${productName} recovery codes`,
    '',
    'Each code works once, when you cannot use your authenticator app.',
    'Keep them somewhere safe, like a password manager.',
    '',
    ...codes,
    '',
  ].join('\n');
}

export const SESSION_ENDED = 'Your sign-in has ended. Go back to the application and sign in again.';
export const WRONG_STEP = 'This step of the sign-in is not the current one. Go back to the application and try again.';
