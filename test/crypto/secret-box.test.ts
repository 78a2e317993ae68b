import { randomBytes } from 'node:crypto';

import { describe, expect, it } from '@jest/globals';

import { SecretBoxError, createSecretBox } from '../../src/crypto/secret-box.js';

const keyA = { id: 'a', key: randomBytes(32) };
const keyB = { id: 'b', key: randomBytes(32) };

/** Replaces one base64url part of a sealed value with a version whose first byte is flipped. */
function tamper(sealed: string, index: number): string {
  const parts = sealed.split('.');
  const bytes = Buffer.from(parts[index] ?? '', 'base64url');
  bytes[0] = (bytes[0] ?? 0) ^ 0x01;
  parts[index] = bytes.toString('base64url');
  return parts.join('.');
}

function errorOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('createSecretBox', () => {
  it('round-trips a secret under the same context', () => {
    const box = createSecretBox([keyA]);
    const secret = 'client-secret-Ωλ-🚀-with unicode';
    const sealed = box.seal(secret, 'client_secret:abc');
    expect(sealed.startsWith('v1.a.')).toBe(true);
    expect(sealed).not.toContain(secret);
    expect(box.open(sealed, 'client_secret:abc')).toBe(secret);
  });

  it('round-trips an empty string and a long value', () => {
    const box = createSecretBox([keyA]);
    expect(box.open(box.seal('', 'ctx'), 'ctx')).toBe('');
    const long = randomBytes(4096).toString('base64');
    expect(box.open(box.seal(long, 'ctx'), 'ctx')).toBe(long);
  });

  it('uses a fresh IV each time, so sealing the same value twice differs', () => {
    const box = createSecretBox([keyA]);
    const one = box.seal('same', 'ctx');
    const two = box.seal('same', 'ctx');
    expect(one).not.toBe(two);
    expect(one.split('.')[2]).not.toBe(two.split('.')[2]);
  });

  it.each([
    ['iv', 2],
    ['tag', 3],
    ['ciphertext', 4],
  ])('rejects a tampered %s', (_part, index) => {
    const box = createSecretBox([keyA]);
    const sealed = box.seal('top secret value', 'ctx');
    const err = errorOf(() => box.open(tamper(sealed, index), 'ctx'));
    expect(err).toBeInstanceOf(SecretBoxError);
    expect((err as Error).message).toMatch(/failed authentication/);
  });

  it('rejects a truncated tag', () => {
    const box = createSecretBox([keyA]);
    const parts = box.seal('value', 'ctx').split('.');
    parts[3] = Buffer.from(parts[3] ?? '', 'base64url').subarray(0, 4).toString('base64url');
    expect(() => box.open(parts.join('.'), 'ctx')).toThrow(SecretBoxError);
  });

  it('rejects a value moved to another context (AAD)', () => {
    const box = createSecretBox([keyA]);
    const sealed = box.seal('secret of client one', 'client_secret:one');
    const err = errorOf(() => box.open(sealed, 'client_secret:two'));
    expect(err).toBeInstanceOf(SecretBoxError);
    expect((err as Error).message).toMatch(/failed authentication/);
  });

  it('rejects a value sealed under another key with the same id', () => {
    const sealed = createSecretBox([keyA]).seal('value', 'ctx');
    const impostor = createSecretBox([{ id: 'a', key: randomBytes(32) }]);
    expect(() => impostor.open(sealed, 'ctx')).toThrow(/failed authentication/);
  });

  it('rotation: a value sealed with key A opens with a box configured [B, A], which seals new values with B', () => {
    const old = createSecretBox([keyA]);
    const sealedWithA = old.seal('legacy secret', 'ctx');
    const rotated = createSecretBox([keyB, keyA]);
    expect(rotated.open(sealedWithA, 'ctx')).toBe('legacy secret');

    const sealedWithB = rotated.seal('new secret', 'ctx');
    expect(sealedWithB.split('.')[1]).toBe('b');
    expect(rotated.open(sealedWithB, 'ctx')).toBe('new secret');
    // The old box does not know B: the error names the missing key.
    expect(() => old.open(sealedWithB, 'ctx')).toThrow(/encryption key "b" is not configured/);
  });

  it('an unknown key id gives a clear error naming the key and the setting', () => {
    const sealed = createSecretBox([keyA]).seal('value', 'ctx');
    const err = errorOf(() => createSecretBox([keyB]).open(sealed, 'ctx'));
    expect(err).toBeInstanceOf(SecretBoxError);
    expect((err as Error).message).toBe('encryption key "a" is not configured (ENCRYPTION_KEYS)');
  });

  it.each([
    ['not a sealed value at all'],
    ['v2.a.x.y.z'],
    ['v1.a.x.y'],
    ['v1.a.x.y.z.w'],
    [''],
  ])('rejects the malformed value %j as unrecognised', (value) => {
    const box = createSecretBox([keyA]);
    expect(() => box.open(value, 'ctx')).toThrow(/unrecognised sealed value/);
  });

  it('refuses to be created without a key', () => {
    expect(() => createSecretBox([])).toThrow(/no encryption key configured/);
  });
});
