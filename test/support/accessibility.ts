import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import { expect } from '@jest/globals';
import type { Page } from 'playwright-core';

/**
 * axe-core in the page under test: WCAG 2.0 / 2.1 level A and AA rules.
 * NOTE: injected with page.evaluate (the DevTools protocol), not a <script> tag: the pages' CSP
 * refuses inline scripts, and it must stay that way for the test to mean anything.
 */
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

interface AxeNode {
  target: string[];
  failureSummary?: string;
}
interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: AxeNode[];
}

/** The WCAG 2.1 A/AA violations axe finds on the page as it is now, one line each. */
export async function accessibilityViolations(page: Page): Promise<string[]> {
  await page.evaluate(AXE_SOURCE);
  const violations = (await page.evaluate(
    `axe.run(document, { runOnly: { type: 'tag', values: ${JSON.stringify(TAGS)} }, resultTypes: ['violations'] }).then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target, failureSummary: n.failureSummary })) })))`,
  )) as AxeViolation[];
  return violations.flatMap((v) => v.nodes.map((n) => `${v.id} (${v.impact ?? 'n/a'}): ${v.help} at ${n.target.join(' ')}`));
}

/** Fails, naming each rule and element, when axe finds a WCAG 2.1 A/AA violation. */
export async function expectAccessible(page: Page, what: string): Promise<void> {
  const found = await accessibilityViolations(page);
  expect({ page: what, violations: found }).toEqual({ page: what, violations: [] });
}
