import { z } from 'zod';

/** Where the management API lives; config.adminApi.resource is the issuer followed by this. */
export const ADMIN_API_PREFIX = '/api/admin/v1';

/** `?search=&limit=&cursor=` of the client and user lists. */
export const pageQuerySchema = z.strictObject({
  search: z.string().max(200, 'must be at most 200 characters').optional().describe('Case-insensitive substring to look for'),
  limit: z.coerce
    .number('must be a number')
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(200, 'must be at most 200')
    .optional()
    .describe('Page size, 1-200 (default 50)'),
  cursor: z.string().max(1000, 'must be at most 1000 characters').optional().describe('`nextCursor` of the previous page'),
});
