import { describe, expect, it } from 'vitest';
import { classifyTarget, parseClamavHeader, targetSetProblems } from './update-repository.ts';

const header = (text: string): Uint8Array => new TextEncoder().encode(text.padEnd(512, ' '));

describe('the update repository layout', () => {
  it('knows each part by its target path, and nothing else', () => {
    expect(classifyTarget('clamav/daily.cld')).toMatchObject({ kind: 'clamav', database: 'daily', container: 'cld', file: 'daily.cld' });
    expect(classifyTarget('yara/site-rules.yar')).toMatchObject({ kind: 'yara', file: 'site-rules.yar' });
    expect(classifyTarget('allowlist/vendor.json')).toMatchObject({ kind: 'allowlist' });
    expect(classifyTarget('policy/policy.json')).toMatchObject({ kind: 'policy' });
    expect(classifyTarget('hmi/trust.json')).toMatchObject({ kind: 'hmi-trust' });
    for (const bad of ['clamav/safebrowsing.cvd', 'clamav/main.hdb', 'clamav/../main.cvd', 'yara/rules.yara', 'yara/Rules.yar', 'yara/.hidden.yar', 'policy/other.json', 'hmi/keys.pem', 'tools/update.sh', 'main.cvd', 'clamav/sub/main.cvd', '']) {
      expect(classifyTarget(bad), bad).toBeNull();
    }
    expect(targetSetProblems(['clamav/main.cvd', 'clamav/daily.cld', 'yara/a.yar'])).toEqual([]);
    expect(targetSetProblems(['clamav/main.cvd', 'clamav/main.cld'])).toEqual(['the ClamAV database main is there twice (clamav/main.cvd and clamav/main.cld): keep one']);
    expect(targetSetProblems(['tools/x'])[0]).toMatch(/not a target this format knows/);
  });

  it('reads ClamAV\'s container header, and names what is wrong with one that is not', () => {
    const parsed = parseClamavHeader(header('ClamAV-VDB:08 Dec 2026 00-14 +0000:27301:2:216:259d98f165fd3b9ba9326c153abd78fa:X:portcullis:1796688847'));
    expect(parsed).toEqual({ ok: true, header: { version: 27_301, builtAt: new Date(1_796_688_847_000), signatures: 2, functionalityLevel: 216, builder: 'portcullis', signed: false } });
    const signed = parseClamavHeader(header('ClamAV-VDB:16 Sep 2021 08-32 -0400:62:6647427:90:7ea62d1e1b4ee3e5fb8db2d1b4ef3ecb:AbCdEf:sigmgr:1631795529'));
    expect(signed.ok && signed.header.signed).toBe(true);
    expect(parseClamavHeader(new Uint8Array(100))).toMatchObject({ ok: false, reason: /shorter than/ });
    expect(parseClamavHeader(header('PK\u0003\u0004 not a database'))).toMatchObject({ ok: false, reason: /no "ClamAV-VDB:" header/ });
    expect(parseClamavHeader(header('ClamAV-VDB:x:0:2:216:md5:X:b:1'))).toMatchObject({ ok: false, reason: /version/ });
    expect(parseClamavHeader(header('ClamAV-VDB:x:5:2:216:md5:X:b:soon'))).toMatchObject({ ok: false, reason: /build time/ });
    expect(parseClamavHeader(header('ClamAV-VDB:x:5:2'))).toMatchObject({ ok: false, reason: /fields/ });
  });
});
