/**
 * Prints every station screen as text (Markdown code blocks), the captures in
 * docs/station.md: `node kiosk/station/capture-screens.ts`. The states are
 * built with the real reducer, the refusal with the real device check.
 */
import { renderToString } from 'ink';
import React from 'react';
import { readFileSync } from 'node:fs';
import { checkDevice, describeDevice, OPEN_DEVICE_POLICY } from '../../kiosk/core/device.ts';
import { recordFromRecorded } from '../../kiosk/drive/device-record.ts';
import { initialState, reduce, type EngineStatus, type StationDrive, type StationEvent, type StationState } from '../../kiosk/core/station-state.ts';
import { StationView } from '../../kiosk/station/ui.ts';
const NOW = new Date('2026-11-23T12:00:00Z');
const engines: EngineStatus = { clamavDatabase: 'ClamAV 1.4.6, database 27301', clamavDatabaseTime: '2026-11-21T08:12:00Z', ruleSet: 'sha256:c42dbfaa5ca4... (14 rules)', note: null };
const show = (title: string, s: StationState): void => console.log(`### ${title}\n\n\`\`\`text\n${renderToString(React.createElement(StationView, { state: s, now: NOW, timeZone: 'Europe/Berlin' }), { columns: 80 })}\n\`\`\`\n`);
const run = (s: StationState, ...e: StationEvent[]): StationState => e.reduce(reduce, s);
const drive: StationDrive = { id: 'a', label: '0781:5567 SanDisk Cruzer Blade (serial 4C530001230517115272)', refusal: null };
const idle = initialState(engines, false);
show('Idle', idle);
show('Operator identification (policy `operator.required: true`)', run(initialState(engines, true), { type: 'inserted', drive }, { type: 'key', key: { input: 'T-1042' } }));
const base = { filesTotal: 1250, bytesTotal: 3_400_000_000 };
show('Scanning', run(idle, { type: 'inserted', drive },
  { type: 'progress', id: 'a', at: 0, progress: { ...base, phase: 'scanning', filesDone: 0, bytesDone: 0, current: null } },
  { type: 'progress', id: 'a', at: 40_000, progress: { ...base, phase: 'scanning', filesDone: 412, bytesDone: 1_300_000_000, current: 'projects/Line3/HMI/screens/overview.pdl' } }));
show('Scanning a file with a hostile name (ESC sequences, CR, right-to-left override)', run(idle, { type: 'inserted', drive },
  { type: 'progress', id: 'a', at: 0, progress: { ...base, phase: 'scanning', filesDone: 3, bytesDone: 1000, current: 'evil\u001b[2J\u001b[H\u001b[31mred\r\u202egpj.exe' } }));
const kb = recordFromRecorded(JSON.parse(readFileSync(new URL('../fixtures/devices/keyboard-stick.json', import.meta.url), 'utf8')) as unknown, 'kbd');
const c = checkDevice(kb, OPEN_DEVICE_POLICY);
show('Refused: a keyboard-in-a-stick (fixtures/keyboard-stick.json)', run(idle, { type: 'inserted', drive: { id: 'k', label: describeDevice(kb), refusal: c.ok ? null : { code: c.code, message: c.message } } }));
show('Drive pulled out mid-scan', run(idle, { type: 'inserted', drive }, { type: 'removed', id: 'a' }));
show('Engine failure', run(idle, { type: 'inserted', drive }, { type: 'finished', id: 'a', result: { verdict: 'rejected', engineFailure: { code: 'SCANNER_UNAVAILABLE', detail: 'clamd closed the connection' }, driveReasons: [{ code: 'SCANNER_UNAVAILABLE', detail: 'clamd closed the connection' }], blocked: [], blockedCount: 0, passing: 0, total: 7, expiresAt: null, signed: false, scanId: null, operatorId: null } }));
show('Approved, with a second drive waiting', run(idle, { type: 'inserted', drive }, { type: 'inserted', drive: { id: 'b', label: 'x', refusal: null } }, { type: 'finished', id: 'a', result: { verdict: 'approved', engineFailure: null, driveReasons: [], blocked: [], blockedCount: 0, passing: 12, total: 12, expiresAt: '2026-11-24T00:00:00Z', signed: true, scanId: '5b0c7e52-9d3a-4f61-8e2b-1a7c4d9f3e08', operatorId: 'T-1042' } }));
show('Rejected', run(idle, { type: 'inserted', drive }, { type: 'finished', id: 'a', result: { verdict: 'rejected', engineFailure: null, driveReasons: [{ code: 'NO_FILES', detail: 'no file on the drive may pass' }], blocked: [{ display: 'setup.exe', codes: ['NOT_ALLOWLISTED'] }, { display: 'autorun.inf', codes: ['RISKY_TYPE'] }], blockedCount: 2, passing: 0, total: 2, expiresAt: null, signed: false, scanId: '9e41d2c8-3b7f-4a05-b6d1-2c8e5f0a7b94', operatorId: 'T-1042' } }));
const starting = initialState(engines, false, { state: 'checking', step: 'the scan engines: loading the signatures, proving every rule live' });
show('Starting: the self-check before the first drive', run(starting, { type: 'inserted', drive }));
const outdated = { code: 'SIGNATURES_OUTDATED', what: 'the ClamAV signatures are 9 days old; the site\'s policy allows 7 days', fix: 'import a signed update from the update drive: portcullis-kiosk update import PATH (docs/updates.md)' };
const oldEngines: EngineStatus = { ...engines, clamavDatabaseTime: '2026-11-14T08:12:00Z' };
show('Out of service: signatures older than the policy allows, a drive plugged in', run(initialState(oldEngines, false, { state: 'out-of-service', problems: [outdated], warnings: [] }), { type: 'inserted', drive }));
show('Out of service: a key that cannot be used and a full disk', initialState(engines, false, { state: 'out-of-service', problems: [
  { code: 'KEY_PERMISSIONS', what: 'the signing key cannot be used: /etc/portcullis/keys/kiosk.key is readable by group or others (mode 644); run chmod 600 on it', fix: 'restore the kiosk\'s key file (mode 0600), or make a new key (portcullis-kiosk keygen) and add it to every HMI' },
  { code: 'STATION_DISK_FULL', what: 'only 12 MiB free for the work folder (/run/portcullis/work); the station needs 256 MiB', fix: 'free space on that disk' },
], warnings: [] }));
show('Ready, with a warning (policy `signatures.whenOutdated: "warn"`)', initialState(oldEngines, false, { state: 'ready', warnings: [outdated] }));

