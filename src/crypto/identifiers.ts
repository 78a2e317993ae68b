import { randomInt } from 'node:crypto';

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * A random identifier of `length` letters and digits (about 5.95 bits each; 22 give 131 bits).
 * Only letters and digits, because identifiers that people paste into command lines, URLs and
 * config files must not start with `-` (a command line reads `-w…` as an option) or `_`, as
 * a base64url string does once in 32.
 */
export function randomAlphanumeric(length: number): string {
  let out = '';
  // randomInt draws without modulo bias.
  for (let i = 0; i < length; i += 1) out += ALPHANUMERIC[randomInt(ALPHANUMERIC.length)];
  return out;
}

/** Client ids the server generates, for admins and dynamic registration alike. */
export function newClientId(): string {
  return randomAlphanumeric(22);
}
