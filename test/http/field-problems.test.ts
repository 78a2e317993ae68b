/**
 * zod's issues as per-field messages, and the one base of the services' field validation errors:
 * each keeps its own class (callers catch their own service's refusal), its catalogue code, and a
 * message summarising the fields.
 */
import { describe, expect, it } from '@jest/globals';
import { z } from 'zod';

import { ProfileValidationError } from '../../src/accounts/profile-claims.js';
import { UserValidationError } from '../../src/accounts/user-admin.service.js';
import { ClientValidationError } from '../../src/clients/client-input.js';
import { AppError, FieldValidationError } from '../../src/http/app-error.js';
import { fieldMessagesFrom, fieldProblemsFrom } from '../../src/http/field-problems.js';
import { ApiResourceValidationError } from '../../src/resources/api-resource.service.js';

const schema = z.strictObject({
  name: z.string().min(3, 'too short').regex(/^[a-z]+$/, 'letters only'),
  address: z.strictObject({ city: z.string() }).optional(),
});

describe('fieldProblemsFrom and fieldMessagesFrom', () => {
  const result = schema.safeParse({ name: '1', extra: true, address: { city: 'x', street: 'y' } });
  if (result.success) throw new Error('the input should be refused');

  it('names each field by its path, unknown keys by their own path, several messages kept apart', () => {
    expect(fieldProblemsFrom(result.error)).toEqual(
      expect.arrayContaining([
        { field: 'name', message: 'too short' },
        { field: 'name', message: 'letters only' },
        { field: 'extra', message: 'is not a field that can be set here' },
        { field: 'address.street', message: 'is not a field that can be set here' },
      ]),
    );
  });

  it('gives one message per field: the first, or all joined', () => {
    expect(fieldMessagesFrom(result.error, 'first')).toMatchObject({ name: 'too short', extra: 'is not a field that can be set here' });
    expect(fieldMessagesFrom(result.error, 'joined')).toMatchObject({ name: 'too short; letters only', 'address.street': 'is not a field that can be set here' });
  });

  it('names the input as a whole `input`', () => {
    const whole = z.string().safeParse(1);
    if (whole.success) throw new Error('the input should be refused');
    expect(Object.keys(fieldMessagesFrom(whole.error, 'first'))).toEqual(['input']);
  });
});

describe('FieldValidationError', () => {
  const fields = { name: 'is required', redirectUris: 'must be https' };

  it.each([
    ['UserValidationError', new UserValidationError(fields), 'user.invalid', 'name: is required; redirectUris: must be https'],
    ['ProfileValidationError', new ProfileValidationError(fields), 'user.invalid', 'name: is required; redirectUris: must be https'],
    ['ApiResourceValidationError', new ApiResourceValidationError(fields), 'resource.invalid', 'invalid API resource: name: is required; redirectUris: must be https'],
  ])('%s: a 400 of its own class with its fields and their summary', (name, err, code, message) => {
    expect(err).toBeInstanceOf(FieldValidationError);
    expect(err).toBeInstanceOf(AppError);
    expect(err.name).toBe(name);
    expect(err.status).toBe(400);
    expect(err.code).toBe(code);
    expect(err.expose).toBe(true);
    expect(err.fields).toEqual(fields);
    expect(err.message).toBe(message);
  });

  it('keeps the classes apart: a caller catching one service’s refusal does not catch another’s', () => {
    expect(new UserValidationError(fields)).not.toBeInstanceOf(ProfileValidationError);
    expect(new ProfileValidationError(fields)).not.toBeInstanceOf(UserValidationError);
    expect(new ApiResourceValidationError(fields)).not.toBeInstanceOf(UserValidationError);
  });

  it('labels the client’s fields in its summary', () => {
    const err = new ClientValidationError({ redirectUris: 'must be https', unknownField: 'odd' });
    expect(err).toBeInstanceOf(FieldValidationError);
    expect(err.code).toBe('client.invalid');
    expect(err.message).toBe('invalid client: redirect URIs: must be https; unknownField: odd');
    expect(err.message).not.toContain('redirectUris:');
  });
});
