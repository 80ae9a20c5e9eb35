/**
 * CSV as RFC 4180 writes it (comma-separated, CRLF line ends, a field with a
 * quote, comma, CR or LF enclosed in double quotes and its quotes doubled),
 * plus spreadsheet formula-injection protection (OWASP "CSV Injection"): a
 * cell that starts with = + - @ TAB or CR gets a leading single quote, so
 * Excel and LibreOffice show it as text instead of evaluating it.
 */

const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]/;

/** One cell; null is the empty cell. Text is written as given: escape drive-supplied values first. */
export function csvCell(value: string | number | null): string {
  if (value === null) return '';
  let text = String(value);
  if (FORMULA_START.test(text)) text = `'${text}`;
  return NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** One record with its CRLF line end (RFC 4180 §2.1). */
export function csvRecord(cells: ReadonlyArray<string | number | null>): string {
  return `${cells.map(csvCell).join(',')}\r\n`;
}
