import type Provider from 'oidc-provider';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { mongo } from 'mongoose';

import type { AuditEvent, AuditService } from '../audit/audit.service.js';
import type { Logger } from '../logging/logger.js';
import type { MailOutbox } from '../mail/outbox.service.js';
import type { BackchannelLogoutService } from '../oidc/backchannel-logout.service.js';

/**
 * Prometheus metrics, one Registry per server instance (never prom-client's global default
 * registry: tests run several servers in one process, and two would share and double-count).
 *
 * Everything is counted from what the code already reports, through one hook each: HTTP requests
 * by a middleware (request-metrics.ts), sign-ins, second factors and throttle refusals from the
 * audit events (AuditService.onRecorded), tokens from the provider's events, database commands
 * from the driver's command monitoring, mail from the outbox (MailOutbox.onDelivery). Counting
 * sends no database command; only a scrape does (the outbox gauge counts mails then).
 *
 * NOTE: every label value comes from a fixed set or passes `boundedLabel`: a label fed from input
 * (a raw path, a client's parameter) would create a new time series per value, which is how an
 * attacker exhausts the server's and Prometheus's memory.
 */
export interface Metrics {
  registry: Registry;
  /** One HTTP request: its method, route pattern (never the raw path), status and duration. */
  observeRequest(labels: { method: string; route: string; status: number }, seconds: number): void;
  /** Sign-ins, second factors and throttle refusals, from every audit event recorded. */
  observeAudit(audit: AuditService): void;
  /** Tokens issued by grant type, and token endpoint errors, from the provider's events. */
  observeProvider(provider: Provider): void;
  /** Database command latency by command name (the connection must monitor commands). */
  observeCommands(client: mongo.MongoClient): void;
  /** Outbox depth (counted at each scrape) and delivery outcomes. */
  observeOutbox(outbox: MailOutbox): void;
  /** Back-channel logout delivery attempts by outcome (delivered, failed, dead). */
  observeBackchannelLogout(service: Pick<BackchannelLogoutService, 'onDelivery'>): void;
}

const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const LABEL_VALUE = /^[A-Za-z0-9_.:-]{1,64}$/;

/**
 * A label value from an open set (reasons, command names): kept when it looks like a code and is
 * one of the first `max` seen, else `other`.
 */
function boundedLabel(max: number): (value: string | undefined) => string {
  const seen = new Set<string>();
  return (value) => {
    if (!value) return 'none';
    if (seen.has(value)) return value;
    if (!LABEL_VALUE.test(value) || seen.size >= max) return 'other';
    seen.add(value);
    return value;
  };
}

/** Sign-in audit actions and the method each stands for. */
const SIGN_IN_METHODS: Record<string, string> = {
  'sign_in.password': 'password',
  'sign_in.email_code': 'email_code',
};
/** Second-factor audit actions and the factor each stands for. */
const SECOND_FACTOR_METHODS: Record<string, string> = {
  'mfa.totp': 'totp',
  'mfa.recovery_code': 'recovery_code',
  'mfa.email_code': 'email_code',
  'mfa.password': 'password',
};

/** Token response members counted as issued tokens. */
const TOKEN_TYPES = ['access_token', 'refresh_token', 'id_token'] as const;

