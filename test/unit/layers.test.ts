/** The layer directions are enforced by lint: a wrong-way import in each layer fails, a right-way one passes. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ESLint } from 'eslint';
import { REPO_ROOT } from './policy-test-helpers.js';

const CASES: Array<[file: string, source: string, forbidden: boolean]> = [
  ['src/bpf/x.ts', "import { reconcileOnce } from '../reconciler/reconcile.js';", true],
  ['src/bpf/x.ts', "import { failpoint } from '../common/failpoint.js';", false],
  ['src/btf/x.ts', "import { lib } from '../bpf/native.js';", true],
  ['src/btf/x.ts', "import { KINDS } from '../manager.js';", true],
  ['src/btf/x.ts', "import { failpoint } from '../common/failpoint.js';", false],
  ['src/kinds/port-steering/x.ts', "import { codecFor } from '../../btf/codec.js';", false],
  ['src/common/x.ts', "import { lib } from '../bpf/native.js';", true],
  ['src/policy/x.ts', "import { KINDS } from '../kinds/registry.js';", true],
  ['src/policy/net/x.ts', "import { ENGINE } from '../../manager.js';", true],
  ['src/reconciler/x.ts', "import { KINDS } from '../kinds/registry.js';", true],
  ['src/reconciler/x.ts', "import { ensureBpffs } from '../bpf/bpffs.js';", false],
  ['src/kinds/port-steering/x.ts', "import { packetFilter } from '../packet-filter/index.js';", true],
  ['src/kinds/port-steering/x.ts', "import { KINDS } from '../registry.js';", true],
  ['src/kinds/port-steering/x.ts', "import { planKinds } from '../../reconciler/plan.js';", false],
  ['src/daemon/x.ts', "import { readCounters } from '../kinds/port-steering/store.js';", true],
  ['src/cli/x.ts', "import { KINDS } from '../manager.js';", false],
];

test('lint refuses every wrong-way import between layers and accepts the right ones', async () => {
  const eslint = new ESLint({ cwd: REPO_ROOT });
  for (const [file, source, forbidden] of CASES) {
    const [result] = await eslint.lintText(`${source}\nexport const used = [${/import \{ (\w+)/.exec(source)![1]}];\n`, { filePath: `${REPO_ROOT}${file}` });
    const hits = result!.messages.filter((m) => m.ruleId === 'no-restricted-imports');
    assert.equal(hits.length, forbidden ? 1 : 0, `${file}: ${source} ${forbidden ? 'must be refused' : 'must pass'} (${hits.map((h) => h.message).join('; ')})`);
  }
});
