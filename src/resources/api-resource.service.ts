import type { mongo } from 'mongoose';
import { z } from 'zod';

import type { AuditService } from '../audit/audit.service.js';
import type { AdminAuthority } from '../clients/admin-authority.js';
import { NO_AUTHORITY } from '../clients/admin-authority.js';
import type { StampedCacheOptions } from '../clients/client-cache.js';
import { createStampedCache } from '../clients/client-cache.js';
import type { Config } from '../config/config.js';
import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import { isDuplicateKey } from '../db/claims.js';
import { AppError, FieldValidationError } from '../http/app-error.js';
import { fieldMessagesFrom } from '../http/field-problems.js';
import type { Logger } from '../logging/logger.js';

/**
 * API resources: the apps' own APIs that our access tokens are for (RFC 8707 resource
 * indicators). Each has an identifier (an absolute URI, the tokens' `aud`), a display name for
 * the consent page, the scopes it defines (each with the description people read when they
 * consent), the access token format (a JWT per RFC 9068 that the API validates against our JWKS,
 * or an opaque token it introspects) and an access token lifetime.
 *
 * The identifier is the record's `_id`: a unique insert decides between two admins creating the
 * same resource at once (FerretDB has no atomic conditional updates), and it never changes,
 * since tokens already issued name it.
 *
 * The provider reads a resource on every authorization and token request that names one; `find`
 * serves it from this node's memory, kept correct across nodes by the same stamp polling as the
 * client cache (src/clients/client-cache.ts).
 */

export const API_RESOURCES_COLLECTION = 'api_resources';

export type AccessTokenFormat = 'jwt' | 'opaque';
export const ACCESS_TOKEN_FORMATS: readonly AccessTokenFormat[] = ['jwt', 'opaque'];

export interface ApiResourceScope {
  /** An RFC 6749 scope token, e.g. `notes:read`. */
  name: string;
  /** What the consent page says the app may do with it ("Read your notes"). */
  description: string;
}

export interface ApiResourceView {
  /** The absolute URI tokens for this API carry as `aud`. */
  identifier: string;
  name: string;
  scopes: ApiResourceScope[];
  tokenFormat: AccessTokenFormat;
  /** Seconds; absent: ACCESS_TOKEN_TTL. A client's own access_token_ttl still wins. */
  accessTokenTtl?: number | undefined;
  /**
   * Confidential clients (the API itself, registered as a client) that may introspect this API's
   * tokens, besides the client a token was issued to (RFC 7662 §4 leaves the policy to us).
   */
  introspectionClients: string[];
  createdAt: Date;
  updatedAt: Date;
}

interface ApiResourceRecord {
  _id: string;
  name: string;
  scopes: ApiResourceScope[];
  tokenFormat: AccessTokenFormat;
  accessTokenTtl: number | null;
  introspectionClients: string[];
  createdAt: Date;
  updatedAt: Date;
}

/** The scopes OpenID Connect defines (and ours): an API cannot redefine them. */
const RESERVED_SCOPES: ReadonlySet<string> = new Set(['openid', 'profile', 'email', 'address', 'phone', 'offline_access']);
/** RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E. */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const CLIENT_ID = /^[\x21-\x7E]{1,200}$/;
export const MAX_RESOURCE_SCOPES = 50;
export const MIN_RESOURCE_TOKEN_TTL = 60;
export const MAX_RESOURCE_TOKEN_TTL = 86_400;

/** Control characters have no place in a name or a URI; U+0000 cannot even be stored (src/db/storable.ts). */
// eslint-disable-next-line no-control-regex -- the point is to refuse control characters
const noControl = (s: string) => !/[\u0000-\u001f\u007f]/.test(s);
const NO_CONTROL = 'must not contain control characters';

const scopeSchema = z.object({
  name: z.string().trim().min(1, 'a scope needs a name').max(100, 'at most 100 characters').regex(SCOPE_TOKEN, 'no spaces, quotes or backslashes'),
  description: z.string().trim().min(1, 'a scope needs a description for the consent page').max(300, 'at most 300 characters').refine(noControl, NO_CONTROL),
});

/** What an admin edits (the identifier only at creation: tokens already issued name it). */
export const apiResourceInputSchema = z.object({
  name: z.string().trim().min(1, 'a name is required').max(100, 'at most 100 characters').refine(noControl, NO_CONTROL),
  scopes: z.array(scopeSchema).max(MAX_RESOURCE_SCOPES, `at most ${MAX_RESOURCE_SCOPES} scopes`).default([]),
  tokenFormat: z.enum(['jwt', 'opaque']).default('jwt'),
  accessTokenTtl: z
    .number()
    .int('whole seconds')
    .min(MIN_RESOURCE_TOKEN_TTL, `at least ${MIN_RESOURCE_TOKEN_TTL} seconds`)
    .max(MAX_RESOURCE_TOKEN_TTL, `at most ${MAX_RESOURCE_TOKEN_TTL} seconds`)
    .optional(),
  introspectionClients: z.array(z.string().regex(CLIENT_ID, 'not a client id')).max(20, 'at most 20 clients').default([]),
});
export const newApiResourceSchema = apiResourceInputSchema.extend({ identifier: z.string().trim().min(1, 'an identifier is required').max(2000, 'at most 2000 characters').refine(noControl, NO_CONTROL) });

