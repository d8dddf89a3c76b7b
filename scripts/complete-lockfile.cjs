#!/usr/bin/env node
/**
 * The npm registry this project's machines reach does not serve some
 * platform builds of optional native packages (msgpackr-extract's macOS,
 * Windows and ARM builds, 404 here), so `npm install` leaves them out of
 * package-lock.json — and `npm ci` then refuses the lock as out of sync.
 * This adds a lock entry for every optional dependency of a locked package
 * that is missing, with the os/cpu its name declares (`…-<os>-<cpu>`), so
 * `npm ci` sees the lock complete and skips them on other platforms.
 * Run after every `npm install`: `npm run lockfile:complete`.
 */
const fs = require('node:fs');

const file = process.argv[2] ?? 'package-lock.json';
const lock = JSON.parse(fs.readFileSync(file, 'utf8'));
const OS = ['darwin', 'linux', 'win32', 'freebsd', 'android', 'openbsd', 'sunos', 'aix'];
const added = [];

for (const [path, entry] of Object.entries(lock.packages)) {
  for (const [name, range] of Object.entries(entry.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`;
    if (lock.packages[key] || lock.packages[`${path}/node_modules/${name}`]) continue;
    const platform = /-([a-z0-9]+)-([a-z0-9]+)$/.exec(name);
    if (!platform || !OS.includes(platform[1])) continue;
    // Platform builds are versioned with their parent (an exact range, as msgpackr-extract pins them).
    const version = /^\d+\.\d+\.\d+$/.test(range) ? range : entry.version;
    lock.packages[key] = { version, cpu: [platform[2]], license: entry.license, optional: true, os: [platform[1]] };
    added.push(key);
  }
}

const sorted = Object.entries(lock.packages).sort(([a], [b]) =>
  a === '' ? -1 : b === '' ? 1 : a.localeCompare(b, 'en'),
);
lock.packages = Object.fromEntries(sorted);
fs.writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(added.length ? `added lock entries: ${added.join(', ')}` : 'lock already complete');
