import type { mongo } from 'mongoose';
import Provider, { errors } from 'oidc-provider';
import type { Adapter, AdapterPayload } from 'oidc-provider';

import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import { insertClaim, isDuplicateKey } from '../db/claims.js';
import { isStorableString } from '../db/storable.js';
import { guardDatabase } from '../db/unavailable.js';
import type { AccountView } from '../accounts/account.service.js';
import { accountReadKey, parseCarriedView } from '../accounts/account.service.js';
import { currentRequest, forgetReads, peekRead, primeRead, rememberRead } from '../http/request-context.js';
import type { Logger } from '../logging/logger.js';
import type { EndedSession } from './backchannel-logout.service.js';

/**
 * oidc-provider's storage Adapter over MongoDB, one collection per model.
 *
 * Each record is stored as `{ _id, payload, grantId?, uid?, userCode?, accountId?, clientId?, kind?, expiresAt, consumedAt? }`
 * with `payload` serialised as JSON; `accountId` is copied out of the payload so that everything
 * issued to one person can be revoked at once (revokeAccountRecords), and `clientId` so that a
 * deleted client's codes, tokens and grants go with it (ClientService.remove). NOTE: payloads carry keys that FerretDB (and MongoDB
 * before 5.0) refuse in documents, such as resource indicator URLs or client ids containing
 * dots, so the payload is never stored as a free-form nested document. `kind` names the model in
 * the one collection two models share (access and client credentials tokens, see STORED_WITH).
 */

interface StoredRecord {
  _id: string;
  payload: string;
  grantId?: string;
  uid?: string;
  userCode?: string;
  accountId?: string;
  /** The client a code, token or grant was issued to (ClientService.remove deletes them by it). */
  clientId?: string;
  expiresAt: Date | null;
  consumedAt?: Date | null;
  /** In a collection two models share (see STORED_WITH): which model the record belongs to. */
  kind?: string;
  /** Interaction and AuthorizationCode only: what the flow's next request would read (see CARRYING_MODELS), as JSON. */
  carried?: string;
  /** Session only: when it was last written, and by which IP and browser (the account centre lists them). */
  seenAt?: Date;
  seenIp?: string;
  seenUserAgent?: string;
}

type Db = mongo.Db;
type Collection<T extends mongo.Document> = mongo.Collection<T>;

/** Models whose records carry a grantId and so are revoked with their grant. */
export const GRANT_BOUND_MODELS = [
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
] as const;

/** Every model oidc-provider may ask an adapter for, except Client (see ClientStore). */
export const ADAPTER_MODELS = [
  'Session',
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'ClientCredentials',
  'InitialAccessToken',
  'RegistrationAccessToken',
  'Interaction',
  'ReplayDetection',
  'PushedAuthorizationRequest',
  'Grant',
  'BackchannelAuthenticationRequest',
] as const;

/** One document per consumed code or token: `{ _id: "<model>:<id>", expiresAt }` (see consume). */
export const CONSUME_CLAIMS_COLLECTION = 'oidc_consume_claims';

interface ConsumeClaim {
  _id: string;
  expiresAt: Date | null;
}

/**
 * Models kept in another model's collection. ClientCredentials tokens live with access tokens:
 * introspection and the management API look a token value up in both models at once (the
 * provider's token_find helper), and in one collection those lookups are one query (SharedReads).
 * Each such record carries its model in a top-level `kind`; a record without one is the
 * collection's own model's (access tokens written before this layout).
 * NOTE: ClientCredentials tokens written to `oidc_client_credentials` before are no longer found
 * (they live minutes); RefreshToken stays in its own collection: long-lived tokens survive upgrades.
 */
const STORED_WITH: Readonly<Record<string, string>> = { ClientCredentials: 'AccessToken' };

/** The collection a model's records are stored in. */
export function collectionName(model: string): string {
  return `oidc_${(STORED_WITH[model] ?? model).replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase()}`;
}