export type ApiResourceInput = z.input<typeof apiResourceInputSchema>;
export type NewApiResourceInput = z.input<typeof newApiResourceSchema>;

/** 400 `resource.invalid`: each problem by field (the console shows them beside the fields). */
export class ApiResourceValidationError extends FieldValidationError {
  override name = 'ApiResourceValidationError';

  constructor(fields: Record<string, string>) {
    super('resource.invalid', fields);
  }
}

/**
 * Why an identifier cannot name an API, or undefined when it can. RFC 8707 §2: an absolute URI
 * without a fragment (and SHOULD NOT have a query: refused, so that one API has one name).
 * Identifiers on our own origin are ours (the management API, userinfo): an admin cannot make
 * tokens whose audience is one of our endpoints.
 */
export function identifierProblem(identifier: string, config: Pick<Config, 'issuer' | 'adminApi'>): string | undefined {
  const url = URL.parse(identifier);
  if (!url || identifier !== identifier.trim()) return 'must be an absolute URI, such as https://api.example.com';
  if (!['https:', 'http:', 'urn:'].includes(url.protocol)) return 'must be an https, http or urn URI';
  if (url.hash || identifier.includes('#')) return 'must not have a fragment (#…)';
  if (url.search) return 'must not have a query (?…)';
  if (url.username || url.password) return 'must not carry a user name or password';
  if (identifier === config.adminApi.resource) return 'is the management API’s identifier';
  if (url.protocol !== 'urn:' && url.origin === new URL(config.issuer).origin) return 'must not be on this server’s own origin';
  return undefined;
}

export interface ApiResourceService {
  /** 409 `resource.exists` when the identifier is taken; 400 `resource.invalid` for bad input. Audited. */
  create(input: NewApiResourceInput, by?: AdminAuthority): Promise<ApiResourceView>;
  /** Replaces the editable fields. 404 `resource.not_found`. Audited with the fields that changed. */
  update(identifier: string, input: ApiResourceInput, by?: AdminAuthority): Promise<ApiResourceView>;
  /**
   * Deletes the resource: no new tokens are issued for it (clients that listed it get
   * invalid_target). JWTs already issued stay valid until they expire. Audited. False when absent.
   */
  remove(identifier: string, by?: AdminAuthority): Promise<boolean>;
  /** From the database (the admin surfaces). */
  get(identifier: string): Promise<ApiResourceView | undefined>;
  /** Served from this node's cache while it watches (the provider's hot path); else the database. */
  find(identifier: string): Promise<ApiResourceView | undefined>;
  /** Every resource, by name then identifier (at most MAX_LISTED). */
  list(): Promise<ApiResourceView[]>;
  ensureIndexes(): Promise<void>;
  startWatching(): void;
  stopWatching(): void;
}

export const RESOURCE_POLL_INTERVAL_MS = 1000;
const RESOURCE_TRUST_MS = 2500;

/** Admins register a handful of APIs, not thousands: the list is one page. */
export const MAX_LISTED = 500;

export interface ApiResourceServiceDeps {
  db: mongo.Db;
  config: Pick<Config, 'issuer' | 'adminApi'>;
  audit?: AuditService | undefined;
  clock?: Clock;
  logger?: Logger | undefined;
  cache?: Partial<Pick<StampedCacheOptions, 'pollIntervalMs' | 'trustMs' | 'maxAgeMs'>>;
}

