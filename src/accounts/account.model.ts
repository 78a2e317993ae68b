import { randomBytes } from 'node:crypto';

import { Schema } from 'mongoose';
import type { Connection, Model } from 'mongoose';

export type Role = 'admin';

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
  createdAt: Date;
  updatedAt: Date;
}

export type AccountModel = Model<AccountRecord>;

export function newAccountId(): string {
  return randomBytes(16).toString('base64url');
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
  },
  { collection: 'accounts', timestamps: true, versionKey: false, autoIndex: false },
);
accountSchema.index({ email: 1 }, { unique: true });

export function createAccountModel(connection: Connection): AccountModel {
  return connection.models.Account ?? connection.model<AccountRecord>('Account', accountSchema);
}
