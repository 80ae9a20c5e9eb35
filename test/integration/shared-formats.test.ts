/**
 * The two programs meet only through shared formats in manifest/: each
 * uses the contract's own functions, not a copy that could drift.
 */
import { describe, expect, it } from 'vitest';
import * as agentLog from '../../agent/audit-log.ts';
import * as kioskCsv from '../../kiosk/audit/csv.ts';
import * as contract from '../../manifest/agent-log.ts';
import { csvCell } from '../../manifest/csv.ts';

describe('formats shared by the kiosk and the agent', () => {
  it('has one CSV cell writer for both programs', () => {
    expect(agentLog.csvCell).toBe(csvCell);
    expect(kioskCsv.csvCell).toBe(csvCell);
  });

  it('has one agent log format: the agent writes and checks what the review imports', () => {
    expect(agentLog.verifyLogBytes).toBe(contract.verifyLogBytes);
    expect(agentLog.hashedRecordText).toBe(contract.hashedRecordText);
    expect(agentLog.recordSchema).toBe(contract.recordSchema);
  });
});