/** Every adapter collection once (ADAPTER_MODELS share some): what indexes, sweeps and revocations walk. */
function collectionsOf(models: readonly string[]): string[] {
  return [...new Set(models.map(collectionName))];
}

/**
 * Models whose every save is a new record (a fresh random id: the provider never saves an access
 * or client credentials token twice): written with one insert, which FerretDB does several times
 * faster than an upsert; a save of an existing id still lands, as an update after the refused insert.
 */
const INSERTED_FIRST: ReadonlySet<string> = new Set(['AccessToken', 'ClientCredentials']);

/** The model whose collection this model's records are in (itself unless STORED_WITH says otherwise). */
function collectionModel(model: string): string {
  return STORED_WITH[model] ?? model;
}

/** True when the model's records share their collection with another model's. */
function sharesCollection(model: string): boolean {
  return model in STORED_WITH || Object.values(STORED_WITH).includes(model);
}

/**
 * Concurrent finds of one record in one collection share one query: the provider asks
 * AccessToken and ClientCredentials for the same value at the same moment. Only reads in flight
 * are shared, never results, and a write to the collection (before and after it) keeps later
 * reads from joining a query sent before it.
 */
class SharedReads {
  /** Per collection: the reads in flight, by id. */
  private readonly pending = new Map<string, Map<string, Promise<StoredRecord | null>>>();

  read(collection: Collection<StoredRecord>, id: string): Promise<StoredRecord | null> {
    let reads = this.pending.get(collection.collectionName);
    if (!reads) this.pending.set(collection.collectionName, (reads = new Map()));
    const inFlight = reads.get(id);
    if (inFlight) return inFlight;
    const started = collection.findOne({ _id: id });
    const done = () => {
      if (reads.get(id) === started) reads.delete(id);
    };
    started.then(done, done);
    reads.set(id, started);
    return started;
  }

  written(collection: Collection<StoredRecord>): void {
    // A new map, not clear(): the reads in flight must not delete what later reads put there.
    if (this.pending.get(collection.collectionName)?.size) this.pending.set(collection.collectionName, new Map());
  }
}

/** Client metadata lives in our own `clients` collection (secrets encrypted); the Client model reads it through this. */
export interface ClientStore {
  find(clientId: string): Promise<AdapterPayload | undefined>;
  upsert(clientId: string, metadata: AdapterPayload): Promise<void>;
  destroy(clientId: string): Promise<void>;
}

export interface MongoAdapterDeps {
  db: Db;
  clientStore: ClientStore;
  logger: Logger;
  clock?: Clock;
}

/**
 * The account a record belongs to: the payload's own `accountId` (Session, Grant, tokens, codes),
 * or for an Interaction the account of the session it runs in.
 */
export function accountIdOf(payload: AdapterPayload): string | undefined {
  const text = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
  const session = payload.session as { accountId?: unknown } | undefined;
  // An interaction names its account in its result before any session does: a pending login
  // (`result.login`, which may carry the account view to the resume) or our flow's state
  // (`result.signIn`). Revoking an account must find those too.
  const result = payload.result as { login?: { accountId?: unknown }; signIn?: { accountId?: unknown } } | undefined;
  return text(payload.accountId) ?? text(session?.accountId) ?? text(result?.login?.accountId) ?? text(result?.signIn?.accountId);
}

function toPayload(record: StoredRecord | null, now: number): AdapterPayload | undefined {
  if (!record) return undefined;
  // Expired records are never returned, whether or not a TTL index or the sweep removed them yet.
  if (record.expiresAt && record.expiresAt.getTime() <= now) return undefined;
  const payload = JSON.parse(record.payload) as AdapterPayload;
  if (record.consumedAt) payload.consumed = Math.floor(record.consumedAt.getTime() / 1000);
  return payload;
}

async function revokeGrantEverywhere(db: Db, grantId: string): Promise<void> {
  forgetAdapterReads();
  await Promise.all([
    ...GRANT_BOUND_MODELS.map((m) => db.collection<StoredRecord>(collectionName(m)).deleteMany({ grantId })),
    db.collection<StoredRecord>(collectionName('Grant')).deleteOne({ _id: grantId }),
  ]);
}

