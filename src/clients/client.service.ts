import { createHash, randomBytes } from 'node:crypto';

import type { QueryFilter, mongo } from 'mongoose';
import type { AdapterPayload } from 'oidc-provider';

import { defaults } from '../../config/defaults.js';
import type { AuditService } from '../audit/audit.service.js';
import type { Config } from '../config/config.js';
import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import { newClientId } from '../crypto/identifiers.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { insertClaim, isDuplicateKey } from '../db/claims.js';
import { ensureExpiryIndex } from '../db/expiry-index.js';
import { optionalProfileScopes } from '../accounts/profile-claims.js';
import { AppError, AppErrorBase } from '../http/app-error.js';
import type { ClientStore } from '../oidc/mongo-adapter.js';
import type { Logger } from '../logging/logger.js';
import type { AdminAuthority } from './admin-authority.js';
import { CLIENTS_GRANT_SCOPE, NO_AUTHORITY, scopesNotHeld } from './admin-authority.js';
import type { ClientInput, NewClientInput, ValidClient } from './client-input.js';
import {
  MANAGED_METADATA,
  isNewClientInput,
  metadataFor,
  parseNewClientInput,
  usesSecret,
  validateClientInput,
} from './client-input.js';
import type { StampedCacheOptions } from './client-cache.js';
import { createStampedCache } from './client-cache.js';
import type { ClientModel, ClientRecord } from './client.model.js';

export { ClientValidationError, clientInputSchema, newClientSchema } from './client-input.js';
export type { ClientInput, NewClientInput } from './client-input.js';

/**
 * The one place where OAuth clients are created, edited, rotated and deleted (the console, the
 * management API and the CLI all come here), and the provider's ClientStore.
 */

export interface ClientView {
  clientId: string;
  name: string;
  logoUri?: string | undefined;
  /** token_endpoint_auth_method none: no secret, PKCE only. */
  public: boolean;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  /** OpenID Connect Back-Channel Logout: where logout tokens go (metadata `backchannel_logout_uri`). */
  backchannelLogoutUri?: string | undefined;
  /** Logout tokens carry `sid` (metadata `backchannel_logout_session_required`). */
  backchannelLogoutSessionRequired: boolean;
  grantTypes: string[];
  responseTypes: string[];
  applicationType: 'web' | 'native';
  tokenEndpointAuthMethod: string;
  jwksUri?: string | undefined;
  hasJwks: boolean;
  /**
   * Scopes the client may ask for (metadata `scope`). Without it, the OpenID Connect scopes: the
   * management API's are granted only when listed (src/admin/api).
   */
  scopes: string[];
  requireMfa: boolean;
  firstParty: boolean;
  /** An admin let this confidential client leave out PKCE (metadata `skip_pkce`). */
  skipPkce: boolean;
  /** API resources (RFC 8707 identifiers) this client may get access tokens for (metadata `allowed_resources`). */
  allowedResources: string[];
  /** The resource a request without `resource` is for (metadata `default_resource`). */
  defaultResource?: string | undefined;
  /** Registered through RFC 7591 dynamic client registration. */
  dynamic: boolean;
  accessTokenTtl?: number | undefined;
  idTokenTtl?: number | undefined;
  refreshTokenTtl?: number | undefined;
  secretRotatedAt?: Date | undefined;
  /** Until when the secret before the last rotation still works (absent once it stopped). */
  previousSecretExpiresAt?: Date | undefined;
  createdAt: Date;
  updatedAt: Date;
}

/** A client with its secret, when one was just made: shown once, only the sealed form is stored. */
export interface ClientWithSecret extends ClientView {
  clientSecret?: string | undefined;
}

export type CreatedClient = ClientWithSecret;

export interface ClientPage {
  clients: ClientView[];
  /** Pass back as `cursor` for the next page; absent on the last page. */
  nextCursor?: string | undefined;
  /** How many clients match the search (all pages). */
  total: number;
}

export interface ClientListOptions {
  /** Case-insensitive substring of the name or the client id. */
  search?: string | undefined;
  /** 1-200, default 50. */
  limit?: number | undefined;
  cursor?: string | undefined;
}

