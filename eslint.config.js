// Lint config: typescript-eslint's recommended type-aware rules on our sources.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** One no-restricted-imports rule per layer: [files, forbidden import regex, why]. */
function layerRules(rules) {
  return rules.map(([files, regex, message]) => ({
    files: [files],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ regex, message }] }] },
  }));
}

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'node_modules/**', 'src/types/generated/**', 'src/types/bpf/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  // Layer directions (docs/architecture.md): imports only point down. The kernel layer imports nothing above
  // itself, the engine imports no kind, kinds never import each other, src/common imports nothing of ours.
  ...layerRules([
    ['src/common/**/*.ts', '^\\.\\./', 'src/common/ is below every layer: it imports nothing of the project'],
    ['src/bpf/**/*.ts', '^\\.\\./(?!common/)', 'src/bpf/ is the kernel layer: it imports nothing above itself (only src/common/)'],
    ['src/btf/**/*.ts', '^\\.\\./(?!common/)', 'src/btf/ (BTF reader and codec) is pure: it imports only src/common/ (no koffi, no kernel layer)'],
    ['src/policy/**/*.ts', '^(\\.\\./)+(kinds|reconciler|bpf|daemon|cli|demo|sandbox|manager)\\b', 'src/policy/ (documents) knows no kind, engine or kernel: kinds are handed to it'],
    ['src/reconciler/**/*.ts', '^(\\.\\./)+(kinds|daemon|cli|demo|manager)\\b', 'the engine (src/reconciler/) knows no kind: kinds are handed to it (src/kinds/registry.ts)'],
    ['src/{cli,daemon,demo}/**/*.ts', '^(\\.\\./)+kinds/', 'the CLI, daemon and demo reach the kinds only through src/manager.ts (they loop over KINDS and name none)'],
    ['src/kinds/*/**/*.ts', '^\\.\\./(?!\\.\\./)', 'a kind never imports another kind or the registry: share through src/bpf, src/policy, src/reconciler or src/common'],
  ]),
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly' } },
  },
);