/**
 * Models whose records the provider reads more than once in one request (an interaction in
 * `interactionDetails` and again in `interactionResult`, its session with it, a code before it is
 * consumed): read from the database once per request (`rememberRead`), forgotten on every write
 * to the model. Tokens are always read afresh.
 */
const REMEMBERED_MODELS: ReadonlySet<string> = new Set(['Interaction', 'Session', 'Grant', 'AuthorizationCode']);

/**
 * Records that carry, beside their payload, the account and the grant they name, as this request
 * had them (read, or just written): the flow's next request (the interaction's resume, the code's
 * exchange) is handed them instead of reading them again (`primeRead`), one read less each.
 *
 * NOTE, why a carried account or grant is never one that was taken away: disabling or deleting an
 * account deletes every adapter record that names it (revokeAccountRecords: the `accountId`
 * field or the account id in the payload, which an interaction past its first factor and a code
 * always have), and revoking a grant deletes its codes (revokeByGrantId), deleting a client its
 * codes and grants; a carrying record that survives was written after any such change, from a
 * read made before it only in the same race a fresh read has (a read just before the change).
 * Only what the provider reads is carried: the view findAccount returns (never a disabled one)
 * and the stored grant. An account change that is not a revocation (a new role, an app enrolled)
 * reaches the flow at its next read: the next authorization request.
 */
const CARRYING_MODELS: ReadonlySet<string> = new Set(['Interaction', 'AuthorizationCode']);
const grantReadKey = (grantId: string) => `${collectionName('Grant')}:id:${grantId}`;

interface Carried {
  account?: unknown;
  grant?: { _id: string; payload: string; expiresAt: string | null };
}

/** The account and grant a carrying record's payload names (an interaction: its result's login and consent). */
function namedBy(model: string, payload: AdapterPayload): { accountId?: string; grantId?: string } {
  const text = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
  if (model === 'AuthorizationCode') return { accountId: text(payload.accountId), grantId: text(payload.grantId) };
  const result = payload.result as { login?: { accountId?: unknown }; consent?: { grantId?: unknown }; signIn?: { accountId?: unknown } } | undefined;
  return { accountId: text(result?.login?.accountId) ?? text(result?.signIn?.accountId), grantId: text(result?.consent?.grantId) };
}

/** What this request has of the account and grant `payload` names, to carry (undefined: nothing). */
async function carriedFor(model: string, payload: AdapterPayload): Promise<string | undefined> {
  const { accountId, grantId } = namedBy(model, payload);
  const carried: Carried = {};
  const account = accountId ? await peekRead<AccountView | undefined>(accountReadKey(accountId))?.catch(() => undefined) : undefined;
  if (account && account.id === accountId && !account.disabled) carried.account = account;
  const grant = grantId ? await peekRead<StoredRecord | null>(grantReadKey(grantId))?.catch(() => undefined) : undefined;
  if (grant && grant._id === grantId) carried.grant = { _id: grant._id, payload: grant.payload, expiresAt: grant.expiresAt ? grant.expiresAt.toISOString() : null };
  return carried.account || carried.grant ? JSON.stringify(carried) : undefined;
}

/** Hands this request what a carrying record carried, where it is what the payload names. */
function primeCarried(model: string, record: StoredRecord): void {
  if (!record.carried) return;
  let carried: Carried;
  try {
    carried = JSON.parse(record.carried) as Carried;
  } catch {
    return;
  }
  const { accountId, grantId } = namedBy(model, JSON.parse(record.payload) as AdapterPayload);
  const account = parseCarriedView(carried.account);
  if (account && accountId && account.id === accountId && !account.disabled) primeRead(accountReadKey(accountId), account);
  const grant = carried.grant;
  if (grant && grantId && grant._id === grantId && typeof grant.payload === 'string') {
    primeRead(grantReadKey(grantId), { _id: grant._id, payload: grant.payload, expiresAt: grant.expiresAt ? new Date(grant.expiresAt) : null } satisfies StoredRecord);
  }
}

