/** The helpers the client and API resource pages share to read their forms and show their values. */
import { describe, expect, it } from '@jest/globals';

import { durationInWords, lifetimeText, noticeFrom, utcTime } from '../../../src/admin/console/console-kit.js';
import { errorSummary, lines, secondsFromForm } from '../../../src/admin/console/form-values.js';

describe('form values', () => {
  it('reads a textarea as its non-blank, trimmed lines', () => {
    expect(lines('  https://a.example/cb \r\n\n\t\nhttps://b.example/cb')).toEqual(['https://a.example/cb', 'https://b.example/cb']);
    expect(lines('')).toEqual([]);
  });

  it('reads a lifetime: blank is the default, a number is a number, anything else is refused and passed on as typed', () => {
    const formErrors: Record<string, string> = {};
    expect(secondsFromForm('  ', 'accessTokenTtl', formErrors)).toBeUndefined();
    expect(secondsFromForm(' 600 ', 'accessTokenTtl', formErrors)).toBe(600);
    expect(secondsFromForm('-1.5', 'accessTokenTtl', formErrors)).toBe(-1.5);
    expect(formErrors).toEqual({});
    expect(secondsFromForm(' ten minutes ', 'idTokenTtl', formErrors)).toBe('ten minutes');
    expect(formErrors).toEqual({ idTokenTtl: 'must be a number of seconds (or blank for the server default)' });
  });

  it('lists a refused form’s problems in the form’s order, then those of no field under the form’s name', () => {
    const labels = { name: 'Display name', scopes: 'Scopes' };
    expect(errorSummary({ input: 'odd', scopes: 'too many', name: 'required' }, labels, 'The API resource')).toEqual([
      { key: 'name', label: 'Display name', message: 'required', href: '#f-name' },
      { key: 'scopes', label: 'Scopes', message: 'too many', href: '#f-scopes' },
      { key: 'input', label: 'The API resource', message: 'odd', href: undefined },
    ]);
  });
});

describe('console text', () => {
  it('says durations and lifetimes in words', () => {
    expect(durationInWords(90_061)).toBe('1 day 1 hour');
    expect(durationInWords(1)).toBe('1 second');
    expect(durationInWords(0)).toBe('');
    expect(lifetimeText(undefined, 3600)).toBe('Server default (3600 s, 1 hour)');
    expect(lifetimeText(150, 3600)).toBe('150 s (2 minutes 30 seconds)');
  });

  it('shows times to the second in UTC', () => {
    expect(utcTime(new Date('2026-01-02T03:04:05.678Z'))).toBe('2026-01-02 03:04:05 UTC');
  });

  it('shows only a fixed notice, never text from the query', () => {
    const notices = { created: 'Created.' };
    expect(noticeFrom(notices, 'created')).toBe('Created.');
    expect(noticeFrom(notices, '<script>')).toBeUndefined();
    expect(noticeFrom(notices, 'toString')).toBeUndefined();
    expect(noticeFrom(notices, ['created'])).toBeUndefined();
  });
});