export function createApiResourceService(deps: ApiResourceServiceDeps): ApiResourceService {
  const { db, config, audit, logger } = deps;
  const clock = deps.clock ?? systemClock;
  const collection = db.collection<ApiResourceRecord>(API_RESOURCES_COLLECTION);
  // Resources change far less often than clients: a poll a second (a change made on another node
  // shows here within about that), trusted for two and a half.
  const cache = createStampedCache<ApiResourceView>({
    db: () => db,
    name: API_RESOURCES_COLLECTION,
    logger,
    pollIntervalMs: RESOURCE_POLL_INTERVAL_MS,
    trustMs: RESOURCE_TRUST_MS,
    ...deps.cache,
  });

  const toView = (record: ApiResourceRecord): ApiResourceView => ({
    identifier: record._id,
    name: record.name,
    scopes: record.scopes.map((s) => ({ name: s.name, description: s.description })),
    tokenFormat: record.tokenFormat,
    ...(record.accessTokenTtl ? { accessTokenTtl: record.accessTokenTtl } : {}),
    introspectionClients: [...(record.introspectionClients ?? [])],
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
  });

  const parse = <S extends z.ZodType>(schema: S, input: unknown): z.output<S> => {
    const parsed = schema.safeParse(input);
    if (!parsed.success) throw new ApiResourceValidationError(fieldMessagesFrom(parsed.error, 'joined'));
    const value = parsed.data as { scopes?: ApiResourceScope[] };
    const fields: Record<string, string> = {};
    const seen = new Set<string>();
    for (const scope of value.scopes ?? []) {
      if (RESERVED_SCOPES.has(scope.name)) fields.scopes = `"${scope.name}" is an OpenID Connect scope`;
      else if (config.adminApi.scopes.includes(scope.name)) fields.scopes = `"${scope.name}" is a management API scope`;
      else if (seen.has(scope.name)) fields.scopes = `"${scope.name}" is listed twice`;
      seen.add(scope.name);
    }
    if (Object.keys(fields).length > 0) throw new ApiResourceValidationError(fields);
    return parsed.data;
  };

  const editable = (input: z.output<typeof apiResourceInputSchema>) => ({
    name: input.name,
    scopes: input.scopes,
    tokenFormat: input.tokenFormat,
    accessTokenTtl: input.accessTokenTtl ?? null,
    introspectionClients: [...new Set(input.introspectionClients)],
  });

  const recordChange = (
    action: 'api_resource.created' | 'api_resource.updated' | 'api_resource.deleted',
    by: AdminAuthority,
    identifier: string,
    name: string,
    changed?: string[],
  ) =>
    audit?.record({
      action,
      outcome: 'success',
      actor: by.actor,
      target: { type: 'api_resource', id: identifier, label: name },
      ...(changed ? { details: { changed } } : {}),
    });

  return {
    async create(input, by = NO_AUTHORITY) {
      const value = parse(newApiResourceSchema, input);
      const problem = identifierProblem(value.identifier, config);
      if (problem) throw new ApiResourceValidationError({ identifier: problem });
      const now = clock.now();
      const record: ApiResourceRecord = { _id: value.identifier, ...editable(value), createdAt: now, updatedAt: now };
      try {
        await collection.insertOne(record);
      } catch (error) {
        if (isDuplicateKey(error)) throw new AppError('resource.exists', { identifier: value.identifier });
        throw error;
      }
      await cache.changed();
      await recordChange('api_resource.created', by, record._id, record.name);
      return toView(record);
    },

    async update(identifier, input, by = NO_AUTHORITY) {
      const value = parse(apiResourceInputSchema, input);
      const before = await collection.findOne({ _id: identifier });
      if (!before) throw new AppError('resource.not_found', { identifier });
      const next = { ...editable(value), updatedAt: clock.now() };
      await collection.updateOne({ _id: identifier }, { $set: next });
      await cache.changed();
      const after: ApiResourceRecord = { ...before, ...next };
      const changed = (['name', 'scopes', 'tokenFormat', 'accessTokenTtl', 'introspectionClients'] as const).filter(
        (field) => JSON.stringify(before[field] ?? null) !== JSON.stringify(after[field] ?? null),
      );
      await recordChange('api_resource.updated', by, identifier, after.name, changed);
      return toView(after);
    },

    async remove(identifier, by = NO_AUTHORITY) {
      const before = await collection.findOne({ _id: identifier });
      if (!before) return false;
      const { deletedCount } = await collection.deleteOne({ _id: identifier });
      if (deletedCount === 0) return false;
      await cache.changed();
      await recordChange('api_resource.deleted', by, identifier, before.name);
      return true;
    },

    async get(identifier) {
      if (typeof identifier !== 'string' || identifier.length > 2000) return undefined;
      const record = await collection.findOne({ _id: identifier });
      return record ? toView(record) : undefined;
    },

    async find(identifier) {
      if (typeof identifier !== 'string' || identifier.length > 2000) return undefined;
      return cache.get(identifier, async () => {
        const record = await collection.findOne({ _id: identifier });
        return record ? toView(record) : undefined;
      });
    },

    async list() {
      const records = await collection.find({}).sort({ name: 1, _id: 1 }).limit(MAX_LISTED).toArray();
      return records.map(toView);
    },

    async ensureIndexes() {
      await collection.createIndex({ name: 1, _id: 1 });
    },

    startWatching() {
      cache.start();
    },

    stopWatching() {
      cache.stop();
    },
  };
}
