import { createHash, generateKeyPairSync } from 'node:crypto';

import type { mongo } from 'mongoose';
import Provider, { errors } from 'oidc-provider';
import type { ClientMetadata, KoaContextWithOIDC } from 'oidc-provider';
import { z } from 'zod';

import { defaults } from '../../config/defaults.js';
import type { AuditActor, AuditService } from '../audit/audit.service.js';
import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import { isDuplicateKey } from '../db/claims.js';
import { AppError } from '../http/app-error.js';
import type { Logger } from '../logging/logger.js';
import type { ClientStore } from '../oidc/mongo-adapter.js';
import { collectionName, createMongoAdapter } from '../oidc/mongo-adapter.js';
import type { AdminAuthority } from './admin-authority.js';
import { NO_AUTHORITY } from './admin-authority.js';
import { RedirectUriError, checkBackchannelLogoutUri, classifyRedirectUri } from './redirect-uri.js';

/**
 * Initial access tokens for dynamic client registration (RFC 7591 §3: the registration endpoint
 * MAY require one), issued by admins.
 *
 * The token itself is the provider's own InitialAccessToken model, stored by our adapter in
 * `oidc_initial_access_token`. NOTE: an opaque token's record id IS its value (oidc-provider's
 * opaque format: value = jti), so nothing shown to admins or written to the audit log uses it:
 * they see `registrationTokenId(value)`, a hash. What the provider's model cannot carry (who
 * issued it, how many uses, revocation) lives beside it in `registration_tokens`, keyed by
 * that id, and every use claims a slot in `registration_token_uses`.
 */

/**
 * The registration policies every token carries, run in this order by the provider on
 * registration (POST /reg) and, copied onto the registration access token, on every RFC 7592
 * update (PUT /reg/:id).
 *
 * NOTE: these names are stored in tokens. The provider answers 500 for a token naming a policy
 * it does not know, so a name here must never be removed or renamed while tokens carry it.
 */
export const REGISTRATION_POLICIES = ['client-rules', 'mark-dynamic', 'limited-uses'] as const;

export type RegistrationPolicyName = (typeof REGISTRATION_POLICIES)[number];
export type RegistrationPolicy = (ctx: KoaContextWithOIDC, properties: ClientMetadata) => Promise<void>;
export type RegistrationPolicies = Record<RegistrationPolicyName, RegistrationPolicy>;

export const REGISTRATION_TOKENS_COLLECTION = 'registration_tokens';
export const REGISTRATION_TOKEN_USES_COLLECTION = 'registration_token_uses';

/** The most uses one token may allow: each registration may try every slot (see claimUse). */
export const MAX_TOKEN_USES = 1000;
/** The longest lifetime a token may be given: a year. */
export const MAX_TOKEN_LIFETIME_SECONDS = 365 * 24 * 60 * 60;
/** Ended tokens (expired or revoked) stay listed this long, then the sweep removes their records. */
const ENDED_TOKEN_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;

export interface RegistrationTokenView {
  /** Derived from the token (a hash), never the token itself. */
  id: string;
  createdAt: Date;
  /** Absent: the token does not expire. */
  expiresAt?: Date;
  /** Absent: unlimited. */
  usesAllowed?: number;
  usesCount: number;
  revoked: boolean;
  createdBy?: AuditActor;
}

export interface CreatedRegistrationToken {
  /** The bearer value for POST /reg: shown once, never stored anywhere we list. */
  token: string;
  view: RegistrationTokenView;
}

/**
 * `by` is who acts (admin-authority.ts; the audit log and `createdBy` name its actor). A token
 * needs no scope beyond the surface's own (admin:clients:write on the management API): what it
 * lets anyone register is bounded by the registration policies (client-rules: OIDC scopes only,
 * no first party, no client_credentials), never by who issued it, so it gives less than an
 * ordinary client writer holds.
 */
