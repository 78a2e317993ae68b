import type { mongo } from 'mongoose';

import { revokeAccountRecords } from './mongo-adapter.js';
import type { ADAPTER_MODELS, SessionsEndedListener } from './mongo-adapter.js';

/**
 * Signs an account out everywhere and takes back what was issued to it: after a password reset
 * (or anything else that says "whoever held the old credential must lose access now").
 *
 * Removed, for the account: SSO sessions, grants, refresh tokens, access tokens, authorization
 * and device codes, CIBA requests. The provider checks an opaque access token against its store on
 * every use, and drops tokens whose grant is gone, so nothing issued before survives.
 *
 * The account centre (/account) and the admin console (/admin) keep no sign-in of their own: they
 * read who is signed in from the provider's SSO session on each request (first-party-sign-in.ts),
 * so ending the sessions signs them out too. The console's activity cookie names a session uid,
 * which no new session shares. Their `*.login` cookies only carry a pending authorization
 * request's state and PKCE verifier, worthless without a sign-in.
 *
 * NOTE: interactions in progress are left alone. A reset runs inside one (the future reset page
 * is an interaction step); deleting it would break the page that just proved the mailbox. An
 * interaction holds no credential: finishing it needs the steps it still lacks, and the session it
 * started from is gone.
 */
export const ACCOUNT_ACCESS_MODELS = [
  'Session',
  'Grant',
  'RefreshToken',
  'AccessToken',
  'AuthorizationCode',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
] as const satisfies readonly (typeof ADAPTER_MODELS)[number][];

/** Deletes the account's sessions, grants and tokens; returns how many records went. */
export async function revokeAccountAccess(db: mongo.Db, accountId: string, loggedOut?: SessionsEndedListener): Promise<number> {
  return revokeAccountRecords(db, accountId, ACCOUNT_ACCESS_MODELS, loggedOut);
}
