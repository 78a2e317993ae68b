/**
 * The links self-service mails carry, all built from ISSUER (never from a request's Host).
 *
 * NOTE: the pages behind `passwordReset` are the sign-in flow's next steps; until they exist
 * the links name where they will be. The reset link carries its token in the query: the request
 * log records paths only, pages send `Referrer-Policy: no-referrer`, and a GET of that page must
 * only show a form (the token is redeemed by its POST), so a mail scanner opening it spends nothing.
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
