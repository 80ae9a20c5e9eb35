import { describe, expect, it } from 'vitest';
import { array, formatIssues, integer, nullable, object, oneOf, optional, parse, string } from './schema.ts';

const schema = object({
  name: string({ min: 1, max: 8 }),
  size: integer({ min: 0 }),
  kind: oneOf(['a', 'b']),
  note: optional(string()),
  parent: nullable(object({ id: string({ pattern: /^[0-9]+$/, patternMessage: 'expected digits' }) })),
  tags: array(string(), { max: 2 }),
});

describe('schema', () => {
  it('accepts a valid value and drops nothing but absent optionals', () => {
    const result = parse(schema, { name: 'x', size: 0, kind: 'a', parent: null, tags: [] });
    expect(result).toEqual({ ok: true, value: { name: 'x', size: 0, kind: 'a', parent: null, tags: [] } });
  });

  it('reports every failure with its dot-path', () => {
    const result = parse(schema, { name: '', size: 1.5, kind: 'c', extra: 1, parent: { id: 'x' }, tags: ['a', 2] });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.issues.map((i) => i.path).sort()).toEqual(['extra', 'kind', 'name', 'parent.id', 'size', 'tags[1]'].sort());
    expect(formatIssues(result.issues)).toContain('parent.id: expected digits');
  });

  it('names array entries by index and missing fields as missing', () => {
    const result = parse(object({ list: array(object({ v: integer() })) }), { list: [{ v: 1 }, {}] });
    expect(result.ok ? [] : result.issues).toEqual([{ path: 'list[1].v', message: 'missing' }]);
  });

  it('refuses objects with a prototype other than a plain object', () => {
    const result = parse(object({}), new Date());
    expect(result.ok).toBe(false);
  });
});
