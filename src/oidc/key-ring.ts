import { performance } from 'node:perf_hooks';

import type Provider from 'oidc-provider';

import type { SecretBox } from '../crypto/secret-box.js';
import { guardDatabase } from '../db/unavailable.js';
import type { Logger } from '../logging/logger.js';
import type { SigningKeyService } from './key-rotation.service.js';
import type { PrivateJwk, PublishedKey, SigningKeyRecord, SigningKeyView } from './keys.js';
import { openSigningKey } from './keys.js';
import { assertKeystoreSwappable, replaceProviderKeys } from './provider-keystore.js';

/**
 * One node's view of the signing keys, kept in step with every other node without a restart.
 *
 * Each tick (every `intervalMs`) the node reads the `signing_keys` stamp (one small command, like
 * the client cache's) and reloads the rows when it moved, or at least every `reloadMs` should a
 * stamp write have been lost; then it computes which keys are published and which one signs at
 * this moment (keys.ts) and, when that changed, switches the provider's keystore in place
 * (provider-keystore.ts). Activation and expiry need no write and no message: they are times in
 * the rows, so every node switches at the same moment (within one tick), and keeps doing so from
 * the rows it has while the database is unreachable. A rotated-in key reaches every node within
 * about two ticks, far inside its pre-publication time.
 */

export const KEY_RING_INTERVAL_MS = 1000;
export const KEY_RING_RELOAD_MS = 60_000;

export interface KeyRingOptions {
  service: SigningKeyService;
  secretBox: SecretBox;
  logger: Logger;
  intervalMs?: number;
  reloadMs?: number;
}

export interface KeyRing {
  /** The keys to build the provider with (first-boot keys created if needed). */
  load(): Promise<PrivateJwk[]>;
  /** Binds the provider whose keystore follows the keys; checks at once that it can be switched. */
  attach(provider: Provider): void;
  /** One tick now: read the stamp, reload if it moved, switch if the published set changed. */
  refresh(options?: { reload?: boolean }): Promise<void>;
  /** The keys this node publishes, in keystore order (the signer of each algorithm first). */
  published(): SigningKeyView[];
  start(): void;
  stop(): void;
}

const fingerprint = (keys: readonly PublishedKey[]) => keys.map((key) => `${key.view.kid}:${key.view.state}`).join(',');

export function createKeyRing(options: KeyRingOptions): KeyRing {
  const { service, secretBox, logger } = options;
  const intervalMs = options.intervalMs ?? KEY_RING_INTERVAL_MS;
  const reloadMs = options.reloadMs ?? KEY_RING_RELOAD_MS;

  let provider: Provider | undefined;
  let rows: SigningKeyRecord[] = [];
  let current: PublishedKey[] = [];
  let applied = '';
  let stamp: string | null | undefined;
  let loadedAt = Number.NEGATIVE_INFINITY;
  /** Opened private keys by kid: a key is unsealed once per node. */
  const opened = new Map<string, PrivateJwk>();
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let ticking: Promise<void> = Promise.resolve();
  let failing = false;

  const open = (record: SigningKeyRecord): PrivateJwk => {
    let jwk = opened.get(record._id);
    if (!jwk) {
      jwk = openSigningKey(secretBox, record);
      opened.set(record._id, jwk);
    }
    return jwk;
  };

  const reload = async () => {
    const result = await service.published();
    rows = result.rows;
    loadedAt = performance.now();
    for (const kid of opened.keys()) if (!rows.some((row) => row._id === kid)) opened.delete(kid);
  };

  /** Computes the published set for now and switches the keystore when it changed. */
  const apply = async () => {
    const { keys } = await service.published(rows);
    const next = fingerprint(keys);
    if (next === applied) {
      current = keys;
      return;
    }
    // Opened before anything changes: a key this node cannot open (another ENCRYPTION_KEYS) keeps the old set.
    const jwks = keys.map((key) => open(key.record));
    if (provider) replaceProviderKeys(provider, jwks);
    const before = current;
    current = keys;
    applied = next;
    if (before.length > 0) {
      logger.info('signing keys switched', {
        signing: keys.filter((k) => k.view.state === 'active').map((k) => `${k.view.alg}:${k.view.kid}`).join(' '),
        published: keys.map((k) => k.view.kid).join(' '),
      });
    }
  };

  const tick = async ({ reload: force = false } = {}) => {
    try {
      const seen = await guardDatabase(() => service.readStamp());
      if (force || seen !== stamp || performance.now() - loadedAt > reloadMs) {
        await guardDatabase(reload);
        stamp = seen;
      }
      if (failing) logger.info('signing keys readable again');
      failing = false;
    } catch (err) {
      // Times still move on: activation and expiry follow from the rows already loaded.
      if (!failing && running) logger.warn('signing keys unreadable; switching from the rows already loaded', { reason: (err as Error).message });
      failing = true;
    }
    try {
      await apply();
    } catch (err) {
      logger.error('signing keys not switched', { reason: (err as Error).message });
    }
  };

  // One tick at a time, in call order: a refresh asked for after a write never returns a tick that started before it.
  const refresh = (opts?: { reload?: boolean }): Promise<void> => {
    ticking = ticking.then(() => tick(opts));
    return ticking;
  };

  const schedule = () => {
    if (!running) return;
    timer = setTimeout(() => {
      void refresh().finally(schedule);
    }, intervalMs);
    timer.unref();
  };

  return {
    async load() {
      await service.ensureInitialKeys();
      stamp = await service.readStamp();
      await reload();
      const { keys } = await service.published(rows);
      const jwks = keys.map((key) => open(key.record));
      current = keys;
      applied = fingerprint(keys);
      return jwks;
    },
    attach(target) {
      assertKeystoreSwappable(target);
      provider = target;
    },
    refresh,
    published: () => current.map((key) => key.view),
    start() {
      if (running) return;
      running = true;
      schedule();
    },
    stop() {
      running = false;
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
