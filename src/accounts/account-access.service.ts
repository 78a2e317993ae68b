import type { mongo } from 'mongoose';
import { z } from 'zod';
import type { SessionsEndedListener } from '../oidc/mongo-adapter.js';

import type { ClientService } from '../clients/client.service.js';
import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import { guardDatabase } from '../db/unavailable.js';
import { GRANT_BOUND_MODELS, collectionName, endedSessionOf, forgetAdapterReads } from '../oidc/mongo-adapter.js';
import { describeUserAgent } from '../http/user-agent-label.js';

/**
 * Where an account is signed in, and which apps hold its consent: read from the provider's own
 * records (oidc_session, oidc_grant) for the account centre and the admin console, and the two
 * ways to take access back (end a session, revoke an app).
 *
 * The provider's Session payload has the sign-in (`loginTs`, `amr`) and the apps the session
 * signed in to (`authorizations`, client id → grant id); the adapter adds, outside the payload,
 * when the session was last written and from which IP and browser (mongo-adapter.ts, `seen`).
 *
 * NOTE: a session is named to the outside by its `uid`, never by its id: the id is the value of
 * the browser's session cookie. Callers audit (they know who acts); this service does not.
 */

export interface AppRef {
  clientId: string;
  /** The client's display name, or its id when the client is gone. */
  name: string;
  logoUri?: string | undefined;
  /** A built-in page of this server (account centre, admin console). */
  firstParty: boolean;
}

export interface SessionView {
  /** The session's public handle (stable for the session; never the cookie value). */
  uid: string;
  /** When the person signed in (the provider's loginTs). */
  startedAt: Date | undefined;
  /** The last time the session was used (an authorization, a sign-in step). */
  lastSeenAt: Date | undefined;
  expiresAt: Date | undefined;
  ip: string | undefined;
  userAgent: string | undefined;
  /** "Firefox on Linux": approximate, from the user agent. */
  device: string;
  /** RFC 8176 methods of the sign-in. */
  amr: string[];
  /** The apps signed in through this session. */
  apps: AppRef[];
}

export interface ConnectedApp extends AppRef {
  /** Every scope granted, in any of the app's grants. */
  scopes: string[];
  /** Claims granted beyond the scopes (the `claims` parameter). */
  claims: string[];
  /** The oldest grant's time. */
  since: Date | undefined;
  /** How many grants (one per browser session the app was authorised in). */
  grants: number;
}

export interface AccountAccessService {
  /** The account's live SSO sessions, most recently used first. */
  listSessions(accountId: string): Promise<SessionView[]>;
  /**
   * Ends one of the account's sessions (signing the browser out of SSO) and, like the provider's
   * own logout, revokes the grants of the apps in it that did not ask to outlive a logout
   * (offline_access). False when the account has no such live session.
   */
  endSession(accountId: string, uid: string): Promise<boolean>;
  /** Ends every session of the account except `keepUid`; returns how many ended. */
  endOtherSessions(accountId: string, keepUid: string | undefined): Promise<number>;
  /** The apps the account granted access to (first-party pages excluded unless asked), by name. */
  listApps(accountId: string, options?: { includeFirstParty?: boolean }): Promise<ConnectedApp[]>;
  /**
   * Takes back an app's access: deletes every grant of the account for the client, and with them
   * the refresh tokens, access tokens and codes issued under them. The app must ask for consent
   * again. False when there was nothing to revoke.
   */
  revokeApp(accountId: string, clientId: string): Promise<boolean>;
}

interface StoredRecord {
  _id: string;
  payload: string;
  uid?: string;
  accountId?: string;
  clientId?: string;
  grantId?: string;
  expiresAt: Date | null;
  seenAt?: Date;
  seenIp?: string;
  seenUserAgent?: string;
}

const sessionPayload = z.object({
  uid: z.string(),
  accountId: z.string().optional(),
  loginTs: z.number().optional(),
  amr: z.array(z.string()).optional(),
  authorizations: z.record(z.string(), z.object({ grantId: z.string().optional(), persistsLogout: z.boolean().optional() }).loose()).optional(),
}).loose();

const grantPayload = z.object({
  accountId: z.string(),
  clientId: z.string(),
  iat: z.number().optional(),
  openid: z.object({ scope: z.string().optional(), claims: z.array(z.string()).optional() }).loose().optional(),
  resources: z.record(z.string(), z.string()).optional(),
}).loose();

function parse<T>(schema: z.ZodType<T>, json: string): T | undefined {
  try {
    const result = schema.safeParse(JSON.parse(json));
    return result.success ? result.data : undefined;
  } catch {
    return undefined;
  }
}

export interface AccountAccessDeps {
  db: mongo.Db;
  clients: Pick<ClientService, 'get'>;
  clock?: Clock;
  /** Told which sessions ended, for back-channel logout (backchannel-logout.service.ts). */
  loggedOut?: SessionsEndedListener | undefined;
}