/**
 * Models whose consumption is decided and remembered by the consume claim alone (see consume):
 * no `consumedAt` write.
 */
const UNMARKED_WHEN_CONSUMED: ReadonlySet<string> = new Set(['AuthorizationCode']);

/** What this request read from the adapter's collections is stale after a write outside the adapter (revocations, deletions). */
export function forgetAdapterReads(): void {
  forgetReads('oidc_');
}

class MongoAdapter implements Adapter {
  private readonly collection: Collection<StoredRecord>;
  private readonly remembered: boolean;
  private readonly collectionName: string;

  constructor(
    private readonly name: string,
    private readonly deps: MongoAdapterDeps,
    private readonly shared = new SharedReads(),
  ) {
    this.collectionName = collectionName(name);
    this.collection = deps.db.collection<StoredRecord>(this.collectionName);
    this.remembered = REMEMBERED_MODELS.has(name);
  }

  /** One read per request of a record of a remembered model (see REMEMBERED_MODELS). */
  private findOne(by: 'id' | 'uid', value: string): Promise<StoredRecord | null> {
    const read = () => guardDatabase(() => this.collection.findOne(by === 'id' ? { _id: value } : { uid: value }));
    return this.remembered ? rememberRead(`${this.collectionName}:${by}:${value}`, read) : read();
  }

  /** A write to this model (called before and after it): what the request read of it may be stale. */
  private written(): void {
    if (this.remembered) forgetReads(`${this.collectionName}:`);
    this.shared.written(this.collection);
  }

  /**
   * In a shared collection (STORED_WITH): this model's records only, and concurrent reads of one
   * id shared with the other model. NOTE: records written before `kind` existed belong to the
   * collection's own model.
   */
  private async readOwn(id: string): Promise<StoredRecord | null> {
    if (!sharesCollection(this.name)) return this.findOne('id', id);
    const record = await guardDatabase(() => this.shared.read(this.collection, id));
    return record && (record.kind ?? collectionModel(this.name)) === this.name ? record : null;
  }

  /** Narrows a filter to this model's records when it shares its collection. */
  private own(filter: mongo.Filter<StoredRecord>): mongo.Filter<StoredRecord> {
    if (!sharesCollection(this.name)) return filter;
    return this.name in STORED_WITH ? { ...filter, kind: this.name } : { ...filter, kind: { $nin: Object.keys(STORED_WITH) } };
  }

  private now(): number {
    return (this.deps.clock ?? systemClock).nowMs();
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    const { consumed, ...rest } = payload;
    const set: Partial<StoredRecord> = {
      payload: JSON.stringify(rest),
      expiresAt: expiresIn ? new Date(this.now() + expiresIn * 1000) : null,
    };
    const unset: Record<string, ''> = {};
    for (const field of ['grantId', 'uid', 'userCode'] as const) {
      const value = payload[field];
      if (typeof value === 'string' && value) set[field] = value;
      else unset[field] = '';
    }
    const accountId = accountIdOf(payload);
    if (accountId) set.accountId = accountId;
    else unset.accountId = '';
    if (typeof payload.clientId === 'string' && payload.clientId) set.clientId = payload.clientId;
    else unset.clientId = '';
    if (sharesCollection(this.name)) set.kind = this.name;
    // NOTE: an upsert never clears consumedAt: a consumed code or token stays consumed.
    if (consumed) set.consumedAt = new Date(Number(consumed) * 1000);
    if (this.name === 'Session') {
      // The provider saves a session on every request that uses it: where and when it was last
      // used, for the person's list of sessions (account-access.service.ts). Outside the payload,
      // which the provider owns.
      const request = currentRequest();
      set.seenAt = new Date(this.now());
      if (request?.ip) set.seenIp = request.ip;
      if (request?.userAgent) set.seenUserAgent = request.userAgent;
    }
    if (CARRYING_MODELS.has(this.name)) {
      const carried = await carriedFor(this.name, payload);
      if (carried) set.carried = carried;
      else unset.carried = '';
    }
    const update = Object.keys(unset).length > 0 ? { $set: set, $unset: unset } : { $set: set };
    this.written();
    if (INSERTED_FIRST.has(this.name) && (await this.insertNew(id, set))) return;
    await guardDatabase(() => this.collection.updateOne({ _id: id }, update, { upsert: true }));
    this.written();
    // A grant just written is what this request would read of it: kept, so that a record this
    // request writes next (the interaction's result, a code) can carry it.
    if (this.name === 'Grant' && set.payload !== undefined) primeRead(grantReadKey(id), { _id: id, payload: set.payload, expiresAt: set.expiresAt ?? null } satisfies StoredRecord);
  }

