/**
 * A small strict schema checker: every failure is reported with its dot-path
 * (`subject[3].digest.blake3: expected 64 lowercase hex characters`). Objects
 * refuse unknown and missing fields. No dependencies, no I/O, so the manifest
 * verifier stays portable; the kiosk and agent use it for their own files too.
 */

export interface SchemaIssue {
  readonly path: string;
  readonly message: string;
}

const FAIL: unique symbol = Symbol('schema-fail');
type Result<T> = T | typeof FAIL;

export interface Schema<T> {
  /** Returns the checked value, or FAIL after pushing at least one issue. */
  readonly check: (value: unknown, path: string, issues: SchemaIssue[]) => Result<T>;
  readonly optional?: boolean;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

const MAX_ISSUES = 50;

function fail(issues: SchemaIssue[], path: string, message: string): typeof FAIL {
  if (issues.length < MAX_ISSUES) issues.push({ path: path === '' ? '(root)' : path, message });
  return FAIL;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

export interface StringRules {
  readonly min?: number; // UTF-16 code units
  readonly max?: number; // UTF-16 code units
  readonly pattern?: RegExp;
  readonly patternMessage?: string;
  /** Extra check: returns a message when the value is refused. */
  readonly refine?: (value: string) => string | null;
}

export function string(rules: StringRules = {}): Schema<string> {
  return {
    check(value, path, issues) {
      if (typeof value !== 'string') return fail(issues, path, `expected a string, got ${describe(value)}`);
      if (!value.isWellFormed()) return fail(issues, path, 'expected well-formed Unicode (no lone surrogates)');
      if (rules.min !== undefined && value.length < rules.min)
        return fail(issues, path, rules.min === 1 ? 'must not be empty' : `expected at least ${rules.min} characters`);
      if (rules.max !== undefined && value.length > rules.max)
        return fail(issues, path, `expected at most ${rules.max} characters, got ${value.length}`);
      if (rules.pattern && !rules.pattern.test(value))
        return fail(issues, path, rules.patternMessage ?? `expected to match ${String(rules.pattern)}`);
      const refused = rules.refine?.(value);
      if (refused) return fail(issues, path, refused);
      return value;
    },
  };
}

export function integer(rules: { min?: number; max?: number } = {}): Schema<number> {
  const min = rules.min ?? Number.MIN_SAFE_INTEGER;
  const max = rules.max ?? Number.MAX_SAFE_INTEGER;
  return {
    check(value, path, issues) {
      if (typeof value !== 'number' || !Number.isSafeInteger(value))
        return fail(issues, path, `expected an integer, got ${describe(value)}`);
      if (value < min || value > max) return fail(issues, path, `expected an integer from ${min} to ${max}, got ${value}`);
      return value;
    },
  };
}

export function boolean(): Schema<boolean> {
  return {
    check(value, path, issues) {
      return typeof value === 'boolean' ? value : fail(issues, path, `expected true or false, got ${describe(value)}`);
    },
  };
}

export function literal<const T extends string | number | boolean>(expected: T): Schema<T> {
  return {
    check(value, path, issues) {
      return value === expected ? (value as T) : fail(issues, path, `expected ${JSON.stringify(expected)}`);
    },
  };
}

export function oneOf<const T extends string>(choices: readonly T[]): Schema<T> {
  return {
    check(value, path, issues) {
      if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
      return fail(issues, path, `expected one of ${choices.map((c) => JSON.stringify(c)).join(', ')}`);
    },
  };
}

export function nullable<T>(inner: Schema<T>): Schema<T | null> {
  return {
    check(value, path, issues) {
      return value === null ? null : inner.check(value, path, issues);
    },
  };
}

/** Marks an object field that may be absent. */
export function optional<T>(inner: Schema<T>): Schema<T | undefined> & { readonly optional: true } {
  return {
    optional: true,
    check(value, path, issues) {
      return value === undefined ? undefined : inner.check(value, path, issues);
    },
  };
}

export function array<T>(item: Schema<T>, rules: { min?: number; max?: number } = {}): Schema<T[]> {
  return {
    check(value, path, issues) {
      if (!Array.isArray(value)) return fail(issues, path, `expected an array, got ${describe(value)}`);
      if (rules.min !== undefined && value.length < rules.min)
        return fail(issues, path, `expected at least ${rules.min} entries, got ${value.length}`);
      if (rules.max !== undefined && value.length > rules.max)
        return fail(issues, path, `expected at most ${rules.max} entries, got ${value.length}`);
      const out: T[] = [];
      let ok = true;
      value.forEach((entry, i) => {
        const checked = item.check(entry, `${path}[${i}]`, issues);
        if (checked === FAIL) ok = false;
        else out.push(checked);
      });
      return ok ? out : FAIL;
    },
  };
}

type Shape = Record<string, Schema<unknown>>;
type RequiredKeys<S extends Shape> = { [K in keyof S]: S[K]['optional'] extends true ? never : K }[keyof S];
type OptionalKeys<S extends Shape> = Exclude<keyof S, RequiredKeys<S>>;
export type ObjectOf<S extends Shape> = { [K in RequiredKeys<S>]: Infer<S[K]> } & {
  [K in OptionalKeys<S>]?: Exclude<Infer<S[K]>, undefined>;
};

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A strict object: unknown fields and missing required fields are refused. */
export function object<S extends Shape>(shape: S): Schema<ObjectOf<S>> {
  return {
    check(value, path, issues) {
      if (!isPlainObject(value)) return fail(issues, path, `expected an object, got ${describe(value)}`);
      let ok = true;
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(value)) {
        if (!Object.hasOwn(shape, key)) {
          ok = false;
          fail(issues, join(path, key), 'unknown field');
        }
      }
      for (const [key, schema] of Object.entries(shape)) {
        const fieldPath = join(path, key);
        if (!Object.hasOwn(value, key)) {
          if (schema.optional) continue;
          ok = false;
          fail(issues, fieldPath, 'missing');
          continue;
        }
        const checked = schema.check(value[key], fieldPath, issues);
        if (checked === FAIL) ok = false;
        else if (checked !== undefined) out[key] = checked;
      }
      return ok ? (out as ObjectOf<S>) : FAIL;
    },
  };
}

function join(path: string, key: string): string {
  const safe = /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key) ? key : JSON.stringify(key);
  return path === '' ? safe : `${path}.${safe}`;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; issues: SchemaIssue[] };

export function parse<T>(schema: Schema<T>, value: unknown, rootPath = ''): ParseResult<T> {
  const issues: SchemaIssue[] = [];
  const checked = schema.check(value, rootPath, issues);
  if (checked === FAIL) return { ok: false, issues };
  return { ok: true, value: checked };
}

/** True when the schema accepts the value as it is (a leaf rule: the checked value is the value itself). */
export function accepts<T>(schema: Schema<T>, value: T): boolean {
  return schema.check(value, '', []) === value;
}

/** One line per issue, for error messages. */
export function formatIssues(issues: readonly SchemaIssue[]): string {
  return issues.map((i) => `${i.path}: ${i.message}`).join('; ');
}
