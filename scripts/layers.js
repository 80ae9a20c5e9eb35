// The import rules that keep the kiosk in layers and the two programs apart
// (docs/architecture.md). ESLint applies them file by file (eslint.config.js);
// scripts/check-layers.ts checks the same layers folder by folder, with cycles.
//
//   kiosk/core/                    pure: formats, rules, ports; no I/O
//   kiosk/engines/, kiosk/drive/,  adapters: implement core's ports
//     kiosk/updates/
//   kiosk/scan, approval, audit,   use cases: written against core's ports
//     review, station/
//   kiosk/cli/, kiosk/*.ts         the command line and composition: may use all
//
// manifest/ is the contract the programs import; agent/, kiosk/ and update/
// (the update publisher) never import each other.

/** Node modules and packages that do I/O: none of them in the core. */
const IO_MODULES = [
  'fs', 'node:fs', 'fs/promises', 'node:fs/promises', 'net', 'node:net', 'child_process', 'node:child_process',
  'http', 'node:http', 'https', 'node:https', 'http2', 'node:http2', 'dgram', 'node:dgram', 'tls', 'node:tls',
  'worker_threads', 'node:worker_threads', 'os', 'node:os', 'better-sqlite3', 'usb', 'drivelist', 'chokidar', 'ink', 'react',
];

const ADAPTERS = '(engines|drive|updates)';
const USE_CASES = '(scan|approval|audit|review|station)';
/** The command line and the composition root: kiosk/cli/ and the files at kiosk/'s top. */
const TOP = '(cli/|main\\.ts$|config\\.ts$|rules-files\\.ts$|demo\\.ts$)';

/** One entry of no-restricted-imports' patterns, by a regular expression over the import specifier. */
const forbid = (regex, message) => ({ regex, message });

const NOT_THE_AGENT = forbid('^(\\.\\./)+agent/', 'the kiosk and the agent meet only through manifest/: import the shared format from there');
const NOT_THE_KIOSK = forbid('^(\\.\\./)+kiosk/', 'the agent and the kiosk meet only through manifest/: import the shared format from there');
const NOT_THE_PUBLISHER = forbid('^(\\.\\./)+update/', 'the update publisher is a program of its own: the kiosk and the agent read its repositories through manifest/update-repository.ts');

/** ESLint config entries, one per layer (applied to product code, not tests). */
export const LAYER_RULES = [
  {
    files: ['kiosk/core/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: IO_MODULES.map((name) => ({ name, message: 'kiosk/core is pure: take what it needs through a port (core/ports.ts), or move the I/O to an adapter' })),
        patterns: [forbid('^\\.\\./(?!\\.\\./manifest/)', 'kiosk/core imports only itself and manifest/: move the code into core, or depend on a port'), NOT_THE_AGENT],
      }],
    },
  },
  {
    files: [`kiosk/engines/**/*.ts`, 'kiosk/drive/**/*.ts', 'kiosk/updates/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          forbid(`^(\\.\\./)+${USE_CASES}/`, 'an adapter implements core\'s ports and knows no use case: move what both need into kiosk/core'),
          forbid(`^(\\.\\./)+${TOP}`, 'an adapter does not reach up to the command line or the composition root'),
          NOT_THE_AGENT,
        ],
      }],
    },
  },
  {
    files: [`kiosk/{scan,approval,audit,review,station}/**/*.ts`],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          forbid(`^(\\.\\./)+${ADAPTERS}/`, 'a use case depends on core\'s ports, not on an adapter: let kiosk/cli or main.ts pass the adapter in'),
          forbid(`^(\\.\\./)+${TOP}`, 'a use case does not reach up to the command line or the composition root'),
          NOT_THE_AGENT,
        ],
      }],
    },
  },
  {
    files: ['kiosk/*.ts', 'kiosk/cli/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [NOT_THE_AGENT, NOT_THE_PUBLISHER, forbid('^(\\.\\./)+test/', 'the product does not import test support')] }] },
  },
  {
    files: ['agent/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [NOT_THE_KIOSK, NOT_THE_PUBLISHER, forbid('^(\\.\\./)+test/', 'the product does not import test support')] }] },
  },
  {
    files: ['update/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          forbid('^(\\.\\./)+kiosk/', 'the publisher and the kiosk meet only through manifest/update-repository.ts'),
          forbid('^(\\.\\./)+agent/', 'the publisher and the agent meet only through manifest/update-repository.ts'),
          forbid('^(\\.\\./)+test/', 'the product does not import test support'),
        ],
      }],
    },
  },
  {
    files: ['manifest/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: IO_MODULES.filter((m) => !/worker_threads/.test(m)).map((name) => ({ name, message: 'manifest/ is the contract and does no I/O: bytes, keys and the time come in as arguments' })),
        patterns: [forbid('^(\\.\\./)+(kiosk|agent|update|test)/', 'manifest/ imports none of the programs')],
      }],
    },
  },
];
