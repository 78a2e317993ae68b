import { Schema } from 'mongoose';
import type { Connection, Model } from 'mongoose';

export interface ClientRecord {
  /** client_id */
  _id: string;
  name: string;
  /**
   * The provider's client metadata without the secret, serialised: metadata is open-ended
   * (extensions, `jwks`, URLs as values) and FerretDB refuses some document shapes, so it
   * is stored the way the adapter stores payloads (docs/ARCHITECTURE.md, "State").
   */
  metadata: string;
  /** client_secret sealed with AES-256-GCM (src/crypto/secret-box.ts); absent for public clients. */
  secretSealed?: string | null;
  /**
   * The secret before the last rotation, sealed under its own context (so the two sealed values
   * cannot be swapped), accepted until `previousSecretExpiresAt` (client-secret-rotation.ts).
   */
  previousSecretSealed?: string | null;
  previousSecretExpiresAt?: Date | null;
  secretRotatedAt?: Date | null;
  public: boolean;
  createdAt: Date;
  updatedAt: Date;
}

export type ClientModel = Model<ClientRecord>;

const clientSchema = new Schema<ClientRecord>(
  {
    _id: { type: String, required: true },
    name: { type: String, required: true },
    metadata: { type: String, required: true },
    secretSealed: { type: String, default: null },
    previousSecretSealed: { type: String, default: null },
    previousSecretExpiresAt: { type: Date, default: null },
    secretRotatedAt: { type: Date, default: null },
    public: { type: Boolean, required: true },
  },
  { collection: 'clients', timestamps: true, versionKey: false, autoIndex: false },
);
// The admin list: ordered by name, then id (the cursor is the last pair seen).
clientSchema.index({ name: 1, _id: 1 });

export function createClientModel(connection: Connection): ClientModel {
  return connection.models.Client ?? connection.model<ClientRecord>('Client', clientSchema);
}