export function createMetrics({ logger }: { logger: Logger }): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) => new Counter({ name, help, labelNames, registers: [registry] });

  const httpRequests = counter('http_requests_total', 'HTTP requests by method, route pattern and status.', ['method', 'route', 'status'] as const);
  const httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration (until the handler is done) by method, route pattern and status.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const signIns = counter('auth_sign_ins_total', 'First-factor sign-in attempts by method, outcome and failure reason.', ['method', 'outcome', 'reason'] as const);
  const secondFactors = counter('auth_second_factor_total', 'Second-factor checks by method, outcome and failure reason.', ['method', 'outcome', 'reason'] as const);
  const throttled = counter('auth_throttle_refusals_total', 'Requests refused by a sign-in, code or sign-up limit, by audit action and limit.', ['action', 'reason'] as const);
  const tokensIssued = counter('oidc_tokens_issued_total', 'Tokens issued at the token endpoint by grant type and token type.', ['grant_type', 'token_type'] as const);
  const tokenErrors = counter('oidc_token_errors_total', 'Token endpoint requests refused, by OAuth error code.', ['error'] as const);
  const dbCommands = new Histogram({
    name: 'db_command_duration_seconds',
    help: 'Database command latency by command name and outcome (driver command monitoring).',
    labelNames: ['command', 'outcome'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const outboxDeliveries = counter('mail_outbox_deliveries_total', 'Mail delivery attempts made by this node, by result (sent, failed).', ['result'] as const);
  const outboxDead = counter('mail_outbox_dead_lettered_total', 'Mails this node gave up on (dead-lettered), by reason.', ['reason'] as const);

  const backchannelDeliveries = counter('backchannel_logout_deliveries_total', 'Back-channel logout token deliveries attempted by this node, by outcome (delivered, failed: will retry, dead: given up).', ['outcome'] as const);

  const reasonLabel = boundedLabel(64);
  const actionLabel = boundedLabel(64);
  const commandLabel = boundedLabel(64);
  const grantTypeLabel = boundedLabel(16);
  const errorLabel = boundedLabel(32);

  const onAuditEvent = (event: Readonly<Omit<AuditEvent, 'id'>>) => {
    const failure = event.outcome === 'failure';
    const reason = failure ? reasonLabel(event.reason ?? 'unknown') : 'none';
    const signIn = SIGN_IN_METHODS[event.action];
    if (signIn) signIns.inc({ method: signIn, outcome: event.outcome, reason });
    const factor = SECOND_FACTOR_METHODS[event.action];
    if (factor) secondFactors.inc({ method: factor, outcome: event.outcome, reason });
    if (failure && event.reason?.startsWith('throttled')) throttled.inc({ action: actionLabel(event.action), reason });
  };

  return {
    registry,

    observeRequest({ method, route, status }, seconds) {
      const labels = { method: HTTP_METHODS.has(method) ? method : 'other', route, status: String(status) };
      httpRequests.inc(labels);
      httpDuration.observe(labels, seconds);
    },

    observeAudit(audit) {
      audit.onRecorded(onAuditEvent);
    },

    observeProvider(provider) {
      provider.on('grant.success', (ctx) => {
        const grantType = ctx.oidc.params?.grant_type;
        const label = grantTypeLabel(typeof grantType === 'string' ? grantType : undefined);
        const body = ctx.body as Record<string, unknown> | undefined;
        for (const tokenType of TOKEN_TYPES) {
          if (typeof body?.[tokenType] === 'string') tokensIssued.inc({ grant_type: label, token_type: tokenType });
        }
      });
      provider.on('grant.error', (_ctx, err) => {
        tokenErrors.inc({ error: errorLabel((err as { error?: string }).error ?? 'server_error') });
      });
    },

    observeCommands(client) {
      client.on('commandSucceeded', (event) => {
        dbCommands.observe({ command: commandLabel(event.commandName), outcome: 'success' }, event.duration / 1000);
      });
      client.on('commandFailed', (event) => {
        dbCommands.observe({ command: commandLabel(event.commandName), outcome: 'failure' }, event.duration / 1000);
      });
    },

    observeBackchannelLogout(service) {
      service.onDelivery((outcome) => backchannelDeliveries.inc({ outcome: outcome.result }));
    },

    observeOutbox(outbox) {
      outbox.onDelivery((outcome) => {
        if (outcome.result === 'dead') outboxDead.inc({ reason: outcome.reason });
        else outboxDeliveries.inc({ result: outcome.result });
      });
      new Gauge({
        name: 'mail_outbox_messages',
        help: 'Mails in the outbox by state (queued: waiting to be sent; dead: given up), counted at each scrape.',
        labelNames: ['state'] as const,
        registers: [registry],
        async collect() {
          try {
            const counts = await outbox.counts();
            this.set({ state: 'queued' }, counts.queued);
            this.set({ state: 'dead' }, counts.dead);
          } catch (err) {
            // The scrape still answers (without fresh outbox numbers) while the database is down.
            this.reset();
            logger.warn('outbox metrics not collected', { reason: err instanceof Error ? err.message : String(err) });
          }
        },
      });
    },
  };
}
