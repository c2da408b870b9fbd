// The compatibility suite each kernel of the matrix runs, as a list of named
// shell commands run from the checkout as root. To add a check, add an entry:
// `name` (letters, digits, `.`, `-`, `_`; shown in the matrix), `command`, and
// `timeoutSec` (per check, under emulation; the check is killed after it).
// Checks whose output is node's TAP report the failing tests by name.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * node --test flags of the kernel tests (as in scripts/run-tests.mjs). The
 * per-test timeout is 120 s natively; under emulation the runner sets
 * KM_TEST_TIMEOUT_MS (scaled like every other bound, see docs/kernels.md).
 */
export const NODE_TEST = 'node --test --test-reporter=tap --test-concurrency=1 --test-timeout=${KM_TEST_TIMEOUT_MS:-120000} --test-force-exit';

/**
 * @param {string} checkout the repository root
 * @returns {Array<{ name: string, command: string, timeoutSec: number, tap?: boolean }>}
 */
export function checks(checkout) {
  // The compatibility suite (test/compat/): every shipped object, the feature probes, each kind end to end
  // with real traffic, nothing left behind — in one process, so it fits the matrix's time under emulation.
  const list = [{ name: 'compat', command: `${NODE_TEST} dist/test/compat/*.test.js`, timeoutSec: 600, tap: true }];
  // KERNEL_MATRIX_FULL=1: also the main job and every kernel test file (natively about 8 minutes; under
  // emulation far longer than the matrix's default deadline: raise KERNEL_MATRIX_DEADLINE_SEC).
  if (process.env.KERNEL_MATRIX_FULL !== '1') return list;
  list.push({ name: 'demo', command: 'node dist/src/cli/main.js demo', timeoutSec: 300 });
  const dir = join(checkout, 'dist/test/kernel');
  // The most kernel-specific files first: when the run's deadline cuts a slow VM short, it cuts the
  // files that mostly exercise user space (CLI, daemon) and are slowest under emulation.
  const first = ['hooks', 'packet-filter', 'dispatcher', 'reconcile', 'demo'];
  const rank = (f) => {
    const i = first.indexOf(f.replace(/\.test\.js$/, ''));
    return i < 0 ? first.length : i;
  };
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.test.js')).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b)) : [];
  for (const f of files)
    list.push({ name: `kernel/${f.replace(/\.test\.js$/, '')}`, command: `${NODE_TEST} dist/test/kernel/${f}`, timeoutSec: 900, tap: true });
  return list;
}
