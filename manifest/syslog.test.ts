import { describe, expect, it } from 'vitest';
import { checkKioskRecord, kioskRecordBytes, recordHash } from './audit-record.ts';
import { agentMessageId, formatSyslog, formatSyslogRecord, frameOctetCounting, OctetFrameReader, parseSyslog } from './syslog.ts';

describe('RFC 5424 parsing', () => {
  it('reads back what formatSyslog writes, escapes included', () => {
    const line = formatSyslog({ time: '2025-03-01T08:00:01.000Z', hostname: 'gate-1', appName: 'portcullis-kiosk', msgId: 'FILE_BLOCKED', severity: 4,
      params: { seq: 7, path: 'a"b\\c]d' }, text: 'blocked' });
    const parsed = parseSyslog(Buffer.from(line));
    if (typeof parsed === 'string') throw new Error(parsed);
    expect(parsed).toMatchObject({ facility: 13, severity: 4, hostname: 'gate-1', appName: 'portcullis-kiosk', msgId: 'FILE_BLOCKED' });
    expect(parsed.sd.get('portcullis@32473')).toEqual({ seq: '7', path: 'a"b\\c]d' });
    expect(parsed.body.toString()).toBe('blocked');
  });

  it('keeps a record body byte for byte, bidi characters included', () => {
    const body = Buffer.from('{"x":"\u202egpj.exe"}');
    const parsed = parseSyslog(formatSyslogRecord({ time: '2025-03-01T08:00:01.000Z', hostname: 'h', appName: 'a', msgId: 'M', severity: 6, params: { seq: 1 } }, body));
    expect(typeof parsed !== 'string' && parsed.body.equals(body)).toBe(true);
  });

  it.each([
    ['', 'not an RFC 5424'],
    ['<999>1 2025-03-01T08:00:01Z h a - M - x', 'not an RFC 5424'],
    ['<14>1 yesterday h a - M - x', 'TIMESTAMP'],
    ['<14>1 2025-03-01T08:00:01Z h a - M [x@1 a="1"][x@1 b="2"] m', 'given twice'],
    ['<14>1 2025-03-01T08:00:01Z h a - M [x@1 a="1" a="2"] m', 'given twice'],
    ['<14>1 2025-03-01T08:00:01Z h a - M [x@1 a="1 m', 'not closed'],
    ['<14>1 2025-03-01T08:00:01Z h a - M [x@1 a=1] m', 'quoted'],
  ])('refuses %j (%s)', (text, why) => {
    const parsed = parseSyslog(Buffer.from(text));
    expect(typeof parsed).toBe('string');
    expect(parsed).toContain(why);
  });
});

describe('octet-counted frames', () => {
  it('splits a stream cut at every byte into the same frames', () => {
    const stream = Buffer.concat([frameOctetCounting('<14>1 é'), frameOctetCounting('second'), frameOctetCounting(Buffer.from([0, 1, 2]))]);
    const reader = new OctetFrameReader();
    const frames = [...stream].flatMap((b) => reader.push(Buffer.from([b])));
    expect(frames.map((f) => f.toString('latin1'))).toEqual([Buffer.from('<14>1 é').toString('latin1'), 'second', '\u0000\u0001\u0002']);
    expect(reader.pendingBytes).toBe(0);
  });

  it('names a length that is not one, and a frame over the limit, and stops there', () => {
    const bad = new OctetFrameReader();
    expect(bad.push(Buffer.from('<14>1 plain newline framing\n'))).toEqual([]);
    expect(bad.failed?.code).toBe('FRAME_INVALID');
    const big = new OctetFrameReader(100);
    expect(big.push(Buffer.from('5 hello101 '))).toHaveLength(1);
    expect(big.failed?.code).toBe('FRAME_OVERSIZED');
    expect(big.push(frameOctetCounting('later'))).toEqual([]);
    const leading = new OctetFrameReader();
    leading.push(Buffer.from('05 hello'));
    expect(leading.failed?.code).toBe('FRAME_INVALID');
  });
});

describe('agent message ids', () => {
  it('say what happened: a trust change is not an import refusal', () => {
    expect(agentMessageId({ event: 'trust.key-revoked', outcome: 'changed' })).toBe('TRUST_CHANGED');
    expect(agentMessageId({ event: 'trust.updated', outcome: 'changed' })).toBe('TRUST_CHANGED');
    expect(agentMessageId({ event: 'file.refused', outcome: 'refused' })).toBe('IMPORT_REFUSED');
    expect(agentMessageId({ event: 'drive.checked', outcome: 'refused' })).toBe('DRIVE_REFUSED');
    expect(agentMessageId({ event: 'drive.checked', outcome: 'allowed' })).toBe('DRIVE_CHECKED');
    expect(agentMessageId({ event: 'agent.storage-policy', outcome: 'failed' })).toBe('STORAGE_POLICY');
    expect(agentMessageId({ event: 'something.new', outcome: 'info' })).toBe('AGENT_EVENT');
  });
});

describe('kiosk records on the wire', () => {
  const row = { recorded_at: '2025-03-01T08:00:01.000Z', type: 'SCHEMA_MIGRATED', scan_id: null, data: '{"version":1}' };
  const hash = recordHash('events', 1, '0'.repeat(64), row);

  it('checks a record: its columns, its canonical bytes and its hash', () => {
    const check = checkKioskRecord(kioskRecordBytes('events', 1, '0'.repeat(64), hash, row));
    expect(check.ok && check.record.row).toEqual(row);
  });

  it('names an edited record, an unknown column and a non-canonical spelling', () => {
    const edited = checkKioskRecord(kioskRecordBytes('events', 1, '0'.repeat(64), hash, { ...row, type: 'KEY_GENERATED' }));
    expect(edited).toMatchObject({ ok: false, code: 'EDITED', seq: 1 });
    const extra = checkKioskRecord(kioskRecordBytes('events', 1, '0'.repeat(64), hash, { ...row, evil: 'x' }));
    expect(extra).toMatchObject({ ok: false, code: 'MALFORMED' });
    const spaced = Buffer.from(kioskRecordBytes('events', 1, '0'.repeat(64), hash, row).toString().replace('{', '{ '));
    expect(checkKioskRecord(spaced)).toMatchObject({ ok: false, code: 'MALFORMED' });
    expect(checkKioskRecord(Buffer.from('{"table":"sqlite_master","seq":1,"prev":"","hash":"","row":{}}'))).toMatchObject({ ok: false, code: 'MALFORMED' });
  });
});
