import { z } from 'zod';

/** A 6-digit code (email or authenticator app); spaces people type or paste in the middle are dropped. */
export const codeForm = z.object({
  csrf: z.string(),
  code: z
    .string()
    .max(32)
    .transform((s) => s.replace(/\s+/g, ''))
    .pipe(z.string().regex(/^\d{6}$/)),
});
