import { describe, expect, it } from '@jest/globals';

import { runWithRequest } from '../../src/http/request-context.js';
import { createLogger } from '../../src/logging/logger.js';
import type { LogLevel } from '../../src/logging/logger.js';

/** The logger on pino: JSON lines, redaction of secret-looking fields at any depth, request ids. */

function collecting(level: LogLevel = 'debug', format: 'json' | 'pretty' = 'json') {
  const lines: string[] = [];
  const logger = createLogger({ level, format, write: (line) => lines.push(line) });
  const entries = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  return { logger, lines, entries };
}

const request = (requestId: string) => ({ requestId, ip: '203.0.113.9', userAgent: 'test', method: 'GET', path: '/x' });

describe('logger', () => {
  it('writes one JSON object per line with a level name, an ISO time and the message', () => {
    const { logger, lines, entries } = collecting();
    logger.info('hello', { accountId: 'a1', count: 3 });
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain('\n');
    const [entry] = entries();
    expect(entry).toMatchObject({ level: 'info', msg: 'hello', accountId: 'a1', count: 3 });
    expect(new Date(entry?.time as string).toISOString()).toBe(entry?.time);
  });

  it('drops lines below its level, and writes each level under its own name', () => {
    const { logger, entries } = collecting('warn');
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
    expect(entries().map((e) => [e.level, e.msg])).toEqual([
      ['warn', 'w'],
      ['error', 'e'],
    ]);
  });

  it('redacts secret-looking fields at any depth, in objects and arrays, and in bound fields', () => {
    const { logger, lines, entries } = collecting();
    logger.child({ session: { cookie: 'sid=s3cr3t-cookie' } }).warn('request', {
      password: 'hunter2-password',
      client_secret: 'client-secret-value',
      nested: { deeper: { headers: { authorization: 'Bearer bearer-token-value', accept: 'text/html' } } },
      list: [{ refresh_token: 'refresh-token-value' }, { code: '123456' }, { code_verifier: 'verifier-value' }],
      grantType: 'authorization_code',
    });
    const logged = lines.join('\n');
    for (const secret of ['hunter2-password', 'client-secret-value', 'bearer-token-value', 'refresh-token-value', '123456', 'verifier-value', 's3cr3t-cookie']) {
      expect(logged).not.toContain(secret);
    }
    const [entry] = entries();
    expect(entry).toMatchObject({
      password: '[redacted]',
      client_secret: '[redacted]',
      session: { cookie: '[redacted]' },
      nested: { deeper: { headers: { authorization: '[redacted]', accept: 'text/html' } } },
      list: [{ refresh_token: '[redacted]' }, { code: '[redacted]' }, { code_verifier: '[redacted]' }],
      grantType: 'authorization_code',
    });
  });

  it('serialises errors with name, message, stack and cause, wherever they are', () => {
    const { logger, entries } = collecting();
    const cause = Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' });
    logger.error('failed', { err: new Error('outer failure', { cause }), context: { inner: new TypeError('bad type') } });
    const [entry] = entries();
    const err = entry?.err as Record<string, unknown>;
    expect(err).toMatchObject({ name: 'Error', message: 'outer failure', cause: { name: 'Error', message: 'connection refused', code: 'ECONNREFUSED' } });
    expect(err.stack).toEqual(expect.stringContaining('outer failure'));
    expect(err.stack).toEqual(expect.stringContaining('logger.test'));
    expect(entry?.context).toMatchObject({ inner: { name: 'TypeError', message: 'bad type', stack: expect.any(String) } });
  });

  it('writes bytes as their size only', () => {
    const { logger, lines, entries } = collecting();
    logger.info('bytes', { payload: Buffer.from('raw-secret-bytes') });
    expect(entries()[0]).toMatchObject({ payload: '[16 bytes]' });
    expect(lines[0]).not.toContain('raw-secret-bytes');
  });

  it('survives a cyclic object (cut at depth) instead of throwing', () => {
    const { logger, entries } = collecting();
    const cyclic: Record<string, unknown> = { name: 'loop' };
    cyclic.self = cyclic;
    expect(() => logger.info('cyclic', { cyclic })).not.toThrow();
    expect(JSON.stringify(entries()[0])).toContain('[truncated]');
  });

  it('puts the request id on every line logged during a request, from the root logger too', () => {
    const { logger, entries } = collecting();
    logger.info('outside');
    runWithRequest(request('req-123456'), () => {
      logger.info('inside');
      logger.child({ component: 'mailer' }).warn('inside, child');
    });
    // A request's own child logger keeps the id it was given.
    runWithRequest(request('req-other'), () => logger.child({ requestId: 'req-bound' }).info('bound'));
    const lines = entries();
    expect(lines[0]).not.toHaveProperty('requestId');
    expect(lines[1]).toMatchObject({ msg: 'inside', requestId: 'req-123456' });
    expect(lines[2]).toMatchObject({ msg: 'inside, child', requestId: 'req-123456', component: 'mailer' });
    expect(lines[3]).toMatchObject({ msg: 'bound', requestId: 'req-bound' });
  });

  it('lets a field on the line replace a bound one (no duplicate key in the JSON)', () => {
    const { logger, lines } = collecting();
    logger.child({ step: 'one' }).info('x', { step: 'two' });
    expect(lines[0]?.match(/"step"/g)).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({ step: 'two' });
  });

  it('pretty format: one readable entry per line call, level and message first, secrets redacted', () => {
    const { logger, lines } = collecting('debug', 'pretty');
    logger.warn('something odd', { password: 'pretty-secret', where: 'here' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/WARN.*something odd/);
    expect(lines[0]).toContain('here');
    expect(lines[0]).not.toContain('pretty-secret');
    expect(() => JSON.parse(lines[0] ?? '')).toThrow();
  });
});
