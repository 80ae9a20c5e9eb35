/**
 * Static checks of agent/windows/*.ps1. There is no PowerShell on the Linux
 * build machine, so these read the scripts as text: a bracket and string
 * lexer (a missing brace would otherwise surface only on an HMI), the
 * "$name:" trap in expandable strings, and the facts the scripts share with
 * the agent (policy key, record name, the configuration install.ps1 writes).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { STORAGE_POLICY_KEY, STORAGE_POLICY_VALUE } from '../storage-policy.ts';
import type { OperatorState } from '../operator-status.ts';
import { loadWatchConfig } from '../watch-config.ts';
import { tempDir } from '../../test/support/agent-fixtures.ts';

const DIR = join(import.meta.dirname, '.');
const install = readFileSync(join(DIR, 'install.ps1'), 'utf8');
const uninstall = readFileSync(join(DIR, 'uninstall.ps1'), 'utf8');
const statusTray = readFileSync(join(DIR, 'status-tray.ps1'), 'utf8');

const CLOSER: Record<string, string> = { '(': ')', '{': '}', '[': ']' };
const lineAt = (src: string, index: number): number => src.slice(0, index).split('\n').length;

/**
 * Problems a PowerShell parser would report first: unbalanced brackets in
 * code, unterminated strings and comments, and "$name:" in an expandable
 * string ("Variable reference is not valid"). Comments and string text are
 * skipped; code inside "$( )" is checked like any other code.
 */
function scriptProblems(src: string): string[] {
  const problems: string[] = [];
  const brackets: Array<{ ch: string; at: number; sub: boolean }> = [];
  const modes: Array<'code' | 'dq' | 'here'> = ['code'];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    const mode = modes.at(-1)!;
    if (mode === 'code') {
      if (src.startsWith('<#', i)) {
        const end = src.indexOf('#>', i + 2);
        if (end < 0) return [...problems, `line ${lineAt(src, i)}: block comment never closed`];
        i = end + 2;
      } else if (c === '#') {
        const end = src.indexOf('\n', i);
        i = end < 0 ? src.length : end;
      } else if (/^@'\r?\n/u.test(src.slice(i, i + 4))) {
        const end = src.indexOf("\n'@", i);
        if (end < 0) return [...problems, `line ${lineAt(src, i)}: here-string never closed`];
        i = end + 3;
      } else if (/^@"\r?\n/u.test(src.slice(i, i + 4))) {
        modes.push('here');
        i += 2;
      } else if (c === "'") {
        const end = src.indexOf("'", i + 1);
        if (end < 0) return [...problems, `line ${lineAt(src, i)}: string never closed`];
        i = end + 1;
      } else if (c === '"') {
        modes.push('dq');
        i++;
      } else if (c === '`') {
        i += 2;
      } else if (c in CLOSER) {
        brackets.push({ ch: c, at: i, sub: false });
        i++;
      } else if (c === ')' || c === '}' || c === ']') {
        const open = brackets.pop();
        if (!open || CLOSER[open.ch] !== c) return [...problems, `line ${lineAt(src, i)}: ${c} closes ${open ? `${open.ch} from line ${lineAt(src, open.at)}` : 'nothing'}`];
        if (open.sub) modes.pop();
        i++;
      } else {
        i++;
      }
      continue;
    }
    // Inside an expandable string or here-string.
    if (c === '`') {
      i += 2;
    } else if (mode === 'dq' && c === '"') {
      modes.pop();
      i++;
    } else if (mode === 'here' && c === '\n' && src.startsWith('"@', i + 1)) {
      modes.pop();
      i += 3;
    } else if (src.startsWith('$(', i)) {
      brackets.push({ ch: '(', at: i + 1, sub: true });
      modes.push('code');
      i += 2;
    } else {
      const trap = /^\$(?!(?:env|script|global|local|private|using):)([A-Za-z_]\w*):(?![\w:])/u.exec(src.slice(i, i + 80));
      if (trap) problems.push(`line ${lineAt(src, i)}: "$${trap[1]}:" in an expandable string is not a valid variable reference: write \${${trap[1]}}:`);
      i++;
    }
  }
  if (modes.length > 1) problems.push('a string never closed');
  for (const open of brackets) problems.push(`line ${lineAt(src, open.at)}: ${open.ch} never closed`);
  return problems;
}

describe('the PowerShell lexer used below', () => {
  it('finds what it is there to find', () => {
    expect(scriptProblems('if ($a) { Write-Host "x" }\n')).toEqual([]);
    expect(scriptProblems('if ($a) { Write-Host "x"\n')).toEqual(['line 1: { never closed']);
    expect(scriptProblems('Write-Host "$(Get-Date) { not code"\n')).toEqual([]);
    expect(scriptProblems('Write-Host "$(Get-Date"\n')).not.toEqual([]);
    expect(scriptProblems("# } in a comment\n$x = '}' # and '{'\n")).toEqual([]);
    expect(scriptProblems('throw "$path: gone"\n')[0]).toContain('"$path:"');
    expect(scriptProblems('throw "${path}: gone $env:TEMP"\n')).toEqual([]);
  });
});