  /** Inserts a record that should not exist yet; false when it does (then the caller updates it). */
  private async insertNew(id: string, fields: Partial<StoredRecord>): Promise<boolean> {
    try {
      await guardDatabase(() => this.collection.insertOne({ ...fields, _id: id } as StoredRecord));
      this.written();
      return true;
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
  }

  // Values a client sent (a token, a code, a uid from a cookie): one with a NUL names no record.
  async find(id: string): Promise<AdapterPayload | undefined> {
    if (!isStorableString(id)) return undefined;
    const record = await this.readOwn(id);
    const payload = toPayload(record, this.now());
    if (payload && record && CARRYING_MODELS.has(this.name)) primeCarried(this.name, record);
    return payload;
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    if (!isStorableString(uid)) return undefined;
    return toPayload(await this.findOne('uid', uid), this.now());
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    if (!isStorableString(userCode)) return undefined;
    const record = await guardDatabase(() => this.collection.findOne({ userCode }));
    return toPayload(record, this.now());
  }

  async destroy(id: string): Promise<void> {
    this.written();
    await guardDatabase(() => this.collection.deleteOne(this.own({ _id: id })));
    this.written();
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    this.written();
    await guardDatabase(() => this.collection.deleteMany(this.own({ grantId })));
    this.written();
  }

  /**
   * Atomic: of any number of concurrent consumers exactly one wins. The provider checks
   * `consumed` before calling this, but two requests can pass that check together; the loser
   * lands here, and we treat it as the replay it is (RFC 6749 §4.1.2, RFC 9700 §4.14.2):
   * revoke everything issued under the grant and refuse the request.
   */
  async consume(id: string): Promise<void> {
    // The provider found the record in this request already; the claim below, not this read, decides.
    const record = this.remembered
      ? await this.findOne('id', id)
      : await guardDatabase(() => this.collection.findOne({ _id: id }, { projection: { grantId: 1, expiresAt: 1, consumedAt: 1 } }));
    this.written();
    if (!record) throw new errors.InvalidGrant(`${this.name === 'RefreshToken' ? 'refresh token' : 'grant'} not found`);
    // NOTE: FerretDB 1.x matches an update's filter and writes the document in separate steps,
    // so concurrent conditional updates all report a modification. Inserting a claim under a
    // unique _id is atomic on every server: only the first consumer's claim goes in.
    const claimed = await guardDatabase(() =>
      insertClaim(this.deps.db.collection<ConsumeClaim>(CONSUME_CLAIMS_COLLECTION), { _id: `${this.name}:${id}`, expiresAt: record.expiresAt }),
    );
    // NOTE: the claimant wins whatever the update reports: a loser may already have revoked
    // the grant (deleting this record), and judging by modifiedCount then left no winner at all.
    if (claimed && !record.consumedAt) {
      // An authorization code is only ever consumed (the token endpoint), never introspected or
      // listed, so its claim alone says it was used: a later exchange finds the code unmarked,
      // meets the claim here and is refused as the replay it is. Refresh tokens keep the mark:
      // introspection and the account centre read it.
      if (!UNMARKED_WHEN_CONSUMED.has(this.name)) {
        await guardDatabase(() => this.collection.updateOne({ _id: id }, { $set: { consumedAt: new Date(this.now()) } }));
      }
      return;
    }
    if (record.grantId) {
      const grantId = record.grantId;
      await guardDatabase(() => revokeGrantEverywhere(this.deps.db, grantId));
      this.deps.logger.warn('reuse of a one-time credential; grant revoked', { model: this.name, grantId });
      // The provider's own replay path (a record marked consumed) announces the revocation; so
      // does this one (the audit log records it), for a replay of an unmarked code too.
      const ctx = Provider.ctx;
      if (ctx?.oidc) ctx.oidc.provider.emit('grant.revoked', ctx, grantId);
    }
    throw new errors.InvalidGrant(`${this.name === 'RefreshToken' ? 'refresh token' : 'grant'} already used`);
  }
}

class ClientAdapter implements Adapter {
  constructor(private readonly store: ClientStore) {}

