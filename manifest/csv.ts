/**
 * One CSV cell writer for both programs' exports: RFC 4180 (comma-separated,
 * CRLF line ends, a field with a quote, comma, CR or LF enclosed in double
 * quotes and its quotes doubled), plus spreadsheet formula-injection
 * protection (OWASP "CSV Injection"). Exported values come from drives and
 * HMIs and are attacker-chosen.
 *
 * A spreadsheet runs a cell as a formula when it starts with = + - @ (or
 * their full-width forms), possibly after spaces, a tab or a line break.
 * Such a cell gets a leading single quote, which Excel and LibreOffice take
 * as "text". Where a cell starts depends on the reader: a `;` locale splits
 * at every `;`, a tab-separated import at every tab, and a reader that
 * honours only quotes opening a field splits a quoted cell at its inner
 * commas and line breaks. So the quote also goes after every `,` `;` tab, CR
 * and LF inside a cell that a formula character follows (`x;=1+1` is written
 * `"x;'=1+1"`), and cells holding `;` or a tab are quoted as well as those
 * RFC 4180 names. Numbers are written as they are.
 */

/** At the start of a cell, or after a separator inside it: spaces and quotes, then a character that starts a formula. */
const FORMULA_AT_START = /^[ "]*[=+\-@\t\r\n\uff1d\uff0b\uff0d\uff20]/u;
const FORMULA_AFTER_SEPARATOR = /([,;\t\r\n])(?=[ "]*[=+\-@\t\r\n\uff1d\uff0b\uff0d\uff20])/gu;
const NEEDS_QUOTES = /[",;\t\r\n]/u;

/** Text a spreadsheet shows as text, however it splits the line into cells. */
function formulaSafeText(text: string): string {
  const inside = text.replace(FORMULA_AFTER_SEPARATOR, "$1'");
  return FORMULA_AT_START.test(inside) ? `'${inside}` : inside;
}

/** One cell; null is the empty cell. Text is written as given apart from the quotes above: escape control characters first. */
export function csvCell(value: string | number | null): string {
  if (value === null) return '';
  if (typeof value === 'number') return String(value);
  const text = formulaSafeText(value);
  return NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** One record with its CRLF line end (RFC 4180 §2.1). */
export function csvRecord(cells: ReadonlyArray<string | number | null>): string {
  return `${cells.map(csvCell).join(',')}\r\n`;
}