describe('install.ps1 and uninstall.ps1', () => {
  it.each([
    ['install.ps1', install],
    ['uninstall.ps1', uninstall],
    ['status-tray.ps1', statusTray],
  ])('%s has balanced brackets, closed strings and no "$name:" trap', (_name, src) => {
    expect(scriptProblems(src)).toEqual([]);
  });

  it.each([
    ['install.ps1', install],
    ['uninstall.ps1', uninstall],
  ])('%s runs unattended: ConfirmImpact Medium, and -Force turns prompts off unless -Confirm is given', (_name, src) => {
    expect(src).toMatch(/\[CmdletBinding\(SupportsShouldProcess = \$true, ConfirmImpact = 'Medium'\)\]/u);
    expect(src).not.toMatch(/ConfirmImpact\s*=\s*'High'/u);
    expect(src).toMatch(/\[switch\] \$Force\r?\n\)/u);
    expect(src).toContain("if ($Force -and -not $PSBoundParameters.ContainsKey('Confirm')) { $ConfirmPreference = 'None' }");
  });

  it('install.ps1 requires the agent exe hash and checks it before the copy and on the installed copy', () => {
    expect(install).toMatch(/\[Parameter\(Mandatory = \$true\)\] \[ValidatePattern\('\^\[0-9A-Fa-f\]\{64\}\$'\)\] \[string\] \$AgentExeSha256/u);
    const before = install.indexOf('Assert-Sha256 $AgentExe $AgentExeSha256');
    const copy = install.indexOf('Copy-Item -LiteralPath $AgentExe');
    const after = install.indexOf('Assert-Sha256 $agentTarget $AgentExeSha256');
    expect(before).toBeGreaterThan(0);
    expect(before).toBeLessThan(copy);
    expect(after).toBeGreaterThan(copy);
    expect(install).toContain('Assert-SignatureIfSigned $AgentExe');
  });

  it('install.ps1 stops the service only in the branch where something it runs changed', () => {
    const stops = [...install.matchAll(/Stop-Service/gu)].map((m) => m.index);
    expect(stops).toHaveLength(1);
    const branch = install.lastIndexOf('elseif ($PSCmdlet.ShouldProcess($ServiceName, "Stop service to upgrade', stops[0]);
    expect(branch).toBeGreaterThan(install.lastIndexOf('if ($changes.Count -eq 0)', stops[0]));
  });

  it('both scripts name the policy key the agent checks and the same policy record', () => {
    const agentKey = STORAGE_POLICY_KEY.replace(/^HKLM\\/u, 'HKLM:\\').toLowerCase();
    for (const src of [install, uninstall]) {
      const key = /\$StoragePolicyKey = '([^']+)'/u.exec(src)?.[1];
      expect(key?.toLowerCase()).toBe(agentKey);
      expect(src).toContain(`Name = '${STORAGE_POLICY_VALUE}'`);
      expect(src).toContain("Name = 'NoDriveTypeAutoRun'");
      expect(src).toContain('policy-before-install.json');
    }
  });

  it('install.ps1 writes a configuration that the agent accepts', () => {
    const block = /\$config = \[ordered\]@\{([\s\S]*?)\n\s*\}/u.exec(install)?.[1];
    expect(block).toBeDefined();
    const config: Record<string, unknown> = {};
    for (const line of block!.split('\n')) {
      if (line.trim().startsWith('#')) continue;
      for (const pair of line.split(';')) {
        const m = /^\s*(\w+) = (.+?)\s*$/u.exec(pair);
        if (!m) continue;
        const [, key, raw] = m as unknown as [string, string, string];
        const literal: Record<string, unknown> = { $null: null, $true: true, $false: false, $Destination: 'C:\\Portcullis\\Inbox', $StatusFolder: 'C:\\Portcullis\\Status' };
        config[key] = raw in literal ? literal[raw] : /^\d+$/u.test(raw) ? Number(raw) : /^'(.*)'$/u.exec(raw)?.[1] ?? `unparsed ${raw}`;
      }
    }
    const path = join(tempDir('cfg'), 'config.json');
    writeFileSync(path, JSON.stringify(config));
    const loaded = loadWatchConfig(path);
    expect(loaded).toMatchObject({ source: 'auto', notify: 'auto', requireStoragePolicy: true });
    expect(loaded.statusFolder).toMatch(/Portcullis\\Status$/u); // resolved beside the config on Linux; absolute on Windows
  });
});

describe('status-tray.ps1 (the per-user helper)', () => {
  it('reads the status the service writes (the same folder, file and states) and only reads it', () => {
    expect(statusTray).toContain("[string] $StatusFolder = 'C:\\Portcullis\\Status'");
    expect(statusTray).toContain("Join-Path $StatusFolder 'status.json'");
    expect(statusTray).toContain("Join-Path $StatusFolder 'latest.txt'");
    const states = [...statusTray.matchAll(/^\s+'(\w+)' \{ '(?:Info|Warning|Error)' \}$/gmu)].map((m) => m[1]);
    const written: OperatorState[] = ['checking', 'done', 'partial', 'refused', 'error'];
    expect(states).toEqual(written);
    expect(statusTray).not.toMatch(/Set-Content|Out-File|Remove-Item|New-Item|Invoke-Expression|\biex\b/iu);
  });
});
