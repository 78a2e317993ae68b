/** The AppError a service call rejects with (fails the test if it resolves or throws anything else). */
import { expect } from '@jest/globals';

import { AppError } from '../../src/http/app-error.js';

export async function appErrorOf(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected an AppError');
}
