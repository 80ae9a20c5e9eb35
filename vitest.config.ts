import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'manifest/**/*.test.ts', 'kiosk/**/*.test.ts', 'agent/**/*.test.ts'],
    testTimeout: 60_000, // ms: integration tests start real clamd
    hookTimeout: 120_000, // ms
    reporters: ['default', ['json', { outputFile: '.vitest-results.json' }]],
    pool: 'forks',
  },
});