/**
 * Every change takes the caller's authority (admin-authority.ts; default NO_AUTHORITY). A
 * privileged client, one with management API scopes or `firstParty`, may be created, changed,
 * have its secret rotated or be deleted only by a caller holding `admin:clients:grant` and each
 * of those scopes: otherwise 403 `client.scope_not_held`, nothing stored, and the refusal audited.
 */
export interface ClientService extends ClientStore {
  /** `public`/`clientId` without any ClientInput-only field: the CLI's and seed's NewClientInput. */
  create(input: NewClientInput | ClientInput, by?: AdminAuthority): Promise<CreatedClient>;
  /**
   * Replaces every editable field (other metadata, e.g. from dynamic registration, is kept). The
   * secret is kept; a switch to a method without a secret drops it, a switch to a secret method
   * from one without makes a new secret, returned here once.
   */
  update(clientId: string, input: ClientInput, by?: AdminAuthority): Promise<ClientWithSecret>;
  /** A new secret; the one before stays valid for CLIENT_SECRET_GRACE_PERIOD seconds. */
  rotateSecret(clientId: string, by?: AdminAuthority): Promise<{ clientSecret: string; previousSecretExpiresAt: Date }>;
  get(clientId: string): Promise<ClientView | undefined>;
  /** Ordered by name, then client id. */
  list(options?: ClientListOptions): Promise<ClientPage>;
  /** Deletes the client and every token, code and grant issued to it. */
  remove(clientId: string, by?: AdminAuthority): Promise<boolean>;
  /** The previous secret while it is still valid (client-secret-rotation.ts). */
  previousSecret(clientId: string): Promise<string | undefined>;
  ensureIndexes(): Promise<void>;
  /** Removes expired rotation claims (servers without TTL indexes). */
  sweep(now?: Date): Promise<number>;
  /**
   * Serves `find` (what the provider reads on every request) from this node's memory, watching
   * for changes made anywhere (client-cache.ts) until stopWatching(). Without it (the command
   * line), every read goes to the database.
   */
  startWatching(): void;
  stopWatching(): void;
}

export interface ClientServiceDeps {
  Client: ClientModel;
  secretBox: SecretBox;
  /**
   * Where admin changes are recorded. createServices (src/deps.ts) always passes it; only a bare
   * ClientStore, where no admin acts (the adapter's tests), goes without.
   */
  audit?: AuditService | undefined;
  /** Default: the documented defaults (config/defaults.ts). */
  config?: (Pick<Config, 'clientSecretGracePeriodSeconds' | 'ttl' | 'adminApi'> & Partial<Pick<Config, 'profileScopes'>>) | undefined;
  /** Where the provider's oidc_* collections are; default: the model's database. */
  db?: mongo.Db | undefined;
  clock?: Clock;
  logger?: Logger | undefined;
  /** The node cache's timing (client-cache.ts); tests may shorten it. */
  cache?: Pick<StampedCacheOptions, 'pollIntervalMs' | 'trustMs' | 'maxAgeMs'> | undefined;
}

/**
 * What this node keeps of a client: the provider's metadata with the secret already unsealed
 * (opening it costs an AES-GCM decryption per request otherwise), and the previous secret
 * sealed, opened only when a request presents it (client-secret-rotation.ts).
 */
interface CachedClient {
  metadata: AdapterPayload;
  previousSecretSealed: string | null;
  previousSecretExpiresAt: Date | null;
  previousSecret?: string;
}

/** One document per secret rotated away: `{ _id: "<clientId>:<digest of the replaced sealed secret>" }`. */
export const SECRET_ROTATIONS_COLLECTION = 'client_secret_rotations';
/** Rotations race within milliseconds; an hour is plenty. */
const ROTATION_CLAIM_LIFETIME_MS = 60 * 60 * 1000;

interface RotationClaim {
  _id: string;
  clientId: string;
  expiresAt: Date;
}

/** base64url of 32 random bytes: URL-safe, because some RPs put secrets in Basic auth without encoding them. */
function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const secretContext = (clientId: string) => `client_secret:${clientId}`;
// Its own context: the previous secret's sealed value cannot pass for the current one, or back.
const previousSecretContext = (clientId: string) => `client_secret_previous:${clientId}`;