export interface RegistrationTokenService {
  create(options: { expiresInSeconds?: number; uses?: number }, by?: AdminAuthority): Promise<CreatedRegistrationToken>;
  /** Newest first, expired and revoked ones too (until the sweep removes them). */
  list(): Promise<RegistrationTokenView[]>;
  /** false when there is no such token or it was already revoked. */
  revoke(id: string, by?: AdminAuthority): Promise<boolean>;
  ensureIndexes(): Promise<void>;
  /** Removes the records of tokens that ended (expired or revoked) over 30 days ago. */
  sweep(now?: Date): Promise<number>;
}

interface TokenRecord {
  _id: string;
  createdAt: Date;
  expiresAt: Date | null;
  usesAllowed: number | null;
  createdBy: AuditActor | null;
  revokedAt: Date | null;
}

interface UseRecord {
  /** `<token id>:<slot>` for a limited token (the unique _id is what makes a slot single-use), `<token id>:client:<client_id>` otherwise. */
  _id: string;
  tokenId: string;
  clientId: string;
  at: Date;
}

/** What admins and the audit log see instead of the token: 96 bits of its SHA-256, base64url. */
export function registrationTokenId(token: string): string {
  // NOTE: hex, not base64url: an id starting with "-" would read as an option on the command line
  // (`registration-token revoke -48…`). 16 hex digits are 64 bits, plenty for a handful of tokens.
  return createHash('sha256').update(`registration_token:${token}`).digest('hex').slice(0, 16);
}

/** The shape of registrationTokenId(). */
export const REGISTRATION_TOKEN_ID_PATTERN = /^[0-9a-f]{16}$/;

const createOptionsSchema = z.object({
  expiresInSeconds: z.number().int().min(60).max(MAX_TOKEN_LIFETIME_SECONDS).optional(),
  uses: z.number().int().min(1).max(MAX_TOKEN_USES).optional(),
});

function toView(record: TokenRecord, usesCount: number): RegistrationTokenView {
  return {
    id: record._id,
    createdAt: record.createdAt,
    ...(record.expiresAt ? { expiresAt: record.expiresAt } : {}),
    ...(record.usesAllowed !== null ? { usesAllowed: record.usesAllowed } : {}),
    usesCount,
    revoked: record.revokedAt !== null,
    ...(record.createdBy ? { createdBy: record.createdBy } : {}),
  };
}

function tokenTarget(id: string) {
  return { type: 'registration_token' as const, id };
}

// ---------------------------------------------------------------------------------------------
// Registration policies (features.registration.policies in src/oidc/provider.ts)
// ---------------------------------------------------------------------------------------------

/**
 * Metadata a registrant may set. RFC 7591 §2: the server ignores metadata it does not
 * understand, and here it also "does not understand" what only an admin may set: our own
 * extras (`first_party` skips the consent page), and anything that makes the server fetch a
 * URL of the registrant's choosing (`jwks_uri`, `sector_identifier_uri`, `request_uris`,
 * back-channel logout) or authenticate with keys (only secrets and PKCE, as for admin-created
 * clients). The first four are set by the provider itself before the policies run.
 */
const REGISTRANT_METADATA = new Set([
  'client_id',
  'client_id_issued_at',
  'client_secret',
  'client_secret_expires_at',
  'redirect_uris',
  'post_logout_redirect_uris',
  'backchannel_logout_uri',
  'backchannel_logout_session_required',
  'grant_types',
  'response_types',
  'token_endpoint_auth_method',
  'application_type',
  'client_name',
  'client_uri',
  'logo_uri',
  'tos_uri',
  'policy_uri',
  'contacts',
  'scope',
  'software_id',
  'software_version',
  'default_max_age',
  'require_auth_time',
  'id_token_signed_response_alg',
  'require_mfa',
]);

/**
 * No client_credentials: a registrant acts for the people who sign in to it, never on its own
 * behalf (a client that gets tokens with no person behind them is an admin's decision).
 */
