/**
 * Times as the account centre shows them: a readable label in UTC (the server does not know the
 * person's time zone, and a page must not guess one), with the exact instant for `<time datetime>`.
 */

export interface TimeLabel {
  /** ISO 8601, for the `datetime` attribute. */
  iso: string;
  /** "2 Dec 2026, 22:15 UTC". */
  text: string;
}

const FORMAT = new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone: 'UTC' });

export function timeLabel(value: Date | undefined): TimeLabel | undefined {
  if (!value || Number.isNaN(value.getTime())) return undefined;
  return { iso: value.toISOString(), text: `${FORMAT.format(value)} UTC` };
}
