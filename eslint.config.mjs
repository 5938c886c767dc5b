// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';
import globals from 'globals';

/** Workflow code is replayed: it must stay deterministic, so no I/O modules reach it. */
const workflowForbidden = {
  paths: [
    ...builtinModules
      .flatMap((m) => [m, `node:${m}`])
      .map((name) => ({
        name,
        message: 'Workflow and shared code must be deterministic: no Node builtins (do I/O in an activity).',
      })),
    { name: 'pg', message: 'Workflow and shared code must not talk to PostgreSQL: use an activity.' },
  ],
  patterns: [
    { group: ['@aws-sdk/*'], message: 'Workflow and shared code must not call AWS: use an activity.' },
    { group: ['node:*'], message: 'Workflow and shared code must be deterministic: no Node builtins.' },
  ],
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.runbook/**', '.tools/**', 'bin/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The sample service is plain Node.js CommonJS, as users write it.
    files: ['examples/**/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: globals.node },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Workflow code, and what it bundles: shared types and the platforms' pure descriptors.
    files: [
      'src/workflows/**/*.ts',
      'src/shared/**/*.ts',
      'src/platforms/descriptors.ts',
      'src/platforms/*/descriptor.ts',
      'src/platforms/aws-ecs/naming.ts',
    ],
    rules: { 'no-restricted-imports': ['error', workflowForbidden] },
  },
  {
    // Platforms throw PlatformError (src/platforms/types.ts); activities translate it into Temporal's failures.
    files: ['src/platforms/**/*.ts', 'src/pg/**/*.ts', 'src/orchestrator-store/**/*.ts', 'src/system/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['@temporalio/*'],
              message:
                'Platform code knows nothing of Temporal: throw PlatformError, take what an activity knows as a dependency.',
            },
          ],
        },
      ],
    },
  },
);
