// Lint: typescript-eslint's type-aware recommended rules on every .ts file.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { LAYER_RULES } from './scripts/layers.js';

export default tseslint.config(
  { ignores: ['node_modules/**', '.tools/**', 'var/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      eqeqeq: ['error', 'always'],
      'no-control-regex': 'off',
    },
  },
  // The layers: what each folder may import (scripts/layers.js, docs/architecture.md).
  ...LAYER_RULES,
  {
    files: ['**/*.js'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      parserOptions: { projectService: false },
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly' },
    },
  },
);
