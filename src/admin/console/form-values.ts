/**
 * Reading the console's forms as people typed them (the client and API resource forms), and the
 * error summary above a refused form.
 */

/** A textarea's non-blank lines, trimmed: one entry per line. */
export function lines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter(Boolean);
}

/**
 * A lifetime field: blank is undefined (the server default), a number is that number. Anything
 * else gets its message in `formErrors` under `key` and is passed on as typed, so that the
 * service refuses that field too: a form with such a mistake can never be saved.
 */
export function secondsFromForm(text: string, key: string, formErrors: Record<string, string>): unknown {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  if (/^-?\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed);
  formErrors[key] = 'must be a number of seconds (or blank for the server default)';
  return trimmed;
}

export interface ErrorSummaryEntry {
  key: string;
  label: string | undefined;
  message: string | undefined;
  /** The field's anchor; none for a problem with the form as a whole. */
  href: string | undefined;
}

/**
 * The problems of a refused form in the form's order (`labels` lists its fields in order, with
 * their labels), then those of no field, under `formLabel` ("The client").
 */
export function errorSummary(errors: Record<string, string>, labels: Record<string, string>, formLabel: string): ErrorSummaryEntry[] {
  const labelled = (key: string) => Object.hasOwn(labels, key);
  const ordered = [...Object.keys(labels).filter((key) => Object.hasOwn(errors, key)), ...Object.keys(errors).filter((key) => !labelled(key))];
  return ordered.map((key) => ({
    key,
    label: labelled(key) ? labels[key] : formLabel,
    message: errors[key],
    href: labelled(key) ? `#f-${key}` : undefined,
  }));
}
