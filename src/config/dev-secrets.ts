import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

import type { DevSecrets } from './config.js';

interface StoredDevSecrets {
  cookieKeys: string[];
  encryptionKeys: { id: string; key: string }[];
}

/**
 * Development only: random cookie and encryption keys, generated on first start and kept in
 * DATA_DIR/dev-secrets.json so that a restart (and the CLI) can still read sessions and
 * decrypt client secrets. Production refuses to start without real keys (config.ts).
 */
export async function loadOrCreateDevSecrets(dataDir: string): Promise<DevSecrets> {
  const file = path.join(dataDir, 'dev-secrets.json');
  let stored: StoredDevSecrets;
  try {
    stored = JSON.parse(await readFile(file, 'utf8')) as StoredDevSecrets;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    stored = {
      cookieKeys: [randomBytes(32).toString('base64url')],
      encryptionKeys: [{ id: 'dev1', key: randomBytes(32).toString('base64url') }],
    };
    await mkdir(dataDir, { recursive: true });
    // NOTE: written beside, then link()ed into place: link fails with EEXIST when the file is
    // there, so two processes starting at once cannot overwrite each other's keys, and neither
    // can read a half-written file (writing `file` directly with 'wx' allowed that).
    const temp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(temp, JSON.stringify(stored, null, 2), { mode: 0o600, flag: 'wx' });
    try {
      await link(temp, file);
    } catch (linkErr) {
      if ((linkErr as NodeJS.ErrnoException).code !== 'EEXIST') throw linkErr;
      stored = JSON.parse(await readFile(file, 'utf8')) as StoredDevSecrets;
    } finally {
      await rm(temp, { force: true });
    }
  }
  return {
    cookieKeys: stored.cookieKeys,
    encryptionKeys: stored.encryptionKeys.map((k) => ({ id: k.id, key: Buffer.from(k.key, 'base64url') })),
  };
}
