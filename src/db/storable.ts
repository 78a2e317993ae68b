/**
 * Whether a string can be stored, and so be looked up, on every database this server runs on.
 * NOTE: PostgreSQL cannot hold U+0000 in a string, and FerretDB on PostgreSQL answers a query
 * that names one with an error instead of "nothing found". No record can have such an id, so a
 * lookup by one is answered as "not found" before it reaches the database.
 */
export function isStorableString(value: string): boolean {
  return !value.includes('\u0000');
}
