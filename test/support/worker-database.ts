/**
 * Runs before each test file (jest `setupFiles`): points TEST_MONGODB_URI at the database server
 * of this file's worker, one of those globalSetup started (global-setup.ts). Files in one worker
 * run one after another; files in different workers never share a server.
 */
const lanes = (process.env.TEST_MONGODB_LANES ?? '').split(' ').filter(Boolean);
if (lanes.length > 0) {
  // JEST_WORKER_ID counts from 1 (and is 1 when jest runs the files in its own process).
  const worker = Math.max(1, Number(process.env.JEST_WORKER_ID ?? '1') || 1);
  process.env.TEST_MONGODB_URI = lanes[(worker - 1) % lanes.length];
}

export {};