const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : []);
const optionalString = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
const optionalNumber = (value: unknown): number | undefined => (typeof value === 'number' ? value : undefined);

/** The editable fields of a stored client, in ClientInput terms: what `changed` in the audit compares. */
function editableFields(metadata: AdapterPayload, name: string): Record<string, unknown> {
  return {
    name,
    logoUri: optionalString(metadata.logo_uri),
    redirectUris: strings(metadata.redirect_uris),
    postLogoutRedirectUris: strings(metadata.post_logout_redirect_uris),
    backchannelLogoutUri: optionalString(metadata.backchannel_logout_uri),
    backchannelLogoutSessionRequired: metadata.backchannel_logout_session_required === true,
    grantTypes: strings(metadata.grant_types),
    applicationType: metadata.application_type === 'native' ? 'native' : 'web',
    tokenEndpointAuthMethod: String(metadata.token_endpoint_auth_method ?? 'client_secret_basic'),
    jwksUri: optionalString(metadata.jwks_uri),
    jwks: metadata.jwks,
    scopes: typeof metadata.scope === 'string' ? metadata.scope.split(' ').filter(Boolean) : [...defaults.scopes],
    requireMfa: metadata.require_mfa === true,
    firstParty: metadata.first_party === true,
    skipPkce: metadata.skip_pkce === true,
    allowedResources: strings(metadata.allowed_resources),
    defaultResource: optionalString(metadata.default_resource),
    accessTokenTtl: optionalNumber(metadata.access_token_ttl),
    idTokenTtl: optionalNumber(metadata.id_token_ttl),
    refreshTokenTtl: optionalNumber(metadata.refresh_token_ttl),
  };
}

function changedFields(before: Record<string, unknown>, after: Record<string, unknown>): string[] {
  return Object.keys(after).filter((key) => JSON.stringify(before[key]) !== JSON.stringify(after[key]));
}

interface ListCursor {
  name: string;
  id: string;
}

function encodeCursor(cursor: ListCursor): string {
  return Buffer.from(JSON.stringify([cursor.name, cursor.id]), 'utf8').toString('base64url');
}

function decodeCursor(raw: string): ListCursor {
  try {
    const value = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'string') {
      return { name: value[0], id: value[1] };
    }
  } catch {
    // Falls through to the error below.
  }
  throw new AppError('client.invalid_cursor');
}

/**
 * Clients this server runs itself (its account page and admin console): rewritten at every start
 * (account-client.ts, admin-client.ts), so admins may look at them but not change or delete them.
 */
export const BUILT_IN_CLIENT_IDS: readonly string[] = ['account-console', 'admin-console'];

/** What makes a client privileged: its management API scopes, and whether it skips consent. */
interface Powers {
  scopes: readonly string[];
  firstParty: boolean;
}

/** The privileged operations on a client, as the refusal names them. */
const OPERATIONS = {
  'client.created': 'Creating',
  'client.updated': 'Changing',
  'client.secret_rotated': 'Rotating the secret of',
  'client.deleted': 'Deleting',
} as const;
type ClientAction = keyof typeof OPERATIONS;

/** 403: the change would give (or reach) powers the caller does not hold. */
export class ScopeNotHeldError extends AppErrorBase {
  override name = 'ScopeNotHeldError';
  readonly missingScopes: string[];

  constructor(action: ClientAction, missingScopes: string[]) {
    super('client.scope_not_held', { operation: OPERATIONS[action], grantScope: CLIENTS_GRANT_SCOPE, missing: missingScopes });
    this.missingScopes = missingScopes;
  }
}

function refuseBuiltIn(clientId: string): void {
  if (BUILT_IN_CLIENT_IDS.includes(clientId)) {
    throw new AppError('client.built_in', { name: clientId });
  }
}