const ALLOWED_GRANT_TYPES = new Set(['authorization_code', 'refresh_token']);
/**
 * URLs a registrant gives that the consent page shows or links (RFC 7591 §2): https only, so that
 * what the person sees cannot be swapped on the way (and no javascript:, data: or plain http).
 */
const HTTPS_METADATA = ['logo_uri', 'client_uri', 'policy_uri', 'tos_uri'] as const;
const ALLOWED_AUTH_METHODS = new Set(['client_secret_basic', 'client_secret_post', 'none']);
/** The OIDC scopes only: never the management API's (config.adminApi.scopes). */
const REGISTRANT_SCOPES: readonly string[] = defaults.scopes;

function stringList(properties: ClientMetadata, key: string): string[] {
  const value = (properties as Record<string, unknown>)[key];
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
    throw new errors.InvalidClientMetadata(`${key} must be an array of strings`);
  }
  return value as string[];
}

/** As many redirect URIs as an admin may give a client (client-input.ts). */
const MAX_URIS = 20;

/** The same redirect URI rules as for admin-created clients (src/clients/redirect-uri.ts: https or loopback, no fragment, no wildcard). */
function checkUris(uris: string[], key: string, publicClient: boolean): void {
  if (uris.length > MAX_URIS) throw new errors.InvalidClientMetadata(`${key}: at most ${MAX_URIS} URIs`);
  for (const uri of uris) {
    try {
      classifyRedirectUri(uri, { publicClient });
    } catch (err) {
      // NOTE: InvalidClientMetadata answers `invalid_redirect_uri` when the description starts
      // with "redirect_uris" (RFC 7591 §3.2.2), `invalid_client_metadata` otherwise.
      if (err instanceof RedirectUriError) throw new errors.InvalidClientMetadata(`${key}: ${err.message}`);
      throw err;
    }
  }
}

function isHttpsUrl(value: unknown): boolean {
  if (typeof value !== 'string' || value.length > 2000) return false;
  try {
    const url = new URL(value);
    return url.protocol === 'https:' && url.hostname !== '' && url.username === '' && url.password === '';
  } catch {
    return false;
  }
}

/** House rules for a registrant's metadata, on registration and on every RFC 7592 update. */
function applyClientRules(properties: ClientMetadata): void {
  const record = properties as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!REGISTRANT_METADATA.has(key)) delete record[key];
  }

  const authMethod = record.token_endpoint_auth_method ?? 'client_secret_basic';
  if (typeof authMethod !== 'string' || !ALLOWED_AUTH_METHODS.has(authMethod)) {
    throw new errors.InvalidClientMetadata(`token_endpoint_auth_method must be one of ${[...ALLOWED_AUTH_METHODS].join(', ')}`);
  }
  const publicClient = authMethod === 'none';
  checkUris(stringList(properties, 'redirect_uris'), 'redirect_uris', publicClient);
  checkUris(stringList(properties, 'post_logout_redirect_uris'), 'post_logout_redirect_uris', publicClient);

  // OpenID Connect Back-Channel Logout §2.2. https only, loopback too: unlike a redirect, this
  // URI is called by the server itself, and a registrant must not aim it at the server's own host.
  const logoutUri = record.backchannel_logout_uri;
  if (logoutUri !== undefined) {
    if (typeof logoutUri !== 'string') throw new errors.InvalidClientMetadata('backchannel_logout_uri must be a string');
    try {
      checkBackchannelLogoutUri(logoutUri, { loopbackHttp: false });
    } catch (err) {
      if (err instanceof RedirectUriError) throw new errors.InvalidClientMetadata(`backchannel_logout_uri "${err.uri}" ${err.problem}`);
      throw err;
    }
  }

  const disallowed = stringList(properties, 'grant_types').find((g) => !ALLOWED_GRANT_TYPES.has(g));
  if (disallowed) throw new errors.InvalidClientMetadata(`grant_types: ${disallowed} is not allowed`);

  for (const key of HTTPS_METADATA) {
    const value = record[key];
    if (value !== undefined && !isHttpsUrl(value)) throw new errors.InvalidClientMetadata(`${key} must be an https URL`);
  }

  if (record.scope === undefined) {
    // Without `scope` a client may ask for any scope the server knows; a registrant gets the
    // OIDC ones only, whatever other scopes the server comes to serve.
    record.scope = REGISTRANT_SCOPES.join(' ');
  } else {
    if (typeof record.scope !== 'string') throw new errors.InvalidClientMetadata('scope must be a string');
    const unknown = record.scope.split(' ').filter((s) => s && !REGISTRANT_SCOPES.includes(s));
    if (unknown.length > 0) throw new errors.InvalidClientMetadata(`scope: ${unknown.join(' ')} may not be registered`);
  }

  const name = record.client_name;
  // eslint-disable-next-line no-control-regex -- the point is to refuse control characters
  if (name !== undefined && (typeof name !== 'string' || name.length > 100 || /[\u0000-\u001f\u007f]/.test(name))) {
    throw new errors.InvalidClientMetadata('client_name must be a string of at most 100 characters without control characters');
  }
}

