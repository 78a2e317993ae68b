/** The messages between the bench and a target process (over the IPC channel of `fork`). */

export interface ProbeSample {
  /** User + system CPU time of the whole process so far, in microseconds. */
  cpuMicros: number;
  rss: number;
  /** The highest resident set size seen since the previous sample (sampled every 50 ms). */
  rssPeak: number;
  /** HTTP requests the server received so far. */
  requests: number;
  /** Database commands sent so far (driver command monitoring). */
  commands: number;
  /** The same, by `<command> <collection>`. */
  commandsByName: Record<string, number>;
}

/** What a target creates for the scenarios. */
export interface SetupInput {
  /** Accounts for the password flow, one per worker: `email` → password. */
  passwordAccounts: { email: string; password: string }[];
  /** Accounts for the email-code flow (no password). */
  codeAccounts: string[];
  redirectUri: string;
}

export interface SetupOutput {
  clientId: string;
  clientSecret: string;
}

export type ToChild = { id: number; type: 'sample' } | { id: number; type: 'setup'; input: SetupInput } | { id: number; type: 'stop' };

export type FromChild =
  | { type: 'ready'; port: number }
  | { type: 'result'; id: number; value: unknown }
  | { type: 'error'; id: number; message: string };
