import { Schema } from 'mongoose';
import type { Connection, Model } from 'mongoose';

import { randomAlphanumeric } from '../crypto/identifiers.js';
import type { StoredProfile } from './profile-claims.js';

export type Role = 'admin';

/**
 * Second factors. TOTP secrets are sealed with AES-256-GCM (src/crypto/secret-box.ts, key id
 * stored in the sealed value so the key can rotate); recovery codes are stored hashed only.
 */
export interface AccountMfa {
  /** The active authenticator app; absent when none is enrolled. */
  totp?: { secretSealed: string; enabledAt: Date; lastUsedStep?: number | undefined } | null | undefined;
  /** A secret shown for enrolment, active only once the person proves they have it. */
  /** Written by older versions only (enrolment now stores nothing before activation); cleared at activation. */
  pendingTotp?: { secretSealed: string; createdAt: Date } | null | undefined;
  /**
   * Keyed hashes of the unused recovery codes (`h1.<keyId>.<HMAC>`, or bare SHA-256 from older
   * versions; totp.service.ts). A used code is pulled from here, but its claim
   * in `recovery_code_uses` is what refuses it (see totp.service.ts).
   */
  recoveryCodes?: string[] | undefined;
}

export interface AccountRecord {
  /** Opaque and stable: this is the `sub` claim, so it never reveals or follows the email. */
  _id: string;
  /** Stored lower-cased; uniqueness relies on that, since FerretDB has no collations. */
  email: string;
  emailVerified: boolean;
  name?: string | undefined;
  passwordHash?: string | undefined;
  roles: Role[];
  disabledAt?: Date | null | undefined;
  /** Set by an administrator: the next sign-in ends on the new-password page (src/interactions/factor.routes.ts). */
  passwordResetRequired?: boolean | undefined;
  mfa?: AccountMfa | undefined;
  /**
   * Set while the account is a self-service sign-up nobody has verified yet (sign-up.service.ts):
   * it then holds no password and no name, only the address, and the sweep deletes it after this
   * time unless `emailVerified` became true. A pending account is whatever `emailVerified: false`
   * with this field set; an account an administrator made unverified never has it.
   */
  signUpPendingUntil?: Date | null | undefined;
  /** Standard claims under their claim names (profile-claims.ts): given_name, picture, phone_number, address… */
  profile?: StoredProfile | undefined;
  /** When a claim apps see (the name or the profile) last changed: the `updated_at` claim. */
  profileUpdatedAt?: Date | undefined;
  createdAt: Date;
  updatedAt: Date;
}

export type AccountModel = Model<AccountRecord>;

/** The account's `sub`: letters and digits only, like client ids (src/crypto/identifiers.ts). */
export function newAccountId(): string {
  return randomAlphanumeric(22);
}

const accountSchema = new Schema<AccountRecord>(
  {
    _id: { type: String, default: newAccountId },
    email: { type: String, required: true, lowercase: true, trim: true },
    emailVerified: { type: Boolean, default: false },
    name: { type: String },
    passwordHash: { type: String },
    roles: { type: [String], default: [] },
    disabledAt: { type: Date, default: null },
    passwordResetRequired: { type: Boolean, default: false },
    signUpPendingUntil: { type: Date },
    // Checked by profile-claims.ts before every write; Mixed keeps the claim names as they are.
    profile: { type: Schema.Types.Mixed, default: undefined },
    profileUpdatedAt: { type: Date },
    mfa: {
      type: new Schema<AccountMfa>(
        {
          totp: { type: new Schema({ secretSealed: String, enabledAt: Date, lastUsedStep: Number }, { _id: false }), default: null },
          pendingTotp: { type: new Schema({ secretSealed: String, createdAt: Date }, { _id: false }), default: null },
          recoveryCodes: { type: [String], default: undefined },
        },
        { _id: false },
      ),
      default: undefined,
    },
  },
  { collection: 'accounts', timestamps: true, versionKey: false, autoIndex: false },
);
accountSchema.index({ email: 1 }, { unique: true });
accountSchema.index({ signUpPendingUntil: 1 }, { sparse: true });

export function createAccountModel(connection: Connection): AccountModel {
  return connection.models.Account ?? connection.model<AccountRecord>('Account', accountSchema);
}
