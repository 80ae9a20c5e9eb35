import { defineConfig } from 'vitest/config';

/** The Windows build tests: the single executable built twice, and run under Wine (about 2.5 minutes). */
const WINDOWS = ['test/integration/agent/sea-build.test.ts', 'test/integration/agent/windows-wine.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 60_000, // ms: integration tests start real clamd
    hookTimeout: 120_000, // ms
    reporters: ['default', ['json', { outputFile: '.vitest-results.json' }]],
    pool: 'forks',
    // `./portcullis test` runs "main"; `./portcullis test --project windows` (what .ci/run does) adds "windows".
    projects: [
      {
        extends: true,
        test: {
          name: 'main',
          include: ['test/**/*.test.ts', 'manifest/**/*.test.ts', 'kiosk/**/*.test.ts', 'agent/**/*.test.ts', 'update/**/*.test.ts'],
          exclude: WINDOWS,
        },
      },
      { extends: true, test: { name: 'windows', include: WINDOWS } },
    ],
  },
});