export function createAccountAccessService({ db, clients, clock = systemClock, loggedOut }: AccountAccessDeps): AccountAccessService {
  const sessions = db.collection<StoredRecord>(collectionName('Session'));
  const grants = db.collection<StoredRecord>(collectionName('Grant'));
  const live = () => ({ $or: [{ expiresAt: null }, { expiresAt: { $gt: clock.now() } }] });

  /** One read per distinct client. */
  const appRefs = async (clientIds: Iterable<string>): Promise<Map<string, AppRef>> => {
    const refs = new Map<string, AppRef>();
    await Promise.all(
      [...new Set(clientIds)].map(async (clientId) => {
        const client = await clients.get(clientId);
        refs.set(clientId, { clientId, name: client?.name || clientId, logoUri: client?.logoUri, firstParty: client?.firstParty ?? false });
      }),
    );
    return refs;
  };

  const revokeGrants = async (grantIds: readonly string[]) => {
    if (grantIds.length === 0) return;
    // Written beside the provider's adapter: what this request read through it is stale.
    forgetAdapterReads();
    await guardDatabase(() =>
      Promise.all([
        ...GRANT_BOUND_MODELS.map((model) => db.collection<StoredRecord>(collectionName(model)).deleteMany({ grantId: { $in: [...grantIds] } })),
        grants.deleteMany({ _id: { $in: [...grantIds] } }),
      ]),
    );
  };

  /** Deletes the session records and the grants that do not outlive a logout. */
  const endSessions = async (records: readonly StoredRecord[]) => {
    if (records.length === 0) return;
    const grantIds: string[] = [];
    for (const record of records) {
      const payload = parse(sessionPayload, record.payload);
      for (const authorization of Object.values(payload?.authorizations ?? {})) {
        if (authorization.grantId && !authorization.persistsLogout) grantIds.push(authorization.grantId);
      }
    }
    forgetAdapterReads();
    await guardDatabase(() => sessions.deleteMany({ _id: { $in: records.map((r) => r._id) } }));
    await revokeGrants(grantIds);
    // The apps signed in through these sessions hear of it (back-channel logout), from the records already read.
    if (loggedOut) await loggedOut.sessionsEnded(records.flatMap((record) => endedSessionOf(record.payload) ?? []));
  };

  return {
    async listSessions(accountId) {
      const records = await guardDatabase(() => sessions.find({ accountId, ...live() }).toArray());
      const parsed = records.flatMap((record) => {
        const payload = parse(sessionPayload, record.payload);
        return payload && payload.accountId === accountId ? [{ record, payload }] : [];
      });
      const refs = await appRefs(parsed.flatMap(({ payload }) => Object.keys(payload.authorizations ?? {})));
      const views = parsed.map(({ record, payload }): SessionView => ({
        uid: payload.uid,
        startedAt: payload.loginTs ? new Date(payload.loginTs * 1000) : undefined,
        lastSeenAt: record.seenAt,
        expiresAt: record.expiresAt ?? undefined,
        ip: record.seenIp,
        userAgent: record.seenUserAgent,
        device: describeUserAgent(record.seenUserAgent),
        amr: payload.amr ?? [],
        apps: Object.keys(payload.authorizations ?? {}).flatMap((id) => refs.get(id) ?? []),
      }));
      const time = (view: SessionView) => (view.lastSeenAt ?? view.startedAt)?.getTime() ?? 0;
      return views.sort((a, b) => time(b) - time(a));
    },

    async endSession(accountId, uid) {
      const record = await guardDatabase(() => sessions.findOne({ uid, accountId }));
      if (!record) return false;
      await endSessions([record]);
      return true;
    },

    async endOtherSessions(accountId, keepUid) {
      const filter = keepUid ? { accountId, uid: { $ne: keepUid } } : { accountId };
      const records = await guardDatabase(() => sessions.find(filter).toArray());
      await endSessions(records);
      return records.length;
    },

    async listApps(accountId, options = {}) {
      const records = await guardDatabase(() => grants.find({ accountId, ...live() }).toArray());
      const byClient = new Map<string, { scopes: Set<string>; claims: Set<string>; since: number | undefined; grants: number }>();
      for (const record of records) {
        const payload = parse(grantPayload, record.payload);
        if (!payload || payload.accountId !== accountId) continue;
        const entry = byClient.get(payload.clientId) ?? { scopes: new Set<string>(), claims: new Set<string>(), since: undefined, grants: 0 };
        for (const scope of (payload.openid?.scope ?? '').split(' ')) if (scope) entry.scopes.add(scope);
        for (const scopes of Object.values(payload.resources ?? {})) for (const scope of scopes.split(' ')) if (scope) entry.scopes.add(scope);
        for (const claim of payload.openid?.claims ?? []) entry.claims.add(claim);
        if (payload.iat && (entry.since === undefined || payload.iat < entry.since)) entry.since = payload.iat;
        entry.grants += 1;
        byClient.set(payload.clientId, entry);
      }
      const refs = await appRefs(byClient.keys());
      const apps = [...byClient].flatMap(([clientId, entry]): ConnectedApp[] => {
        const ref = refs.get(clientId);
        if (!ref || (ref.firstParty && !options.includeFirstParty)) return [];
        return [{ ...ref, scopes: [...entry.scopes], claims: [...entry.claims], since: entry.since ? new Date(entry.since * 1000) : undefined, grants: entry.grants }];
      });
      return apps.sort((a, b) => a.name.localeCompare(b.name));
    },

    async revokeApp(accountId, clientId) {
      const records = await guardDatabase(() => grants.find({ accountId, clientId }, { projection: { _id: 1 } }).toArray());
      await revokeGrants(records.map((r) => r._id));
      return records.length > 0;
    },
  };
}
