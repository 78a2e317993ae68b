import { describe, expect, it } from '@jest/globals';

import { newClientId, randomAlphanumeric } from '../../src/crypto/identifiers.js';

describe('generated identifiers', () => {
  it('client ids are 22 letters and digits, never starting with "-" or "_", and do not repeat', () => {
    // With base64url ids, 1 in 32 started with "-" or "_"; 5000 of them would hit one almost surely.
    const ids = Array.from({ length: 5000 }, () => newClientId());
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9]{22}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('uses every letter and digit, with no character much more common than another', () => {
    const counts = new Map<string, number>();
    for (const ch of randomAlphanumeric(62 * 2000)) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    expect(counts.size).toBe(62);
    // Expected 2000 each; a modulo-biased draw from bytes would put some near 2580 and others near 1290.
    for (const n of counts.values()) {
      expect(n).toBeGreaterThan(1700);
      expect(n).toBeLessThan(2300);
    }
  });
});
