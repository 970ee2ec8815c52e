/**
 * A child of the `dbm-costs` scenario, started with a young generation large enough that no
 * collection runs while it measures: what opening a namespace file, reading it and closing it
 * again (as the dbm backend does on a cache miss) leaves for the garbage collector.
 * Prints `{ heapKB, arrayBuffersKB }` per open + close as JSON.
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import { open } from 'lmdb';
import { lmdbOpenOptions } from '../../lib/namespace/lmdb-environments.js';

const FILES = 60;
const dir = process.argv[2] as string;
const files = Array.from({ length: FILES }, (_, i) => path.join(dir, `alloc${i}.mdb`));
for (const file of files) {
  const db = open<string, string>(lmdbOpenOptions(file));
  db.putSync('a', 'v'.repeat(500));
  await db.close();
}
const before = process.memoryUsage();
for (const file of files) {
  const db = open<string, string>(lmdbOpenOptions(file));
  db.get('a');
  await db.close();
}
const after = process.memoryUsage();
for (const file of files) {
  fs.rmSync(file, { force: true });
  fs.rmSync(`${file}-lock`, { force: true });
}
process.stdout.write(
  JSON.stringify({
    heapKB: (after.heapUsed - before.heapUsed) / 1024 / FILES,
    arrayBuffersKB: (after.arrayBuffers - before.arrayBuffers) / 1024 / FILES,
  }),
);
