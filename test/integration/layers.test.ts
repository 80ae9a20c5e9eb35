/**
 * The layer rules must fail on a planted violation: ESLint's per-file rules
 * (scripts/layers.js, run by `npm run lint`) and the folder graph check
 * (scripts/check-layers.ts, run by `npm run layers`), each on code written
 * here, and the real tree passing both.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { afterAll, describe, expect, it } from 'vitest';
import { checkLayers } from '../../scripts/check-layers.ts';
import { LAYER_RULES } from '../../scripts/layers.js';

const ROOT = join(import.meta.dirname, '../..');
const work = mkdtempSync(join(tmpdir(), 'portcullis-layers-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const eslint = new ESLint({
  cwd: ROOT,
  overrideConfigFile: true,
  overrideConfig: [{ files: ['**/*.ts'], languageOptions: { parser: tseslint.parser } }, ...LAYER_RULES],
});

/** The layer rules' messages for `code` as if it were the file at `path`. */
async function lint(path: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: join(ROOT, path) });
  return result!.messages.map((m) => `${m.ruleId ?? 'parse'}: ${m.message}`);
}

describe('the layer rules, file by file', () => {
  it('refuses I/O and imports out of the pure core', async () => {
    expect(await lint('kiosk/core/planted.ts', "import { readFileSync } from 'node:fs';\n")).toHaveLength(1);
    expect(await lint('kiosk/core/planted.ts', "import Database from 'better-sqlite3';\n")).toHaveLength(1);
    expect(await lint('kiosk/core/planted.ts', "import { scanDrive } from '../scan/scan-session.ts';\n")).toHaveLength(1);
    expect(await lint('kiosk/core/planted.ts', "import { createExtractor } from '../engines/extractor.ts';\n")).toHaveLength(1);
    expect(await lint('kiosk/core/planted.ts', "import { canonicalize } from '../../manifest/index.ts';\nimport { decideFile } from './decide.ts';\n")).toEqual([]);
  });

  it('keeps use cases off adapters and the command line, and adapters off use cases', async () => {
    expect(await lint('kiosk/scan/planted.ts', "import { createExtractor } from '../engines/extractor.ts';\n")).toHaveLength(1);
    expect(await lint('kiosk/station/planted.ts', "import { runScan } from '../cli/scan-command.ts';\n")).toHaveLength(1);
    expect(await lint('kiosk/approval/planted.ts', "import { KIOSK_DEFAULTS } from '../config.ts';\n")).toHaveLength(1);
    expect(await lint('kiosk/engines/yara/planted.ts', "import { scanDrive } from '../../scan/scan-session.ts';\n")).toHaveLength(1);
    expect(await lint('kiosk/drive/planted.ts', "import { main } from '../main.ts';\n")).toHaveLength(1);
    expect(await lint('kiosk/scan/planted.ts', "import type { StreamScanner } from '../core/ports.ts';\nimport { openAuditStore } from '../audit/store.ts';\n")).toEqual([]);
    expect(await lint('kiosk/engines/yara/planted.ts', "import { runTool } from '../run-tool.ts';\n")).toEqual([]);
  });

  it('keeps the two programs apart, and the contract free of them and of I/O', async () => {
    expect(await lint('kiosk/review/planted.ts', "import { verifyLogBytes } from '../../agent/audit-log.ts';\n")).toHaveLength(1);
    expect(await lint('kiosk/cli/planted.ts', "import { main } from '../../agent/main.ts';\n")).toHaveLength(1);
    expect(await lint('agent/planted.ts', "import { decideFile } from '../kiosk/core/decide.ts';\n")).toHaveLength(1);
    expect(await lint('manifest/planted.ts', "import { readFile } from 'node:fs/promises';\n")).toHaveLength(1);
    expect(await lint('kiosk/main.ts', "import { buildDriveImage } from '../test/support/image-builder.ts';\n")).toHaveLength(1);
  });

  it('keeps the update publisher a program of its own, and the kiosk\'s update adapters off use cases', async () => {
    expect(await lint('update/planted.ts', "import { parsePolicy } from '../kiosk/core/policy.ts';\n")).toHaveLength(1);
    expect(await lint('update/planted.ts', "import { loadTrustStore } from '../agent/trust-store.ts';\n")).toHaveLength(1);
    expect(await lint('kiosk/cli/planted.ts', "import { buildRepository } from '../../update/repository.ts';\n")).toHaveLength(1);
    expect(await lint('agent/planted.ts', "import { buildRepository } from '../update/repository.ts';\n")).toHaveLength(1);
    expect(await lint('manifest/planted.ts', "import { buildRepository } from '../update/repository.ts';\n")).toHaveLength(1);
    expect(await lint('kiosk/updates/planted.ts', "import { runStation } from '../cli/run-command.ts';\n")).toHaveLength(1);
    expect(await lint('update/planted.ts', "import { classifyTarget } from '../manifest/update-repository.ts';\n")).toEqual([]);
    expect(await lint('kiosk/cli/planted.ts', "import { verifyRepository } from '../updates/tuf-folder.ts';\n")).toEqual([]);
  });
});

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(work, 'tree-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, dirname(path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

describe('the folder graph', () => {
  it('finds a cycle between folders, naming an import on each side', () => {
    const { problems } = checkLayers(tree({
      'kiosk/scan/a.ts': "import { b } from '../audit/b.ts';\nexport const a = 1;\n",
      'kiosk/audit/b.ts': "import { a } from '../scan/a.ts';\nexport const b = 2;\n",
      'kiosk/core/c.ts': 'export const c = 3;\n',
    }));
    expect(problems.map((p) => p.kind)).toEqual(['cycle']);
    expect(problems[0]!.detail).toContain('kiosk/audit/b.ts -> kiosk/scan/a.ts');
  });

  it('finds an import between the programs, and none in a clean tree', () => {
    const mixed = checkLayers(tree({ 'kiosk/cli/x.ts': "import { y } from '../../agent/y.ts';\n", 'agent/y.ts': 'export const y = 1;\n' }));
    expect(mixed.problems.map((p) => p.kind)).toEqual(['between-programs']);
    const publisher = checkLayers(tree({ 'update/x.ts': "import { y } from '../kiosk/core/y.ts';\n", 'kiosk/core/y.ts': 'export const y = 1;\n' }));
    expect(publisher.problems.map((p) => p.kind)).toEqual(['between-programs']);
    const clean = checkLayers(tree({ 'kiosk/scan/a.ts': "import { c } from '../core/c.ts';\n", 'kiosk/core/c.ts': "import { m } from '../../manifest/m.ts';\n", 'manifest/m.ts': 'export const m = 1;\n' }));
    expect(clean.problems).toEqual([]);
  });

  it('holds for the project itself', () => {
    expect(checkLayers(ROOT).problems).toEqual([]);
  });
});
