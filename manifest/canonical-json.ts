/**
 * Canonical JSON per RFC 8785 (JSON Canonicalization Scheme), restricted to
 * the values a manifest holds: strings, safe integers, booleans, null, arrays
 * and objects. The manifest payload must be exactly these bytes, so a verifier
 * can refuse duplicate keys, whitespace tricks and parser differentials by
 * re-encoding what it parsed and comparing bytes.
 */

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export function canonicalize(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      // RFC 8785 §3.2.2.3 uses ECMAScript number serialization; integers only here.
      if (!Number.isSafeInteger(value)) throw new TypeError(`canonical JSON holds safe integers only, got ${value}`);
      return Object.is(value, -0) ? '0' : String(value);
    case 'string':
      // RFC 8785 §3.2.2.2: JSON.stringify's string escaping is the canonical one.
      if (!value.isWellFormed()) throw new TypeError('canonical JSON strings must be well-formed Unicode');
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map(canonicalize).join(',')}]`;
      // RFC 8785 §3.2.3: members sorted by their names' UTF-16 code units.
      const entries = Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([k, v]) => `${canonicalize(k)}:${canonicalize(v)}`).join(',')}}`;
    }
    default:
      throw new TypeError(`canonical JSON cannot hold a ${typeof value}`);
  }
}

export function canonicalBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(canonicalize(value));
}
