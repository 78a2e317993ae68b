import type { z } from 'zod';

/** One refused input field and why: a body member (`redirectUris`), a query or path parameter (`limit`). */
export interface FieldProblem {
  field: string;
  message: string;
}

/**
 * zod's issues as field problems, several for one field kept apart. A field is the issue's path
 * joined with dots (`scopes.0.name`), `input` for the input as a whole; a key the schema does not
 * know (a strict object's) is named with its own path. Messages name rules, never the value given.
 */
export function fieldProblemsFrom(error: z.ZodError): FieldProblem[] {
  const out: FieldProblem[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      const prefix = issue.path.map(String).join('.');
      for (const key of issue.keys) out.push({ field: prefix ? `${prefix}.${key}` : key, message: 'is not a field that can be set here' });
      continue;
    }
    out.push({ field: issue.path.length > 0 ? issue.path.map(String).join('.') : 'input', message: issue.message });
  }
  return out;
}

/**
 * zod's issues as one message per field (a FieldValidationError's `fields`): the field's first
 * message, or all of its messages joined with "; ".
 */
export function fieldMessagesFrom(error: z.ZodError, several: 'first' | 'joined'): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const { field, message } of fieldProblemsFrom(error)) {
    const before = fields[field];
    if (before === undefined) fields[field] = message;
    else if (several === 'joined') fields[field] = `${before}; ${message}`;
  }
  return fields;
}
