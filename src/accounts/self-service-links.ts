/**
 * The links self-service mails carry, all built from ISSUER (never from a request's Host).
 *
 * NOTE: `/password-reset` (src/account/password-reset.routes.ts) shows a link's form, or without a
 * token says where a reset starts ("Forgot password?" on the sign-in page). The reset link carries
 * its token in the query: the request log records paths only, the page sends
 * `Referrer-Policy: no-referrer`, and its GET only shows a form (the token is redeemed by its
 * POST), so a mail scanner opening it spends nothing.
 */
export interface SelfServiceLinks {
  /** Where an existing account signs in (the account centre, which starts a sign-in). */
  signIn: string;
  /** Where a password reset starts. */
  passwordReset: string;
  /** The reset page for the token a reset mail carries. */
  resetLink(token: string): string;
}

export function selfServiceLinks(issuer: string): SelfServiceLinks {
  const base = issuer.replace(/\/+$/, '');
  return {
    signIn: `${base}/account`,
    passwordReset: `${base}/password-reset`,
    resetLink: (token) => `${base}/password-reset?token=${encodeURIComponent(token)}`,
  };
}
