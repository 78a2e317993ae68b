import { registerHooks } from 'node:module';

// NOTE: globalSetup/globalTeardown are loaded by plain Node `require` (through
// @swc/jest's CommonJS transform), not by jest's own resolver, so
// `moduleNameMapper` does not apply to them and a NodeNext-style import such as
// '../../src/db/provision.js' finds no file. Map a missing relative `.js` to the
// `.ts` beside it, for this process only (test files are resolved by jest).
registerHooks({
  resolve(specifier, context, nextResolve) {
    try {
      return nextResolve(specifier, context);
    } catch (error) {
      if (!/^\.{1,2}\/.*\.js$/.test(specifier)) throw error;
      return nextResolve(specifier.replace(/\.js$/, '.ts'), context);
    }
  },
});

/** @type {import('jest').Config} */
export default {
  testEnvironment: '<rootDir>/test/support/fast-global-environment.js',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2023' },
        module: { type: 'es6' },
      },
    ],
  },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  // Each worker's files use that worker's own database server (global-setup.ts).
  setupFiles: ['<rootDir>/test/support/worker-database.ts'],
  testTimeout: 60000,
};