export interface RegistrationPolicyDeps {
  db: mongo.Db;
  audit: AuditService;
  clock?: Clock;
}

/**
 * The implementations of REGISTRATION_POLICIES, for `features.registration.policies`.
 * A policy that throws refuses the request before the provider stores anything.
 */
export function createRegistrationPolicies({ db, audit, clock = systemClock }: RegistrationPolicyDeps): RegistrationPolicies {
  const now = () => clock.nowMs();
  const tokens = db.collection<TokenRecord>(REGISTRATION_TOKENS_COLLECTION);
  const uses = db.collection<UseRecord>(REGISTRATION_TOKEN_USES_COLLECTION);

  async function recordUse(tokenId: string, outcome: 'success' | 'failure', details: { clientId?: string; reason?: string; use?: number; usesAllowed?: number | null }) {
    await audit.record({
      action: 'registration_token.used',
      outcome,
      actor: { type: 'anonymous' },
      target: tokenTarget(tokenId),
      clientId: details.clientId,
      reason: details.reason,
      details: {
        ...(details.use !== undefined ? { use: details.use } : {}),
        ...(typeof details.usesAllowed === 'number' ? { usesAllowed: details.usesAllowed } : {}),
      },
    });
  }

  /**
   * Claims one use of the token: a unique insert of `<id>:<k>` for a free k in 1..N.
   * NOTE: FerretDB applies conditional updates and $inc non-atomically under concurrency; a
   * unique `_id` insert is atomic on every server, so N slots admit at most N registrations
   * however many run at once. A slot seen as taken (stale read) only costs a failed insert.
   */
  async function claimUse(tokenId: string, usesAllowed: number, clientId: string): Promise<number | undefined> {
    const taken = new Set((await uses.find({ tokenId }, { projection: { _id: 1 } }).toArray()).map((u) => u._id));
    for (let k = 1; k <= usesAllowed; k++) {
      const _id = `${tokenId}:${k}`;
      if (taken.has(_id)) continue;
      try {
        await uses.insertOne({ _id, tokenId, clientId, at: new Date(now()) });
        return k;
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
      }
    }
    return undefined;
  }

  return {
    async 'client-rules'(_ctx, properties) {
      applyClientRules(properties);
    },

    async 'mark-dynamic'(_ctx, properties) {
      // Shown in the admin console as "registered dynamically"; set again on every update,
      // which replaces the whole record (RFC 7592 §2.2).
      (properties as Record<string, unknown>).dynamically_registered = true;
    },

    async 'limited-uses'(ctx, properties) {
      const iat = ctx.oidc.entities.InitialAccessToken;
      // An RFC 7592 update (registration access token): uses count registrations only.
      if (!iat) return;
      // The provider validates only after the policies: validate first, so that metadata it
      // would refuse never uses up the token.
      await ctx.oidc.provider.Client.validate(properties);

      const tokenId = registrationTokenId(iat.jti);
      const clientId = String(properties.client_id);
      const record = await tokens.findOne({ _id: tokenId });
      // Fail closed: a token without our record was not issued by this service.
      if (!record || record.revokedAt || (record.expiresAt && record.expiresAt.getTime() <= now())) {
        const reason = !record ? 'unknown_token' : record.revokedAt ? 'revoked' : 'expired';
        await recordUse(tokenId, 'failure', { reason });
        throw new errors.InvalidToken(`initial access token ${reason === 'unknown_token' ? 'not found' : reason}`);
      }

      if (record.usesAllowed === null) {
        await uses.insertOne({ _id: `${tokenId}:client:${clientId}`, tokenId, clientId, at: new Date(now()) });
        await recordUse(tokenId, 'success', { clientId });
        return;
      }
      const use = await claimUse(tokenId, record.usesAllowed, clientId);
      if (use === undefined) {
        await recordUse(tokenId, 'failure', { reason: 'uses_exhausted', usesAllowed: record.usesAllowed });
        // RFC 7591 §3: the token is presented as an RFC 6750 bearer token, and a used-up one is
        // an invalid token (401 invalid_token).
        throw new errors.InvalidToken('initial access token has no uses left');
      }
      await recordUse(tokenId, 'success', { clientId, use, usesAllowed: record.usesAllowed });
      // NOTE: the provider stores the client after this, the last policy; what could still fail
      // is the database, and a use lost to an outage is not given back.
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------

export interface RegistrationTokenServiceDeps {
  /**
   * The provider whose InitialAccessToken model mints the tokens: the server's own, or for a
   * process without one (the CLI) createMintingProvider's. Asked on each create, so a caller
   * may build it lazily (the provider is built after the services it reads).
   */
  provider: () => Provider;
  db: mongo.Db;
  audit: AuditService;
  clock?: Clock;
}

export function createRegistrationTokenService(deps: RegistrationTokenServiceDeps): RegistrationTokenService {
  const { db, audit, clock = systemClock } = deps;
  const now = () => clock.nowMs();
  const tokens = db.collection<TokenRecord>(REGISTRATION_TOKENS_COLLECTION);
  const uses = db.collection<UseRecord>(REGISTRATION_TOKEN_USES_COLLECTION);
  const iatRecords = db.collection<{ _id: string }>(collectionName('InitialAccessToken'));

  async function useCounts(ids: string[]): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    if (ids.length === 0) return counts;
    const rows = await uses
      .aggregate<{ _id: string; n: number }>([{ $match: { tokenId: { $in: ids } } }, { $group: { _id: '$tokenId', n: { $sum: 1 } } }])
      .toArray();
    for (const row of rows) counts.set(row._id, row.n);
    return counts;
  }

  /**
   * Deletes the provider's record of a token known only by its id.
   * NOTE: the record's _id is the token value, which we keep nowhere else; finding it means
   * hashing the ids of the (few, admin-issued) records there are.
   */
  async function destroyProviderRecord(id: string): Promise<void> {
    for await (const { _id } of iatRecords.find({}, { projection: { _id: 1 } })) {
      if (registrationTokenId(_id) === id) await iatRecords.deleteOne({ _id });
    }
  }

  return {
    async create(options, by = NO_AUTHORITY) {
      const { actor } = by;
      const parsed = createOptionsSchema.safeParse(options);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new AppError('registration_token.invalid', { issue: `${issue?.path.join('.') ?? 'options'}: ${issue?.message ?? 'invalid'}` });
      }
      const { expiresInSeconds, uses: usesAllowed } = parsed.data;
      const provider = deps.provider();
      const createdAt = new Date(now());
      const iat = new provider.InitialAccessToken({
        ...(expiresInSeconds ? { expiresIn: expiresInSeconds } : {}),
        policies: [...REGISTRATION_POLICIES],
      });
      const token = await iat.save();
      const record: TokenRecord = {
        _id: registrationTokenId(token),
        createdAt,
        expiresAt: expiresInSeconds ? new Date(createdAt.getTime() + expiresInSeconds * 1000) : null,
        usesAllowed: usesAllowed ?? null,
        createdBy: actor,
        revokedAt: null,
      };
      try {
        await tokens.insertOne(record);
      } catch (err) {
        // Not handed out yet: take it back rather than leave a token without limits on record.
        await iat.destroy().catch(() => undefined);
        throw err;
      }
      await audit.record({
        action: 'registration_token.created',
        outcome: 'success',
        actor,
        target: tokenTarget(record._id),
        details: {
          ...(record.expiresAt ? { expiresAt: record.expiresAt.toISOString() } : {}),
          ...(usesAllowed !== undefined ? { usesAllowed } : {}),
        },
      });
      return { token, view: toView(record, 0) };
    },

    async list() {
      const records = await tokens.find().sort({ createdAt: -1, _id: 1 }).toArray();
      const counts = await useCounts(records.map((r) => r._id));
      return records.map((r) => toView(r, counts.get(r._id) ?? 0));
    },

    async revoke(id, by = NO_AUTHORITY) {
      const { actor } = by;
      const record = await tokens.findOne({ _id: id });
      if (!record || record.revokedAt) return false;
      await tokens.updateOne({ _id: id }, { $set: { revokedAt: new Date(now()) } });
      // The policy refuses a revoked token already; removing the provider's record also stops
      // one that was somehow issued without our policies.
      await destroyProviderRecord(id);
      await audit.record({ action: 'registration_token.revoked', outcome: 'success', actor, target: tokenTarget(id) });
      return true;
    },

    async ensureIndexes() {
      await uses.createIndex({ tokenId: 1 });
    },

    async sweep(at = new Date(now())) {
      const before = new Date(at.getTime() - ENDED_TOKEN_RETENTION_MS);
      const ended = await tokens
        .find({ $or: [{ expiresAt: { $ne: null, $lte: before } }, { revokedAt: { $ne: null, $lte: before } }] }, { projection: { _id: 1 } })
        .toArray();
      if (ended.length === 0) return 0;
      const ids = ended.map((r) => r._id);
      await uses.deleteMany({ tokenId: { $in: ids } });
      const result = await tokens.deleteMany({ _id: { $in: ids } });
      return result.deletedCount;
    },
  };
}

export interface MintingProviderDeps {
  issuer: string;
  db: mongo.Db;
  clientStore: ClientStore;
  logger: Logger;
}

/**
 * A provider for processes without the server's (the CLI), that only mints registration tokens.
 *
 * The token is still minted by oidc-provider's own InitialAccessToken model, through our
 * adapter: so the stored record (payload fields, the value-is-the-id rule, policy checks) is
 * whatever the server's provider expects, now and after an upgrade, rather than our copy of it.
 * It serves no requests (registration is off on it: the policies are there only because a token
 * may name only configured ones), and its signing key is a throwaway that never signs anything.
 */
export function createMintingProvider(deps: MintingProviderDeps): Provider {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const refuse = async () => {
    throw new Error('registration is not served by the token-minting provider');
  };
  return new Provider(deps.issuer, {
    adapter: createMongoAdapter({ db: deps.db, clientStore: deps.clientStore, logger: deps.logger }),
    jwks: { keys: [privateKey.export({ format: 'jwk' }) as never] },
    features: {
      devInteractions: { enabled: false },
      registration: {
        enabled: false,
        initialAccessToken: true,
        policies: Object.fromEntries(REGISTRATION_POLICIES.map((name) => [name, refuse])),
      },
    },
  });
}
