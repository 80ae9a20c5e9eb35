/**
 * A small reader for YARA rule source: enough to list rules, their meta,
 * string declarations and condition tokens, so the portability check can
 * refuse what ClamAV's YARA support drops, ignores or crashes on. It is not a
 * validator: libyara's own compiler (yarac) checks the grammar first, and this
 * reader refuses (throws RuleSourceError) anything it does not follow.
 * Grammar reference: YARA 4.2 "Writing YARA rules".
 */

export type TokenKind =
  | 'identifier'
  | 'string-id' // $a, $a*, $
  | 'count-id' // #a, #
  | 'offset-id' // @a, @
  | 'length-id' // !a, !
  | 'number'
  | 'text' // "..."
  | 'regex' // /.../flags
  | 'hex' // { ... }
  | 'punct';

export interface Token {
  readonly kind: TokenKind;
  /** The exact source text: `source.slice(offset, offset + text.length)`. */
  readonly text: string;
  readonly line: number;
  /** Index of the token's first character in the source. */
  readonly offset: number;
}

export class RuleSourceError extends Error {
  readonly line: number;
  constructor(line: number, message: string) {
    super(message);
    this.line = line;
    this.name = 'RuleSourceError';
  }
}

const PUNCT_2 = ['==', '!=', '<=', '>=', '<<', '>>', '..'];
const PUNCT_1 = '{}()[]:,=<>+-*\\%&|^~.';
const IDENT_START = /[A-Za-z_]/;
const IDENT_CHAR = /[A-Za-z0-9_]/;

