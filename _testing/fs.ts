/**
 * Filesystem helpers for tests.
 *
 * @module
 */

const made: string[] = [];
let cleanupRegistered = false;

/** A fresh temporary directory, removed when the test module ends. */
export async function tempDir(prefix = "atomic-store-test-"): Promise<string> {
  if (!cleanupRegistered) {
    cleanupRegistered = true;
    globalThis.addEventListener("unload", () => {
      for (const dir of made) {
        try {
          Deno.removeSync(dir, { recursive: true });
        } catch { /* already gone */ }
      }
    });
  }
  const dir = await Deno.makeTempDir({ prefix });
  made.push(dir);
  return dir;
}

/** The names in a directory, sorted. */
export function listDir(dir: string): string[] {
  return Array.from(Deno.readDirSync(dir), (entry) => entry.name).sort();
}