  async upsert(id: string, payload: AdapterPayload): Promise<void> {
    await guardDatabase(() => this.store.upsert(id, payload));
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    if (!isStorableString(id)) return undefined;
    return guardDatabase(() => this.store.find(id));
  }

  async destroy(id: string): Promise<void> {
    await guardDatabase(() => this.store.destroy(id));
  }

  // Clients are not looked up by uid or user code, are not consumed and do not belong to grants.
  async findByUid(): Promise<undefined> {
    return undefined;
  }

  async findByUserCode(): Promise<undefined> {
    return undefined;
  }

  async consume(): Promise<void> {
    throw new Error('clients cannot be consumed');
  }

  async revokeByGrantId(): Promise<void> {
    // Clients are not bound to grants.
  }
}

/** The synchronous factory oidc-provider's `adapter` option takes. */
export function createMongoAdapter(deps: MongoAdapterDeps): (name: string) => Adapter {
  const shared = new SharedReads();
  return (name: string) => (name === 'Client' ? new ClientAdapter(deps.clientStore) : new MongoAdapter(name, deps, shared));
}

export interface AdapterIndexes {
  /** false on servers without TTL indexes (FerretDB 1.x): then run the sweep. */
  ttlSupported: boolean;
}

/** Creates the adapter's indexes once, at start (not per request). */
export async function ensureAdapterIndexes(db: Db, logger: Logger): Promise<AdapterIndexes> {
  let ttlSupported = true;
  for (const name of collectionsOf(ADAPTER_MODELS)) {
    const collection = db.collection(name);
    await collection.createIndex({ grantId: 1 }, { sparse: true });
    await collection.createIndex({ accountId: 1 }, { sparse: true });
    await collection.createIndex({ clientId: 1 }, { sparse: true });
    if (name === collectionName('Session')) await collection.createIndex({ uid: 1 }, { unique: true, sparse: true });
    if (name === collectionName('DeviceCode')) await collection.createIndex({ userCode: 1 }, { unique: true, sparse: true });
    if (ttlSupported) {
      try {
        await collection.createIndex({ expiresAt: 1 }, { expireAfterSeconds: 0, name: 'expiresAt_ttl' });
        continue;
      } catch (err) {
        ttlSupported = false;
        logger.info('database has no TTL indexes; expired OIDC records are removed by a periodic sweep', {
          reason: (err as Error).message,
        });
      }
    }
    await collection.createIndex({ expiresAt: 1 }, { name: 'expiresAt_1' });
  }
  await db
    .collection(CONSUME_CLAIMS_COLLECTION)
    .createIndex({ expiresAt: 1 }, ttlSupported ? { expireAfterSeconds: 0, name: 'expiresAt_ttl' } : { name: 'expiresAt_1' });
  return { ttlSupported };
}

/**
 * Deletes every record issued to an account, in every adapter collection: sessions (so the
 * person is signed out everywhere), grants, access and refresh tokens, authorization codes,
 * interactions in progress. Returns how many records went.
 *
 * Found by the indexed `accountId` field alone: the adapter writes it on every save, and the
 * migration 001-backfill-oidc-owner (run before the server or the CLI uses the database) set it
 * on records written before it existed. An opaque access token is checked against this store on every use, so deleting it revokes it;
 * oidc-provider also drops a token whose grant is gone.
 */
export async function revokeAccountRecords(
  db: Db,
  accountId: string,
  /** Default: every model. `['Session']` signs the person out without touching their tokens. */
  models: readonly (typeof ADAPTER_MODELS)[number][] = ADAPTER_MODELS,
  /** Told which sessions ended (back-channel logout, backchannel-logout.service.ts), after they are gone. */
  loggedOut?: SessionsEndedListener,
): Promise<number> {
  if (!accountId) return 0;
  forgetAdapterReads();
  // Each session is read once, before it goes: its apps (and their sids) are in its payload.
  const ended = loggedOut && models.includes('Session') ? await endingSessions(db, accountId) : [];
  let removed = 0;
  for (const name of collectionsOf(models)) {
    const result = await guardDatabase(() => db.collection<StoredRecord>(name).deleteMany({ accountId }));
    removed += result.deletedCount;
  }
  if (loggedOut && ended.length > 0) await loggedOut.sessionsEnded(ended);
  return removed;
}

/** Where a session's end is reported: its account and the apps it signed in to. */
export interface SessionsEndedListener {
  sessionsEnded(sessions: readonly EndedSession[]): Promise<unknown>;
}

/** The account's sessions, as much of each as a logout notice needs. */
async function endingSessions(db: Db, accountId: string): Promise<EndedSession[]> {
  const records = await guardDatabase(() => db.collection<StoredRecord>(collectionName('Session')).find({ accountId }, { projection: { payload: 1 } }).toArray());
  return records.flatMap((record) => {
    const session = endedSessionOf(record.payload);
    return session ? [session] : [];
  });
}

/** A stored Session payload as an EndedSession (undefined when it does not parse). */
export function endedSessionOf(payload: string): EndedSession | undefined {
  try {
    const parsed = JSON.parse(payload) as { accountId?: unknown; authorizations?: unknown };
    const authorizations: Record<string, { sid?: string }> = {};
    if (typeof parsed.authorizations === 'object' && parsed.authorizations !== null) {
      for (const [clientId, value] of Object.entries(parsed.authorizations as Record<string, unknown>)) {
        const sid = typeof value === 'object' && value !== null ? (value as { sid?: unknown }).sid : undefined;
        authorizations[clientId] = typeof sid === 'string' ? { sid } : {};
      }
    }
    return { accountId: typeof parsed.accountId === 'string' ? parsed.accountId : undefined, authorizations };
  } catch {
    return undefined;
  }
}

/** Deletes expired records from every adapter collection; returns how many went. */
export async function sweepExpired(db: Db, now: Date = new Date()): Promise<number> {
  let removed = 0;
  for (const name of collectionsOf(ADAPTER_MODELS)) {
    const result = await db.collection(name).deleteMany({ expiresAt: { $lte: now } });
    removed += result.deletedCount;
  }
  // Claims expire with the record they claimed; not counted as records.
  await db.collection(CONSUME_CLAIMS_COLLECTION).deleteMany({ expiresAt: { $lte: now } });
  return removed;
}

/**
 * The adapter's collections as one store of the core: indexes at start, and the periodic sweep,
 * which removes expired records only where no TTL index does it (FerretDB 1.x).
 */
export function createAdapterStore(deps: { db: Db; logger: Logger; clock?: Clock }): { ensureIndexes(): Promise<void>; sweep(): Promise<number> } {
  const clock = deps.clock ?? systemClock;
  // Until ensureIndexes has run, assume the worst: sweeping where a TTL index works costs only indexed deletes.
  let ttlSupported = false;
  return {
    async ensureIndexes() {
      ({ ttlSupported } = await ensureAdapterIndexes(deps.db, deps.logger));
    },
    async sweep() {
      return ttlSupported ? 0 : sweepExpired(deps.db, clock.now());
    },
  };
}
