import { z } from 'zod';

import type { AuditEvent, AuditFilter } from '../../audit/audit.service.js';
import { AUDIT_ID_PATTERN } from '../../audit/audit.service.js';
import type { ConsolePages } from './console.routes.js';

/** The audit log: newest first, filterable by actor, action, target, outcome, client and dates. */

const optionalText = z
  .string()
  .max(200)
  .transform((s) => s.trim())
  .transform((s) => (s === '' ? undefined : s))
  .optional();

const optionalDate = z
  .string()
  .max(10)
  .transform((s) => s.trim())
  .pipe(z.union([z.literal(''), z.iso.date()]))
  .transform((s) => (s === '' ? undefined : s))
  .optional();

const filterQuery = z.object({
  actor: optionalText,
  action: optionalText,
  target: optionalText,
  client: optionalText,
  outcome: z.enum(['', 'success', 'failure']).optional(),
  from: optionalDate,
  to: optionalDate,
  cursor: z.string().regex(AUDIT_ID_PATTERN).optional(),
});

export const registerAuditPages: ConsolePages = (router, deps, kit) => {
  const { audit, accounts } = deps;

  /**
   * The email of each account the page names by id only (the provider's events, e.g. a session
   * ending, know the account id and nothing more): one read per distinct account on the page,
   * at most 50. A deleted account keeps its id.
   */
  const emailsFor = async (events: readonly AuditEvent[]): Promise<Map<string, string>> => {
    const ids = new Set<string>();
    for (const event of events) {
      if (event.actor.type === 'account' && event.actor.id && !event.actor.label) ids.add(event.actor.id);
      if (event.target?.type === 'account' && !event.target.label) ids.add(event.target.id);
    }
    const emails = new Map<string, string>();
    await Promise.all(
      [...ids].map(async (id) => {
        const account = await accounts.findById(id);
        if (account) emails.set(id, account.email);
      }),
    );
    return emails;
  };

  router.get('/audit', kit.requireAdmin, async function auditLog(ctx) {
    const parsed = filterQuery.safeParse(ctx.query);
    const query = parsed.success ? parsed.data : {};
    const filter: AuditFilter = {
      actor: query.actor,
      action: query.action,
      target: query.target,
      clientId: query.client,
      outcome: query.outcome === 'success' || query.outcome === 'failure' ? query.outcome : undefined,
      // Dates are whole UTC days: "to" includes the whole day.
      from: query.from ? new Date(`${query.from}T00:00:00Z`) : undefined,
      to: query.to ? new Date(new Date(`${query.to}T00:00:00Z`).getTime() + 24 * 60 * 60 * 1000) : undefined,
    };
    const page = await audit.list(filter, { limit: 50, cursor: query.cursor });
    const emails = await emailsFor(page.events);
    const keep = new URLSearchParams();
    for (const [key, value] of Object.entries({ ...query, cursor: undefined })) if (value) keep.set(key, String(value));
    const next = page.nextCursor ? new URLSearchParams(keep) : undefined;
    next?.set('cursor', page.nextCursor ?? '');
    await kit.render(
      ctx,
      'admin/audit',
      'audit',
      {
        title: 'Audit log',
        filter: { ...query, outcome: query.outcome ?? '' },
        invalidFilter: !parsed.success,
        events: page.events.map((event) => ({
          at: event.at,
          action: event.action,
          outcome: event.outcome,
          actor: event.actor.label ?? (event.actor.id ? (emails.get(event.actor.id) ?? event.actor.id) : event.actor.type),
          actorType: event.actor.type,
          actorId: event.actor.id,
          target: event.target ? `${event.target.type}: ${event.target.label ?? emails.get(event.target.id) ?? event.target.id}` : '',
          clientId: event.clientId ?? '',
          ip: event.ip ?? '',
          reason: event.reason ?? '',
          // One entry per detail, values of a list separated by ", " (so lines break between them, never inside one).
          details: event.details ? Object.entries(event.details).map(([key, value]) => ({ key, value: Array.isArray(value) ? value.join(', ') : String(value) })) : [],
        })),
        nextHref: next ? `/admin/audit?${next.toString()}` : undefined,
        firstHref: query.cursor ? `/admin/audit?${keep.toString()}` : undefined,
      },
      parsed.success ? 200 : 400,
    );
  });
};
