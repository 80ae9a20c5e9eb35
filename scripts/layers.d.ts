/** Types for scripts/layers.js (ESLint config entries: one per layer). */
export declare const LAYER_RULES: ReadonlyArray<Record<string, unknown>>;
