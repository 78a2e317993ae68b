import { ZxcvbnFactory } from '@zxcvbn-ts/core';
import * as zxcvbnCommon from '@zxcvbn-ts/language-common';
import * as zxcvbnEn from '@zxcvbn-ts/language-en';

import type { Config } from '../config/config.js';
import { AppError } from '../http/app-error.js';
import { PASSWORD_MIN_LENGTH, normalisePassword } from './password.js';

/**
 * The rules for a new password, after NIST SP 800-63B §3.1.1.2: a minimum length
 * (PASSWORD_MIN_LENGTH, never under 8), at most 128 characters, counted in Unicode code points
 * after NFKC; no composition rules (no "one digit, one symbol"); refused when it is common or
 * known from breaches, too easy to guess, or built from the person's email, name or the name of
 * this service. Every refusal has a machine code and a plain-language message for the person.
 *
 * Guessability comes from zxcvbn (its dictionaries of leaked passwords, common words and names,
 * keyboard patterns, sequences, dates). Only new passwords go through this: verifying one that
 * exists never does, so a password set under older rules keeps working.
 */

/** The longest new password (NIST asks that at least 64 be accepted). Refused before hashing. */
export const PASSWORD_POLICY_MAX_LENGTH = 128;

/** zxcvbn's scale is 0–4; 3 means "safely unguessable" (about 10^8 guesses and more). */
const MIN_SCORE = 3;

/** zxcvbn reads this many characters at most (see the NOTE where it is built). */
const ANALYSED_LENGTH = 64;

/** Shorter pieces of an email or a name (a "jo", "li") are everywhere and mean nothing. */
const MIN_CONTEXT_WORD = 3;

export type PasswordRefusal =
  | 'too_short'
  | 'too_long'
  | 'control_characters'
  | 'too_common'
  | 'too_guessable'
  | 'contains_email'
  | 'contains_name'
  | 'contains_product_name';

export type PasswordCheck =
  /** `normalised`: the NFKC form, the one to hash. */
  | { ok: true; normalised: string }
  | { ok: false; reason: PasswordRefusal; message: string };

/** Who the password is for: words it must not be built from. */
export interface PasswordContext {
  email?: string | undefined;
  name?: string | undefined;
}

export interface PasswordPolicy {
  readonly minLength: number;
  readonly maxLength: number;
  check(password: string, context?: PasswordContext): Promise<PasswordCheck>;
}

/**
 * A refused new password: 400 with the code `password.<reason>` and the message meant for the
 * person. `fields` names the password field, so the management API lists it as a field problem
 * and the console shows it beside the field.
 */
export class PasswordPolicyError extends AppError {
  override name = 'PasswordPolicyError';
  readonly reason: PasswordRefusal;
  readonly fields: Record<string, string>;

  constructor(refusal: { reason: PasswordRefusal; message: string }, field = 'password') {
    super(400, `password.${refusal.reason}`, refusal.message);
    this.reason = refusal.reason;
    this.fields = { [field]: refusal.message };
  }
}

type ContextKind = 'email' | 'name' | 'product';

const CONTEXT_REASON: Record<ContextKind, PasswordRefusal> = {
  email: 'contains_email',
  name: 'contains_name',
  product: 'contains_product_name',
};

