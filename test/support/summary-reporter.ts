/**
 * Prints the closing line CI reads: `N passed, N failed, N skipped`. A test file that fails to load
 * counts as one failed test (its tests never ran), and so does each unhandled error, so a broken import
 * can never turn into a green run with fewer tests.
 */
import type { Reporter, SerializedError, TestModule } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const m of modules) {
      let ran = 0;
      for (const t of m.children.allTests()) {
        ran++;
        const state = t.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else skipped++;
      }
      if (m.errors().length > 0 && ran === 0) failed++;
    }
    failed += unhandledErrors.length;
    process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