/** Splits rule source into tokens, dropping comments and tracking lines. */
export function tokenizeRuleSource(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  const at = (k: number): string => source[k] ?? '';
  // Every token starts at i when pushed: its text is source.slice(i, ...).
  const push = (kind: TokenKind, text: string, startLine: number): void => {
    tokens.push({ kind, text, line: startLine, offset: i });
  };
  // A lone '=' in a strings section introduces a hex string or a regex; so does "matches".
  const afterAssign = (): boolean => {
    const last = tokens[tokens.length - 1];
    return last !== undefined && last.kind === 'punct' && last.text === '=';
  };
  const regexAllowed = (): boolean => {
    const last = tokens[tokens.length - 1];
    return afterAssign() || (last !== undefined && last.kind === 'identifier' && last.text === 'matches');
  };

  while (i < source.length) {
    const c = at(i);
    if (c === '\n') {
      line++;
      i++;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    if (c === '/' && at(i + 1) === '/') {
      while (i < source.length && at(i) !== '\n') i++;
      continue;
    }
    if (c === '/' && at(i + 1) === '*') {
      const end = source.indexOf('*/', i + 2);
      if (end < 0) throw new RuleSourceError(line, 'unterminated comment');
      line += countNewlines(source.slice(i, end));
      i = end + 2;
      continue;
    }
    const startLine = line;
    if (c === '"') {
      let j = i + 1;
      while (j < source.length && at(j) !== '"') {
        if (at(j) === '\n') throw new RuleSourceError(line, 'newline inside a text string');
        j += at(j) === '\\' ? 2 : 1;
      }
      if (j >= source.length) throw new RuleSourceError(line, 'unterminated text string');
      push('text', source.slice(i, j + 1), startLine);
      i = j + 1;
      continue;
    }
    if (c === '{' && afterAssign()) {
      let j = i + 1;
      while (j < source.length && at(j) !== '}') {
        if (at(j) === '/' && at(j + 1) === '/') {
          while (j < source.length && at(j) !== '\n') j++;
          continue;
        }
        if (at(j) === '/' && at(j + 1) === '*') {
          const end = source.indexOf('*/', j + 2);
          if (end < 0) throw new RuleSourceError(line, 'unterminated comment in hex string');
          j = end + 2;
          continue;
        }
        j++;
      }
      if (j >= source.length) throw new RuleSourceError(line, 'unterminated hex string');
      const body = source.slice(i, j + 1);
      line += countNewlines(body);
      push('hex', body, startLine);
      i = j + 1;
      continue;
    }
    if (c === '/' && regexAllowed()) {
      let j = i + 1;
      while (j < source.length && at(j) !== '/') {
        if (at(j) === '\n') throw new RuleSourceError(line, 'newline inside a regular expression');
        j += at(j) === '\\' ? 2 : 1;
      }
      if (j >= source.length) throw new RuleSourceError(line, 'unterminated regular expression');
      j++;
      while (/[is]/.test(at(j))) j++;
      push('regex', source.slice(i, j), startLine);
      i = j;
      continue;
    }
    if ('$#@!'.includes(c) && !(c === '!' && at(i + 1) === '=')) {
      let j = i + 1;
      while (IDENT_CHAR.test(at(j))) j++;
      if (c === '$' && at(j) === '*') j++;
      const kind: TokenKind =
        c === '$' ? 'string-id' : c === '#' ? 'count-id' : c === '@' ? 'offset-id' : 'length-id';
      push(kind, source.slice(i, j), startLine);
      i = j;
      continue;
    }
    if (IDENT_START.test(c)) {
      let j = i + 1;
      while (IDENT_CHAR.test(at(j))) j++;
      push('identifier', source.slice(i, j), startLine);
      i = j;
      continue;
    }
    if (/[0-9]/.test(c)) {
      const m = /^(0x[0-9A-Fa-f]+|0o[0-7]+|[0-9]+(\.[0-9]+)?(KB|MB)?)/.exec(source.slice(i));
      if (m === null) throw new RuleSourceError(line, `bad number near "${source.slice(i, i + 10)}"`);
      push('number', m[0], startLine);
      i += m[0].length;
      continue;
    }
    const two = source.slice(i, i + 2);
    if (PUNCT_2.includes(two)) {
      push('punct', two, startLine);
      i += 2;
      continue;
    }
    if (PUNCT_1.includes(c)) {
      push('punct', c, startLine);
      i++;
      continue;
    }
    throw new RuleSourceError(line, `unexpected character ${JSON.stringify(c)}`);
  }
  return tokens;
}

function countNewlines(s: string): number {
  let n = 0;
  for (const ch of s) if (ch === '\n') n++;
  return n;
}

export type MetaValue = string | number | boolean;

export interface StringDeclaration {
  /** `$name` as written ("$" alone for an anonymous string). */
  readonly id: string;
  readonly line: number;
  readonly kind: 'text' | 'hex' | 'regex';
  /** Source of the literal as written (with quotes, braces or slashes). */
  readonly literal: string;
  /** Modifier names in order (`nocase`, `wide`, `xor`, ...), arguments dropped. */
  readonly modifiers: readonly string[];
}

export interface RuleOutline {
  readonly name: string;
  readonly line: number;
  readonly isPrivate: boolean;
  readonly isGlobal: boolean;
  readonly tags: readonly string[];
  readonly meta: ReadonlyMap<string, { readonly value: MetaValue; readonly line: number }>;
  readonly strings: readonly StringDeclaration[];
  readonly condition: readonly Token[];
  /** Offset just past the rule's closing brace. */
  readonly end: number;
}

export interface RuleSourceOutline {
  readonly imports: readonly { readonly module: string; readonly line: number }[];
  readonly includes: readonly { readonly path: string; readonly line: number }[];
  readonly rules: readonly RuleOutline[];
}

/** Reads the outline of one rule file. Throws RuleSourceError on anything it does not follow. */
export function outlineRuleSource(source: string): RuleSourceOutline {
  const tokens = tokenizeRuleSource(source);
  const imports: { module: string; line: number }[] = [];
  const includes: { path: string; line: number }[] = [];
  const rules: RuleOutline[] = [];
  let p = 0;
  const peek = (k = 0): Token | undefined => tokens[p + k];
  const lastLine = (): number => tokens[tokens.length - 1]?.line ?? 1;
  const next = (what: string): Token => {
    const t = tokens[p];
    if (t === undefined) throw new RuleSourceError(lastLine(), `unexpected end of file, expected ${what}`);
    p++;
    return t;
  };
  const expect = (kind: TokenKind, text: string | undefined, what: string): Token => {
    const t = next(what);
    if (t.kind !== kind || (text !== undefined && t.text !== text)) {
      throw new RuleSourceError(t.line, `expected ${what}, found "${t.text}"`);
    }
    return t;
  };

  while (p < tokens.length) {
    const t = next('rule');
    if (t.kind === 'identifier' && (t.text === 'import' || t.text === 'include')) {
      const arg = expect('text', undefined, `a quoted name after ${t.text}`);
      const value = decodeTextLiteral(arg.text, arg.line);
      if (t.text === 'import') imports.push({ module: value, line: t.line });
      else includes.push({ path: value, line: t.line });
      continue;
    }
    let isPrivate = false;
    let isGlobal = false;
    let head = t;
    while (head.kind === 'identifier' && (head.text === 'private' || head.text === 'global')) {
      if (head.text === 'private') isPrivate = true;
      else isGlobal = true;
      head = next('rule');
    }
    if (head.kind !== 'identifier' || head.text !== 'rule') {
      throw new RuleSourceError(head.line, `expected "rule", found "${head.text}"`);
    }
    const name = expect('identifier', undefined, 'a rule name');
    const tags: string[] = [];
    if (peek()?.kind === 'punct' && peek()?.text === ':') {
      p++;
      while (peek()?.kind === 'identifier') tags.push(next('tag').text);
    }
    expect('punct', '{', '"{" after the rule name');

    const meta = new Map<string, { value: MetaValue; line: number }>();
    const strings: StringDeclaration[] = [];
    const condition: Token[] = [];
    let end: number;
    let section: 'none' | 'meta' | 'strings' | 'condition' = 'none';
    for (;;) {
      const u = peek();
      if (u === undefined) throw new RuleSourceError(lastLine(), `rule ${name.text} is not closed`);
      // A section keyword is an identifier followed by ':' (meta keys are followed by '=').
      const v = peek(1);
      const isSection =
        u.kind === 'identifier' &&
        (u.text === 'meta' || u.text === 'strings' || u.text === 'condition') &&
        v?.kind === 'punct' &&
        v.text === ':' &&
        section !== 'condition';
      if (isSection) {
        section = u.text;
        p += 2;
        continue;
      }
      if (u.kind === 'punct' && u.text === '}') {
        p++;
        end = u.offset + 1;
        break;
      }
      switch (section) {
        case 'none':
          throw new RuleSourceError(u.line, `expected meta:, strings: or condition:, found "${u.text}"`);
        case 'meta': {
          const key = expect('identifier', undefined, 'a meta key');
          expect('punct', '=', '"=" after a meta key');
          meta.set(key.text, { value: readMetaValue(), line: key.line });
          break;
        }
        case 'strings':
          strings.push(readStringDeclaration());
          break;
        case 'condition':
          condition.push(next('condition'));
          break;
      }
    }
    rules.push({
      name: name.text,
      line: head.line,
      isPrivate,
      isGlobal,
      tags,
      meta,
      strings,
      condition,
      end,
    });
  }
  return { imports, includes, rules };

  function readMetaValue(): MetaValue {
    const v = next('a meta value');
    if (v.kind === 'text') return decodeTextLiteral(v.text, v.line);
    if (v.kind === 'number') return Number(v.text);
    if (v.kind === 'identifier' && (v.text === 'true' || v.text === 'false')) return v.text === 'true';
    if (v.kind === 'punct' && v.text === '-') {
      const n = expect('number', undefined, 'a number after "-"');
      return -Number(n.text);
    }
    throw new RuleSourceError(v.line, `unsupported meta value "${v.text}"`);
  }

  function readStringDeclaration(): StringDeclaration {
    const id = expect('string-id', undefined, 'a string identifier ($name)');
    expect('punct', '=', '"=" after a string identifier');
    const lit = next('a text, hex or regex string');
    if (lit.kind !== 'text' && lit.kind !== 'hex' && lit.kind !== 'regex') {
      throw new RuleSourceError(lit.line, `expected a string literal, found "${lit.text}"`);
    }
    const modifiers: string[] = [];
    while (peek()?.kind === 'identifier' && !(peek(1)?.kind === 'punct' && peek(1)?.text === ':')) {
      modifiers.push(next('modifier').text);
      // xor(...), base64("..."): skip the argument list.
      if (peek()?.kind === 'punct' && peek()?.text === '(') {
        while (p < tokens.length && !(peek()?.kind === 'punct' && peek()?.text === ')')) p++;
        expect('punct', ')', '")" closing modifier arguments');
      }
    }
    return { id: id.text, line: id.line, kind: lit.kind, literal: lit.text, modifiers };
  }
}

/**
 * `include` directives in a file, found before yarac runs: yarac would follow
 * them to any path. Source the tokenizer cannot read yields none here; yarac
 * then reports it, and the outline check refuses any include it finds later.
 */
export function findIncludes(source: string): { path: string; line: number }[] {
  let tokens: Token[];
  try {
    tokens = tokenizeRuleSource(source);
  } catch (error) {
    if (error instanceof RuleSourceError) return [];
    throw error;
  }
  const found: { path: string; line: number }[] = [];
  tokens.forEach((t, i) => {
    const arg = tokens[i + 1];
    if (t.kind === 'identifier' && t.text === 'include' && arg?.kind === 'text') {
      found.push({ path: arg.text.slice(1, -1), line: t.line });
    }
  });
  return found;
}

/** Decodes a YARA text literal ("..." with \" \\ \t \n \r \xHH escapes) to its bytes as a latin1 string. */
export function decodeTextLiteral(literal: string, line: number): string {
  let out = '';
  for (let i = 1; i < literal.length - 1; i++) {
    const c = literal[i]!;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = literal[++i] ?? '';
    if (e === 'n') out += '\n';
    else if (e === 't') out += '\t';
    else if (e === 'r') out += '\r';
    else if (e === '"' || e === '\\') out += e;
    else if (e === 'x') {
      const hex = literal.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new RuleSourceError(line, `bad \\x escape in ${literal}`);
      out += String.fromCharCode(parseInt(hex, 16));
      i += 2;
    } else throw new RuleSourceError(line, `unknown escape \\${e} in ${literal}`);
  }
  return out;
}

/**
 * The longest run of consecutive fixed bytes in a hex string, outside
 * alternatives; wildcards (?? and nibbles), jumps and groups break a run.
 */
export function longestFixedHexRun(literal: string): number {
  const body = literal
    .slice(1, -1)
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .replace(/\/\/[^\n]*/g, ' ');
  let best = 0;
  let run = 0;
  let depth = 0;
  const items = body.match(/\[[^\]]*\]|[()|]|~?[0-9A-Fa-f?]{2}/g) ?? [];
  for (const item of items) {
    if (item === '(') depth++;
    else if (item === ')') depth--;
    if (depth === 0 && /^[0-9A-Fa-f]{2}$/.test(item)) {
      run++;
      best = Math.max(best, run);
    } else run = 0;
  }
  return best;
}