function contextWords(context: PasswordContext, productName: string): Map<string, ContextKind> {
  const words = new Map<string, ContextKind>();
  const add = (kind: ContextKind, word: string) => {
    const w = normalisePassword(word).toLowerCase().trim();
    if ([...w].length >= MIN_CONTEXT_WORD && !words.has(w)) words.set(w, kind);
  };
  const email = context.email?.trim().toLowerCase();
  if (email) {
    add('email', email);
    const local = email.split('@')[0] ?? '';
    add('email', local);
    for (const part of local.split(/[._+-]+/)) add('email', part);
  }
  const name = context.name?.trim();
  if (name) {
    add('name', name);
    add('name', name.replace(/\s+/g, ''));
    for (const part of name.split(/[\s.,'’-]+/)) add('name', part);
  }
  add('product', productName);
  add('product', productName.replace(/\s+/g, ''));
  for (const part of productName.split(/\s+/)) add('product', part);
  return words;
}

function removeAll(haystack: string, needle: string): string {
  return haystack.split(needle).join('');
}

export function createPasswordPolicy(config: Pick<Config, 'passwordMinLength' | 'productName'>): PasswordPolicy {
  // loadConfig refuses less; this guards policies built by hand (tests, tools).
  if (!Number.isInteger(config.passwordMinLength) || config.passwordMinLength < PASSWORD_MIN_LENGTH || config.passwordMinLength > 64) {
    throw new RangeError(`the minimum password length must be an integer from ${PASSWORD_MIN_LENGTH} to 64`);
  }
  const minLength = config.passwordMinLength;
  const maxLength = PASSWORD_POLICY_MAX_LENGTH;
  const productName = config.productName;

  // NOTE: building the dictionaries takes about 200 ms of CPU and tens of MB: once per policy
  // (one per process), never per request, and only when a password is first checked (a CLI
  // command that sets none never pays it).
  let analyser: ZxcvbnFactory | undefined;
  const zxcvbn = () =>
      (analyser ??= new ZxcvbnFactory({
      dictionary: { ...zxcvbnCommon.dictionary, ...zxcvbnEn.dictionary },
      graphs: zxcvbnCommon.adjacencyGraphs,
      translations: zxcvbnEn.translations,
      // NOTE: zxcvbn's cost grows fast with length and with l33t look-alikes ('@', '$', '4', '1'):
      // with its defaults a 128-character '4@1$4@1$…' took over a second of CPU. The first 64
      // characters are analysed (longer passwords are judged by them), with at most 4 l33t
      // substitutions ("P@$$w0rd" is still found): about 50 ms in the worst case measured.
      maxLength: ANALYSED_LENGTH,
      l33tMaxSubstitutions: 4,
    }));

  const messages = {
    too_short: `Use at least ${minLength} characters. A few unrelated words together make a long password that is easy to remember.`,
    too_long: `Use at most ${maxLength} characters.`,
    control_characters: 'The password contains invisible control characters (such as a tab or a line break). Type it again without them.',
    too_common: 'This password is on lists of common or leaked passwords that attackers try first. Choose another one.',
    too_guessable:
      'This password is too easy to guess (a common word, a name, a date, a keyboard pattern or a repeated character). Add more unrelated words.',
    contains_email: 'Do not build your password from your email address. Choose something unrelated to it.',
    contains_name: 'Do not build your password from your name. Choose something unrelated to it.',
    contains_product_name: `Do not build your password from the name of this service (${productName}). Choose something unrelated to it.`,
  } satisfies Record<PasswordRefusal, string>;
  const refuse = (reason: PasswordRefusal): PasswordCheck => ({ ok: false, reason, message: messages[reason] });

  return {
    minLength,
    maxLength,

    async check(password, context = {}) {
      const normalised = normalisePassword(password);
      // Code points, not UTF-16 units: an emoji or a CJK extension character is one character.
      const length = [...normalised].length;
      if (length < minLength) return refuse('too_short');
      if (length > maxLength) return refuse('too_long');
      // eslint-disable-next-line no-control-regex -- the point is to find control characters
      if (/[\u0000-\u001f\u007f]/.test(normalised)) return refuse('control_characters');

      const words = contextWords(context, productName);
      const result = zxcvbn().check(normalised, [...words.keys()]);

      // The context words in it: as typed (case-insensitive), and as zxcvbn found them (reversed, l33t: "Al1ce").
      const lower = normalised.toLowerCase();
      const hits: { token: string; kind: ContextKind }[] = [];
      for (const [word, kind] of words) if (lower.includes(word)) hits.push({ token: word, kind });
      for (const match of result.sequence) {
        if (match.pattern !== 'dictionary' || match.dictionaryName !== 'userInputs') continue;
        const matched = typeof match.matchedWord === 'string' ? match.matchedWord : '';
        hits.push({ token: match.token.toLowerCase(), kind: words.get(matched) ?? 'name' });
      }
      if (hits.length > 0) {
        // Built from the context: what is left without it would not pass on its own. (A long
        // passphrase that happens to hold the person's first name stays acceptable.)
        hits.sort((a, b) => b.token.length - a.token.length);
        let rest = lower;
        for (const { token } of hits) rest = removeAll(rest, token);
        const restWeak = [...rest].length < minLength || zxcvbn().check(rest).score < MIN_SCORE;
        if (restWeak) {
          const order: ContextKind[] = ['email', 'name', 'product'];
          const kind = order.find((k) => hits.some((h) => h.kind === k)) ?? 'name';
          return refuse(CONTEXT_REASON[kind]);
        }
      }

      if (result.score < MIN_SCORE) {
        const common = result.sequence.some(
          (m) => m.pattern === 'dictionary' && typeof m.dictionaryName === 'string' && m.dictionaryName.startsWith('passwords'),
        );
        return refuse(common ? 'too_common' : 'too_guessable');
      }
      return { ok: true, normalised };
    },
  };
}