export function createClientService(deps: ClientServiceDeps): ClientService {
  const { Client, secretBox, audit } = deps;
  const clock = deps.clock ?? systemClock;
  const now = () => clock.nowMs();
  const gracePeriodSeconds = deps.config?.clientSecretGracePeriodSeconds ?? defaults.clientSecretGracePeriod;
  const rules = {
    knownScopes: [
      ...defaults.scopes,
      ...(deps.config?.profileScopes ? optionalProfileScopes(deps.config.profileScopes) : []),
      ...(deps.config?.adminApi.scopes ?? defaults.adminScopes),
    ],
    maxRefreshTokenTtl: deps.config?.ttl.refreshTokenAbsolute ?? defaults.ttl.refreshTokenAbsolute,
  };

  const database = (): mongo.Db => {
    const db = deps.db ?? Client.db.db;
    if (!db) throw new Error('database connection is not open');
    return db;
  };
  const rotations = () => database().collection<RotationClaim>(SECRET_ROTATIONS_COLLECTION);
  // NOTE: every write to `clients` below calls `cache.changed()` after it: the other nodes drop
  // their copies within one poll interval, this one at once.
  const cache = createStampedCache<CachedClient>({ db: database, name: 'clients', logger: deps.logger, ...deps.cache });

  const toView = (record: ClientRecord): ClientView => {
    const metadata = JSON.parse(record.metadata) as AdapterPayload;
    const fields = editableFields(metadata, record.name);
    const previousValid = record.previousSecretSealed && record.previousSecretExpiresAt && record.previousSecretExpiresAt.getTime() > now();
    return {
      clientId: record._id,
      name: record.name,
      logoUri: fields.logoUri as string | undefined,
      public: record.public,
      redirectUris: fields.redirectUris as string[],
      postLogoutRedirectUris: fields.postLogoutRedirectUris as string[],
      backchannelLogoutUri: fields.backchannelLogoutUri as string | undefined,
      backchannelLogoutSessionRequired: fields.backchannelLogoutSessionRequired as boolean,
      grantTypes: fields.grantTypes as string[],
      responseTypes: strings(metadata.response_types),
      applicationType: fields.applicationType as 'web' | 'native',
      tokenEndpointAuthMethod: fields.tokenEndpointAuthMethod as string,
      jwksUri: fields.jwksUri as string | undefined,
      hasJwks: typeof metadata.jwks === 'object' && metadata.jwks !== null,
      scopes: fields.scopes as string[],
      requireMfa: fields.requireMfa as boolean,
      firstParty: fields.firstParty as boolean,
      skipPkce: fields.skipPkce as boolean,
      allowedResources: fields.allowedResources as string[],
      defaultResource: fields.defaultResource as string | undefined,
      dynamic: metadata.dynamically_registered === true,
      accessTokenTtl: fields.accessTokenTtl as number | undefined,
      idTokenTtl: fields.idTokenTtl as number | undefined,
      refreshTokenTtl: fields.refreshTokenTtl as number | undefined,
      secretRotatedAt: record.secretRotatedAt ?? undefined,
      previousSecretExpiresAt: previousValid ? (record.previousSecretExpiresAt ?? undefined) : undefined,
      createdAt: record.createdAt,
      updatedAt: record.updatedAt,
    };
  };

  const load = async (clientId: string): Promise<ClientRecord> => {
    const doc = await Client.findById(clientId).lean();
    if (!doc) throw new AppError('client.not_found', { clientId });
    return doc;
  };

  const recordChange = (action: ClientAction, by: AdminAuthority, clientId: string, name: string, changed?: string[]) =>
    audit?.record({
      action,
      outcome: 'success',
      actor: by.actor,
      target: { type: 'client', id: clientId, label: name },
      ...(changed ? { details: { changed } } : {}),
    });

  const managementScopes: ReadonlySet<string> = new Set(deps.config?.adminApi.scopes ?? defaults.adminScopes);
  const powersOf = (record: ClientRecord): Powers => {
    const fields = editableFields(JSON.parse(record.metadata) as AdapterPayload, record.name);
    return { scopes: fields.scopes as string[], firstParty: fields.firstParty as boolean };
  };

  /**
   * Refuses (403, audited as a failure) unless `by` may give or reach these powers: nothing is
   * needed for an ordinary client; a client with management API scopes or first-party status
   * needs admin:clients:grant and each of those scopes. Changing such a client, rotating its
   * secret (which is obtaining its powers) or deleting it needs the same as giving them.
   */
  const authorize = async (action: ClientAction, by: AdminAuthority, powers: Powers[], target: { id?: string; name: string }) => {
    const scopes = powers.flatMap((p) => p.scopes.filter((s) => managementScopes.has(s)));
    const privileged = scopes.length > 0 || powers.some((p) => p.firstParty);
    const missing = privileged ? scopesNotHeld(by, [CLIENTS_GRANT_SCOPE, ...scopes]) : [];
    if (missing.length === 0) return;
    await audit?.record({
      action,
      outcome: 'failure',
      actor: by.actor,
      ...(target.id !== undefined ? { target: { type: 'client', id: target.id, label: target.name } } : {}),
      reason: 'scope_not_held',
      details: { missingScopes: missing, ...(target.id === undefined ? { name: target.name } : {}) },
    });
    throw new ScopeNotHeldError(action, missing);
  };

  /**
   * Every code, token and grant issued to the client, in the provider's collections, found by
   * the indexed `clientId` the adapter writes beside the payload (the migration
   * 001-backfill-oidc-owner set it on older records). Sessions stay: they belong to the person,
   * and the provider skips clients it cannot find.
   */
  const removeArtifacts = async (clientId: string): Promise<number> => {
    const db = database();
    const collections = await db.listCollections({}, { nameOnly: true }).toArray();
    const names = collections.map((c) => c.name).filter((n) => n.startsWith('oidc_') && n !== 'oidc_session' && n !== 'oidc_consume_claims');
    let removed = 0;
    for (const name of names) {
      const result = await db.collection(name).deleteMany({ clientId });
      removed += result.deletedCount;
    }
    return removed;
  };

  const service: ClientService = {
    async create(input, by = NO_AUTHORITY) {
      // Seeds pass their own ids; nobody may take a built-in one.
      if (isNewClientInput(input) && input.clientId !== undefined && BUILT_IN_CLIENT_IDS.includes(input.clientId)) {
        throw new AppError('client.built_in', { name: input.clientId });
      }
      const { input: clientInput, clientId: requestedId } = isNewClientInput(input)
        ? parseNewClientInput(input)
        : { input, clientId: undefined };
      const client: ValidClient = validateClientInput(clientInput, rules);
      await authorize('client.created', by, [client], { name: client.name });
      const clientId = requestedId ?? newClientId();
      const clientSecret = usesSecret(client.tokenEndpointAuthMethod) ? newSecret() : undefined;
      const metadata = metadataFor(clientId, client);
      let doc;
      try {
        doc = await Client.create({
          _id: clientId,
          name: client.name,
          metadata: JSON.stringify(metadata),
          secretSealed: clientSecret ? secretBox.seal(clientSecret, secretContext(clientId)) : null,
          public: client.tokenEndpointAuthMethod === 'none',
        });
      } catch (err) {
        if (isDuplicateKey(err)) {
          throw new AppError('client.exists', { clientId });
        }
        throw err;
      }
      await cache.changed();
      const view = toView(doc.toObject());
      const set = Object.entries(editableFields(metadata, client.name))
        .filter(([, v]) => v !== undefined && v !== false && !(Array.isArray(v) && v.length === 0))
        .map(([k]) => k);
      await recordChange('client.created', by, clientId, client.name, set);
      return { ...view, clientSecret };
    },

    async update(clientId, input, by = NO_AUTHORITY) {
      refuseBuiltIn(clientId);
      const existing = await load(clientId);
      const target = { id: clientId, name: existing.name };
      // The client as it is first (a caller who may not touch it learns that before any input
      // problem), then what it would become.
      await authorize('client.updated', by, [powersOf(existing)], target);
      const client = validateClientInput(input, rules);
      await authorize('client.updated', by, [powersOf(existing), client], target);
      const before = JSON.parse(existing.metadata) as AdapterPayload;
      const kept = Object.fromEntries(Object.entries(before).filter(([key]) => !(MANAGED_METADATA as readonly string[]).includes(key)));
      const metadata: AdapterPayload = { ...kept, ...metadataFor(clientId, client) };
      const changed = changedFields(editableFields(before, existing.name), editableFields(metadata, client.name));

      const set: Partial<ClientRecord> = {
        name: client.name,
        metadata: JSON.stringify(metadata),
        public: client.tokenEndpointAuthMethod === 'none',
      };
      let clientSecret: string | undefined;
      if (!usesSecret(client.tokenEndpointAuthMethod)) {
        // No secret method, no secret: neither the current nor the previous one works any more.
        if (existing.secretSealed || existing.previousSecretSealed) changed.push('clientSecret');
        Object.assign(set, { secretSealed: null, previousSecretSealed: null, previousSecretExpiresAt: null, secretRotatedAt: null });
      } else if (!existing.secretSealed) {
        clientSecret = newSecret();
        set.secretSealed = secretBox.seal(clientSecret, secretContext(clientId));
        changed.push('clientSecret');
      }
      const updated = await Client.findOneAndUpdate({ _id: clientId }, { $set: set }, { returnDocument: 'after' }).lean();
      await cache.changed();
      if (!updated) throw new AppError('client.not_found', { clientId });
      await recordChange('client.updated', by, clientId, client.name, changed);
      return { ...toView(updated), clientSecret };
    },

    async rotateSecret(clientId, by = NO_AUTHORITY) {
      refuseBuiltIn(clientId);
      const existing = await load(clientId);
      await authorize('client.secret_rotated', by, [powersOf(existing)], { id: clientId, name: existing.name });
      const metadata = JSON.parse(existing.metadata) as AdapterPayload;
      const method = String(metadata.token_endpoint_auth_method ?? 'client_secret_basic');
      if (!usesSecret(method) || !existing.secretSealed) {
        throw new AppError('client.no_secret', { clientId, method });
      }
      const rotatedAt = new Date(now());
      // Two admins (or pipelines) rotating at the same moment would each be shown a new secret
      // while only the last one written works. One rotation per current secret: the claim is
      // named after the sealed secret being replaced, which is never current again.
      const replaced = createHash('sha256').update(existing.secretSealed).digest('base64url').slice(0, 22);
      if (!(await insertClaim(rotations(), { _id: `${clientId}:${replaced}`, clientId, expiresAt: new Date(rotatedAt.getTime() + ROTATION_CLAIM_LIFETIME_MS) }))) {
        throw new AppError('client.rotation_conflict');
      }
      const previousSecretExpiresAt = new Date(rotatedAt.getTime() + gracePeriodSeconds * 1000);
      const clientSecret = newSecret();
      const graced = gracePeriodSeconds > 0;
      // NOTE: a second rotation within the grace period ends the older secret at once: only the
      // secret that was current until now is kept as the previous one.
      const previous = graced ? secretBox.seal(secretBox.open(existing.secretSealed, secretContext(clientId)), previousSecretContext(clientId)) : null;
      await Client.updateOne(
        { _id: clientId },
        {
          $set: {
            secretSealed: secretBox.seal(clientSecret, secretContext(clientId)),
            previousSecretSealed: previous,
            previousSecretExpiresAt: graced ? previousSecretExpiresAt : null,
            secretRotatedAt: rotatedAt,
          },
        },
      );
      await cache.changed();
      await recordChange('client.secret_rotated', by, clientId, existing.name, ['clientSecret']);
      return { clientSecret, previousSecretExpiresAt };
    },

    async get(clientId) {
      const doc = await Client.findById(clientId).lean();
      return doc ? toView(doc) : undefined;
    },

    async list(options = {}) {
      const limit = Math.min(Math.max(Math.trunc(options.limit ?? 50), 1), 200);
      const search = options.search?.trim();
      const filter: QueryFilter<ClientRecord> = search
        ? { $or: [{ name: { $regex: escapeRegex(search), $options: 'i' } }, { _id: { $regex: escapeRegex(search), $options: 'i' } }] }
        : {};
      let page = filter;
      if (options.cursor) {
        const after = decodeCursor(options.cursor);
        const next: QueryFilter<ClientRecord> = { $or: [{ name: { $gt: after.name } }, { name: after.name, _id: { $gt: after.id } }] };
        page = search ? { $and: [filter, next] } : next;
      }
      const [docs, total] = await Promise.all([
        Client.find(page).sort({ name: 1, _id: 1 }).limit(limit + 1).lean(),
        Client.countDocuments(filter),
      ]);
      const clients = docs.slice(0, limit).map(toView);
      const last = clients.at(-1);
      return docs.length > limit && last ? { clients, nextCursor: encodeCursor({ name: last.name, id: last.clientId }), total } : { clients, total };
    },

    async remove(clientId, by = NO_AUTHORITY) {
      refuseBuiltIn(clientId);
      const existing = await Client.findById(clientId).lean();
      if (!existing) return false;
      await authorize('client.deleted', by, [powersOf(existing)], { id: clientId, name: existing.name });
      const result = await Client.deleteOne({ _id: clientId });
      await cache.changed();
      // After the client: a token issued in between would fail at once anyway (no client).
      await removeArtifacts(clientId);
      if (result.deletedCount !== 1) return false;
      await recordChange('client.deleted', by, clientId, existing.name);
      return true;
    },

    async previousSecret(clientId) {
      const cached = cache.peek(clientId);
      if (cached) {
        const expiresAt = cached.previousSecretExpiresAt;
        if (!cached.previousSecretSealed || !expiresAt || expiresAt.getTime() <= now()) return undefined;
        cached.previousSecret ??= secretBox.open(cached.previousSecretSealed, previousSecretContext(clientId));
        return cached.previousSecret;
      }
      const doc = await Client.findById(clientId, { previousSecretSealed: 1, previousSecretExpiresAt: 1 }).lean();
      if (!doc?.previousSecretSealed || !doc.previousSecretExpiresAt || doc.previousSecretExpiresAt.getTime() <= now()) return undefined;
      return secretBox.open(doc.previousSecretSealed, previousSecretContext(clientId));
    },

    async ensureIndexes() {
      await Client.createIndexes();
      await ensureExpiryIndex(rotations());
    },

    async sweep(at = new Date(now())) {
      return (await rotations().deleteMany({ expiresAt: { $lte: at } })).deletedCount;
    },

    startWatching() {
      cache.start();
    },

    stopWatching() {
      cache.stop();
    },

    // ClientStore: what oidc-provider's Client model reads and writes through the adapter.
    async find(clientId) {
      const cached = await cache.get(clientId, async () => {
        const doc = await Client.findById(clientId).lean();
        if (!doc) return undefined;
        const metadata = JSON.parse(doc.metadata) as AdapterPayload;
        if (doc.secretSealed) metadata.client_secret = secretBox.open(doc.secretSealed, secretContext(clientId));
        return { metadata, previousSecretSealed: doc.previousSecretSealed ?? null, previousSecretExpiresAt: doc.previousSecretExpiresAt ?? null };
      });
      // A copy: whatever the caller does to it must not change this node's cache.
      return cached ? { ...cached.metadata } : undefined;
    },

    async upsert(clientId, payload) {
      const { client_secret: secret, ...metadata } = payload;
      const name = typeof metadata.client_name === 'string' && metadata.client_name ? metadata.client_name : clientId;
      const update = {
        $set: {
          name,
          metadata: JSON.stringify(metadata),
          secretSealed: typeof secret === 'string' ? secretBox.seal(secret, secretContext(clientId)) : null,
          public: metadata.token_endpoint_auth_method === 'none',
        },
      };
      try {
        await Client.updateOne({ _id: clientId }, update, { upsert: true });
      } catch (err) {
        // NOTE: nodes starting together all write the built-in clients; of two upserts racing to
        // create the record, one gets a duplicate key error (FerretDB does not retry it, and
        // MongoDB not in every case). Its update then finds the record.
        if (!isDuplicateKey(err)) throw err;
        await Client.updateOne({ _id: clientId }, update);
      }
      await cache.changed();
    },

    // The provider deletes a dynamically registered client (RFC 7592 §2.3): its tokens go too.
    async destroy(clientId) {
      await Client.deleteOne({ _id: clientId });
      await cache.changed();
      await removeArtifacts(clientId);
    },
  };
  return service;
}
