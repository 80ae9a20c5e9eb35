import { describe, expect, it } from 'vitest';
import { csvCell, csvRecord } from './csv.ts';

/** Splits one CSV line the way a spreadsheet set to `separator` does when it ignores quotes that do not open a field. */
function naiveCells(line: string, separator: string): string[] {
  return line.split(/\r\n|\r|\n/).flatMap((l) => l.split(separator)).map((c) => (c.startsWith('"') ? c.slice(1) : c));
}
const FORMULA = /^[ ]*[=+\-@\t\r\n\uff1d\uff0b\uff0d\uff20]/u;

describe('CSV cells', () => {
  it('leaves plain text and numbers as they are', () => {
    expect(csvCell('firmware/plc.bin')).toBe('firmware/plc.bin');
    expect(csvCell(1234)).toBe('1234');
    expect(csvCell(-5)).toBe('-5');
    expect(csvCell(null)).toBe('');
    expect(csvCell('')).toBe('');
  });

  it('quotes a cell holding a comma, a semicolon, a tab, a quote, CR or LF and doubles its quotes (RFC 4180)', () => {
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('a;b')).toBe('"a;b"');
    expect(csvCell('a\tb')).toBe('"a\tb"');
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell('two\nlines')).toBe('"two\nlines"');
    expect(csvCell('cr\rhere')).toBe('"cr\rhere"');
  });

  it('puts a single quote before a cell a spreadsheet would read as a formula', () => {
    expect(csvCell('=1+1')).toBe("'=1+1");
    expect(csvCell('+SUM(A1:A9)')).toBe("'+SUM(A1:A9)");
    expect(csvCell('-2+3')).toBe("'-2+3");
    expect(csvCell('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvCell(' =1+1')).toBe("' =1+1");
    expect(csvCell('\uff1d1+1')).toBe("'\uff1d1+1");
    expect(csvCell('=HYPERLINK("http://evil","x")')).toBe('"\'=HYPERLINK(""http://evil"",""x"")"');
    expect(csvCell('a=1')).toBe('a=1');
  });

  it("puts a single quote before a formula that starts after a separator inside the cell, where a ';' or tab locale starts a cell", () => {
    expect(csvCell('x;=1+1')).toBe('"x;\'=1+1"');
    expect(csvCell('x,@SUM(A1)')).toBe('"x,\'@SUM(A1)"');
    expect(csvCell('x;"=1+1"')).toBe('"x;\'""=1+1"""');
    expect(csvCell('\t=1')).toBe('"\'\t\'=1"');
    expect(csvCell('\r=1')).toBe('"\'\r\'=1"');
    expect(csvCell('a - b; c')).toBe('"a - b; c"');
  });

  it('leaves no cell starting with a formula character however a spreadsheet splits the line', () => {
    const hostile = ['x;=1+1', 'a;b;=cmd|\' /C calc\'!A0;c', 'x\t+1', 'x,-1+2', 'x;"=1"', 'x; @A1', 'x\n=1', 'x;\uff1d1', '=;=,=\t='];
    const line = csvRecord(['scan-1', ...hostile, 7]);
    for (const separator of [',', ';', '\t']) {
      expect(naiveCells(line, separator).filter((cell) => FORMULA.test(cell))).toEqual([]);
    }
  });

  it('ends every record with CRLF', () => {
    expect(csvRecord(['a', 1, null, '=x'])).toBe("a,1,,'=x\r\n");
  });
});
