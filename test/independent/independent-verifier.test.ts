// Runs the independent Python verifier (written from docs/manifest.md alone)
// over the manifest test vectors and checks that it agrees with every one.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const here = import.meta.dirname;
const verifier = path.join(here, 'verify_manifest.py');
const vectorsDir = path.join(here, '..', 'vectors', 'manifest');
// python3 on PATH; the script re-runs itself under /usr/bin/python3 when
// PyNaCl (Debian python3-nacl) is not importable from the first interpreter.
const python = process.env['PORTCULLIS_PYTHON'] ?? 'python3';

interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

interface VectorLine {
  file: string;
  expected: string;
  got: string;
  ok: boolean;
  checked?: string;
  notChecked?: string[];
}

type DigestChoice = 'sha256' | 'blake3' | 'both';

interface VectorsFile {
  now: string;
  valid: { file: string; keyId: string; payloadDigest: string }[];
  invalid: { file: string; code: string; now?: string }[];
  fileChecks: { manifest: string; files: { subject: string; file: string; expected: Record<DigestChoice, string> }[] };
}

function isExecError(e: unknown): e is { status: number | null; stdout: string; stderr: string } {
  return typeof e === 'object' && e !== null && 'stdout' in e && 'status' in e;
}

function runVerifier(args: string[]): RunResult {
  try {
    const stdout = execFileSync(python, [verifier, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000, // ms
    });
    return { status: 0, stdout, stderr: '' };
  } catch (e: unknown) {
    if (isExecError(e)) {
      return { status: e.status ?? -1, stdout: String(e.stdout), stderr: String(e.stderr) };
    }
    throw e;
  }
}

const vectors = JSON.parse(readFileSync(path.join(vectorsDir, 'vectors.json'), 'utf8')) as VectorsFile;

describe('the independent Python manifest verifier', () => {
  const run = runVerifier(['--vectors', vectorsDir]);
  const lines = run.stdout.trimEnd().split('\n');
  const summary = lines.at(-1) ?? '';
  const results = lines.slice(0, -1).map((line) => JSON.parse(line) as VectorLine);

  it('exits with status 0 after running the vectors', () => {
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });

  it('reports a result for every vector listed in vectors.json', () => {
    const listed = [...vectors.valid.map((v) => v.file), ...vectors.invalid.map((v) => v.file), ...vectors.fileChecks.files.map((f) => f.file)];
    expect(results.map((r) => r.file)).toEqual(listed);
  });

  it('accepts every valid vector with the expected key id and payload digest', () => {
    for (const v of vectors.valid) {
      const r = results.find((x) => x.file === v.file);
      expect(r, v.file).toBeDefined();
      expect(r?.got, v.file).toBe(`VALID keyId=${v.keyId} payloadDigest=${v.payloadDigest}`);
      expect(r?.ok, v.file).toBe(true);
    }
  });

  it('refuses every invalid vector with exactly its expected code', () => {
    for (const v of vectors.invalid) {
      const r = results.find((x) => x.file === v.file);
      expect(r, v.file).toBeDefined();
      expect(r?.got, v.file).toBe(v.code);
      expect(r?.ok, v.file).toBe(true);
    }
  });

  it('marks every vector as matched', () => {
    expect(results.filter((r) => !r.ok)).toEqual([]);
  });

  it('ends with a summary line reporting 0 failed', () => {
    expect(summary).toBe(`${vectors.valid.length + vectors.invalid.length + vectors.fileChecks.files.length} passed, 0 failed`);
  });

  it('checks every file against its subject with the one digest it supports (SHA-256) and decides as the vectors expect for sha256, naming BLAKE3 as not checked', () => {
    expect(vectors.fileChecks.files.length).toBeGreaterThanOrEqual(5);
    for (const f of vectors.fileChecks.files) {
      const r = results.find((x) => x.file === f.file);
      expect(r, f.file).toMatchObject({ checked: 'sha256', notChecked: ['blake3'], expected: f.expected.sha256, got: f.expected.sha256, ok: true });
    }
  });

  it('refuses a file whose listed SHA-256 differs, and passes one whose listed BLAKE3 alone differs, with --check-file (exit 1 for any refusal)', () => {
    const manifest = path.join(vectorsDir, vectors.fileChecks.manifest);
    const key = path.join(vectorsDir, 'keys', 'alpha.pub.pem');
    const file = (name: string): string => `${name}=${path.join(vectorsDir, 'files', name)}`;
    const refused = runVerifier(['--envelope', manifest, '--key', key, '--now', vectors.now, '--check-file', file('sha256-wrong.bin'), '--check-file', file('blake3-wrong.bin')]);
    expect(refused.status).toBe(1);
    expect((JSON.parse(refused.stdout) as { files: { name: string; code: string }[] }).files.map((f) => [f.name, f.code])).toEqual([['sha256-wrong.bin', 'FILE_HASH_MISMATCH'], ['blake3-wrong.bin', 'OK']]);
    const passed = runVerifier(['--envelope', manifest, '--key', key, '--now', vectors.now, '--check-file', file('blake3-wrong.bin')]);
    expect(passed.status).toBe(0);
  });

  it('verifies a single envelope from the command line and prints its signer', () => {
    const single = runVerifier([
      '--envelope',
      path.join(vectorsDir, 'valid', 'minimal.dsse.json'),
      '--key',
      path.join(vectorsDir, 'keys', 'alpha.pub.pem'),
      '--now',
      vectors.now,
    ]);
    expect(single.status).toBe(0);
    const out = JSON.parse(single.stdout) as { valid: boolean; keyId: string; payloadDigest: string };
    const expected = vectors.valid.find((v) => v.file === 'valid/minimal.dsse.json');
    expect(out.valid).toBe(true);
    expect(out.keyId).toBe(expected?.keyId);
    expect(out.payloadDigest).toBe(expected?.payloadDigest);
  });

  it('refuses a single envelope signed by an untrusted key with exit status 1', () => {
    const single = runVerifier([
      '--envelope',
      path.join(vectorsDir, 'valid', 'minimal.dsse.json'),
      '--key',
      path.join(vectorsDir, 'keys', 'beta.pub.pem'),
      '--now',
      vectors.now,
    ]);
    expect(single.status).toBe(1);
    const out = JSON.parse(single.stdout) as { valid: boolean; code: string };
    expect(out).toMatchObject({ valid: false, code: 'KEY_UNTRUSTED' });
  });
});
