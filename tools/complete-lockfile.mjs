#!/usr/bin/env node
/**
 * Adds the platform-specific optional packages that npm left out of package-lock.json.
 *
 * Why: the package mirror this project is developed against serves only Linux builds of some
 * native packages (@swc/core-*, @unrs/resolver-binding-*). npm then writes no lock entry for
 * the other platforms' variants, and `npm ci` refuses the lock file ("Missing: … from lock
 * file") on every platform. Each added entry names the package, its version and the platform
 * it is for (read from its name), so `npm ci` skips it wherever it does not apply.
 *
 * Run after any `npm install` that changes the lock file: `npm run lockfile:complete`.
 */
import { readFileSync, writeFileSync } from 'node:fs';

const LOCK = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(LOCK, 'utf8'));
const packages = lock.packages;

const OS = ['darwin', 'linux', 'win32', 'android', 'freebsd', 'openbsd', 'netbsd', 'sunos', 'aix', 'openharmony'];
const CPU = [
  ['arm64', /(^|-)arm64(-|$)/],
  ['x64', /(^|-)x64(-|$)/],
  ['ia32', /(^|-)ia32(-|$)/],
  ['ppc64', /(^|-)ppc64(le)?(-|$)/],
  ['s390x', /(^|-)s390x(-|$)/],
  ['riscv64', /(^|-)riscv64(-|$)/],
  ['loong64', /(^|-)loong64(-|$)/],
  ['arm', /(^|-)arm(-|$)/],
];

function platformOf(name) {
  const base = name.split('/').pop();
  const os = OS.find((o) => new RegExp(`(^|-)${o}(-|$)`).test(base));
  const cpu = CPU.find(([, re]) => re.test(base))?.[0];
  if (!os || !cpu) return undefined;
  const libc = /(^|-)musl/.test(base) ? ['musl'] : os === 'linux' && /(^|-)gnu/.test(base) ? ['glibc'] : undefined;
  return { os: [os], cpu: [cpu], ...(libc ? { libc } : {}) };
}

let added = 0;
for (const [location, entry] of Object.entries(packages)) {
  for (const [name, spec] of Object.entries(entry.optionalDependencies ?? {})) {
    // npm hoists these to the top level unless a nested copy exists.
    const nested = `${location ? `${location}/` : ''}node_modules/${name}`;
    const top = `node_modules/${name}`;
    if (packages[nested] || packages[top]) continue;
    const platform = platformOf(name);
    if (!platform || !/^\d+\.\d+\.\d+/.test(spec)) {
      console.warn(`left alone: ${name}@${spec} (platform or version not evident)`);
      continue;
    }
    packages[top] = {
      version: spec,
      ...(entry.dev ? { dev: true } : {}),
      optional: true,
      ...platform,
    };
    added += 1;
  }
}

lock.packages = Object.fromEntries(
  Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0)),
);
writeFileSync(LOCK, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`package-lock.json: ${added} platform package entr${added === 1 ? 'y' : 'ies'} added`);
