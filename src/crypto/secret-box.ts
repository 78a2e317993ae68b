import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * Authenticated encryption (AES-256-GCM) for secrets kept at rest: client secrets and
 * private signing keys. The key id is stored with each value so keys can rotate: the
 * first key seals, every configured key can open.
 *
 * Format: `v1.<keyId>.<iv>.<tag>.<ciphertext>` (base64url parts).
 */
export interface SecretBox {
  seal(plaintext: string, context: string): string;
  open(sealed: string, context: string): string;
}

export class SecretBoxError extends Error {
  override name = 'SecretBoxError';
}

export function createSecretBox(keys: { id: string; key: Buffer }[]): SecretBox {
  const [current] = keys;
  if (!current) throw new SecretBoxError('no encryption key configured');
  const byId = new Map(keys.map((k) => [k.id, k.key]));

  return {
    // `context` is bound as additional authenticated data, so a sealed value cannot be
    // moved to another record or field and still decrypt.
    seal(plaintext, context) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', current.key, iv);
      cipher.setAAD(Buffer.from(context, 'utf8'));
      const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      const tag = cipher.getAuthTag();
      return ['v1', current.id, iv.toString('base64url'), tag.toString('base64url'), ciphertext.toString('base64url')].join('.');
    },
    open(sealed, context) {
      const parts = sealed.split('.');
      if (parts.length !== 5 || parts[0] !== 'v1') throw new SecretBoxError('unrecognised sealed value');
      const [, keyId, iv, tag, ciphertext] = parts as [string, string, string, string, string];
      const key = byId.get(keyId);
      if (!key) throw new SecretBoxError(`encryption key "${keyId}" is not configured (ENCRYPTION_KEYS)`);
      try {
        // NOTE: without authTagLength, GCM accepts a truncated tag (down to 4 bytes), which
        // would make forging a sealed value a matter of 2^32 tries.
        const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'), { authTagLength: 16 });
        decipher.setAAD(Buffer.from(context, 'utf8'));
        decipher.setAuthTag(Buffer.from(tag, 'base64url'));
        return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8');
      } catch {
        throw new SecretBoxError('sealed value failed authentication');
      }
    },
  };
}
