import { PortcullisError } from '../../../manifest/errors.ts';

/** Every code the YARA rule-set loader can raise; they go into the audit log unchanged. */
export const YARA_RULE_ERROR_CODES = [
  'RULE_DIR_UNREADABLE',
  'RULE_SET_EMPTY',
  'RULE_SET_TOO_LARGE',
  'RULE_FILE_INVALID',
  'RULE_FILE_TOO_LARGE',
  'RULE_COMPILE_ERROR',
  'RULE_NOT_PORTABLE',
  'RULE_META_INVALID',
  'RULE_CANARY_MISSING',
  'RULE_COMPILER_UNAVAILABLE',
  'RULE_ENGINE_REJECTED',
  /** A rule loaded into libclamav but did not fire on its probe (liveness.ts). */
  'RULE_NOT_LIVE',
  'RULE_STAGE_FAILED',
] as const;

export type YaraRuleErrorCode = (typeof YARA_RULE_ERROR_CODES)[number];

/** One finding about one rule file, pointing at the source line (1-based). */
export interface RuleProblem {
  readonly code: YaraRuleErrorCode;
  readonly file: string;
  readonly line: number;
  readonly rule?: string;
  readonly message: string;
  /** A compiler warning (refused too, as --fail-on-warnings); absent for errors and the loader's own checks. */
  readonly warning?: true;
}

/**
 * A rule set that cannot be used. `file`/`line` point at the first problem;
 * `problems` lists all of them (a rule author fixes them in one go).
 */
export class YaraRuleError extends PortcullisError<YaraRuleErrorCode> {
  readonly file: string | undefined;
  readonly line: number | undefined;
  readonly problems: readonly RuleProblem[];

  constructor(
    code: YaraRuleErrorCode,
    message: string,
    details: { file?: string; line?: number; problems?: readonly RuleProblem[]; cause?: unknown } = {},
  ) {
    super(code, message, { cause: details.cause });
    this.file = details.file;
    this.line = details.line;
    this.problems = details.problems ?? [];
  }
}

/**
 * Throws the first problem carrying all of them: errors before warnings (an
 * author must see the error, not a warning printed before it), then by file
 * and line.
 */
export function throwProblems(problems: readonly RuleProblem[]): void {
  if (problems.length === 0) return;
  const rank = (p: RuleProblem): number => (p.warning === true ? 1 : 0);
  const sorted = [...problems].sort((a, b) => rank(a) - rank(b) || (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line));
  const first = sorted[0]!;
  const more = sorted.length > 1 ? ` (and ${sorted.length - 1} more problem(s))` : '';
  throw new YaraRuleError(first.code, `${first.file}:${first.line}: ${first.message}${more}`, {
    file: first.file,
    line: first.line,
    problems: sorted,
  });
}
