import { z } from 'zod';

import type { AuditFilter, AuditService } from '../../audit/audit.service.js';
import type { ApiRoute } from './api-route.js';
import { defineRoute } from './api-route.js';
import { auditEventSchema, auditPageSchema } from './api-schemas.js';

const instant = z.iso
  .datetime({ offset: true, message: 'must be an RFC 3339 date-time, e.g. 2025-01-31T12:00:00Z' })
  .transform((s) => new Date(s));

/** The filters of the list and the export; every one optional, all of them must match. */
const filterShape = {
  actor: z.string().min(1).max(254).optional().describe("Actor id (account or client id) or the account's email, exact"),
  action: z
    .string()
    .min(1)
    .max(100)
    .optional()
    .describe('Exact action (`client.created`), or a prefix ending in `.` (`client.`)'),
  target: z.string().min(1).max(200).optional().describe('Target id, exact'),
  outcome: z.enum(['success', 'failure']).optional(),
  clientId: z.string().min(1).max(200).optional().describe('The OAuth client the event happened through'),
  from: instant.optional().describe('Events at or after this time (RFC 3339)'),
  to: instant.optional().describe('Events at or before this time (RFC 3339)'),
};

const orderedRange = (q: { from?: Date | undefined; to?: Date | undefined }) => !q.from || !q.to || q.from <= q.to;
const rangeMessage = { message: 'must not be before `from`', path: ['to'] };

const listQuery = z
  .strictObject({
    ...filterShape,
    limit: z.coerce
      .number('must be a number')
      .int('must be a whole number')
      .min(1, 'must be at least 1')
      .max(500, 'must be at most 500')
      .optional()
      .describe('Page size, 1-500 (default 50)'),
    cursor: z.string().max(100).optional().describe('`nextCursor` of the previous page'),
  })
  .refine(orderedRange, rangeMessage);

const exportQuery = z.strictObject(filterShape).refine(orderedRange, rangeMessage);

function filterOf(query: AuditFilter): AuditFilter {
  const { actor, action, target, outcome, clientId, from, to } = query;
  return { actor, action, target, outcome, clientId, from, to };
}

export function auditRoutes({ audit }: { audit: AuditService }): ApiRoute[] {
  return [
    defineRoute({
      method: 'get',
      path: '/audit-events',
      operationId: 'listAuditEvents',
      tag: 'audit',
      summary: 'List audit events',
      description: 'Newest first. Page through with `cursor` = the previous page\'s `nextCursor` (no repeats, no gaps).',
      scope: 'admin:audit:read',
      query: listQuery,
      responses: { 200: { description: 'A page of events', schema: auditPageSchema } },
      async handle({ query }) {
        return { status: 200, body: await audit.list(filterOf(query), { limit: query.limit ?? 50, cursor: query.cursor }) };
      },
    }),

    defineRoute({
      method: 'get',
      path: '/audit-events/export',
      operationId: 'exportAuditEvents',
      tag: 'audit',
      summary: 'Export audit events as JSON lines',
      description:
        'Every matching event, newest first, one JSON object (the schema below) per line (`application/x-ndjson`), streamed.',
      scope: 'admin:audit:read',
      query: exportQuery,
      responses: {
        200: { description: 'One event per line', schema: auditEventSchema, contentType: 'application/x-ndjson' },
      },
      async handle({ query }) {
        return {
          status: 200,
          stream: audit.exportJsonl(filterOf(query)),
          contentType: 'application/x-ndjson; charset=utf-8',
          headers: { 'Content-Disposition': 'attachment; filename="audit-events.jsonl"' },
        };
      },
    }),
  ];
}
