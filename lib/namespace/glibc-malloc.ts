/**
 * The one warning dbm gives about the process's allocator: on glibc, once LMDB files are
 * closed and opened again, each open takes its 2 MB dirty-page list from the heap and zeroes
 * it, unless Node was started with glibc's mmap threshold pinned.
 * @module
 */

/**
 * The mmap threshold to pin (`MALLOC_MMAP_THRESHOLD_`, bytes): 128 KB, glibc's own starting
 * value, so LMDB's 2 MB lists always come from `mmap` and never from the heap.
 */
export const PINNED_MMAP_THRESHOLD = 131_072;

/** The code of the warning {@link warnOnceIfMmapThresholdFloats} emits. */
export const MMAP_THRESHOLD_WARNING = 'SESSIONLOCK_DBM_MMAP_THRESHOLD';

let warned = false;

/** Whether this process runs on glibc with its mmap threshold left to float (the default). */
export function glibcMmapThresholdFloats(env: NodeJS.ProcessEnv = process.env): boolean {
  if (process.platform !== 'linux') return false;
  if (env.MALLOC_MMAP_THRESHOLD_ !== undefined || env.GLIBC_TUNABLES?.includes('glibc.malloc.mmap_threshold'))
    return false;
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return header?.glibcVersionRuntime !== undefined;
}

/**
 * Emits, once per process, a warning that dbm's cache of open files has started evicting on
 * glibc with a floating mmap threshold: from then on every cache miss allocates and zeroes
 * 2 MB on the heap (slower opens, 2.5 to 4 MB per open file). Silenced by starting Node with
 * `MALLOC_MMAP_THRESHOLD_=131072` ({@link PINNED_MMAP_THRESHOLD}), or with `--no-warnings` / a `process.on('warning')` filter.
 */
export function warnOnceIfMmapThresholdFloats(): void {
  if (warned) return;
  warned = true;
  if (!glibcMmapThresholdFloats()) return;
  process.emitWarning(
    `dbm keeps more sessions in use than maxOpenFiles open, so it closes and reopens LMDB files; on glibc each reopen then takes a 2 MB list from the heap and zeroes it (2.5 to 4 MB per open file and a slower open). Start Node with MALLOC_MMAP_THRESHOLD_=${PINNED_MMAP_THRESHOLD} to avoid both, or raise maxOpenFiles.`,
    { code: MMAP_THRESHOLD_WARNING },
  );
}
