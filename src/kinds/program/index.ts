/**
 * The Program kind: a program of the user's own BPF object (digest-pinned),
 * loaded, pinned, attached at an XDP, tc, tracepoint or cgroup hook, its
 * maps given initial entries typed by BTF, upgraded atomically; its pins
 * live under ROOT/programs/<policy>.
 */
import type { DesiredPolicyBase } from '../../policy/kind.js';
import type { ReconcilerKind } from '../../reconciler/kind.js';
import { buildDesiredPrograms } from './desired.js';
import { programKind, type ProgramPolicy } from './document.js';
import { probePrograms, programExpectation, type ProgramExpectation } from './drift.js';
import { openProgramEvents } from './events.js';
import { PROGRAMS_DIR } from './layout.js';
import type { DesiredPrograms } from './model.js';
import { executeProgram } from './ops.js';
import { planPrograms } from './plan.js';
import { systemProgramResolver } from './resolver.js';
import { programViews, renderProgramStatus } from './status.js';
import { observePrograms, removeProgram, type ObservedPrograms } from './store.js';
import { join } from 'node:path';
import { existsSync, readdirSync } from 'node:fs';

/** Program, as the engine drives it. */
export const program: ReconcilerKind<DesiredPrograms, ObservedPrograms, ProgramExpectation> = {
  kind: 'Program',
  document: programKind,
  pinDir: PROGRAMS_DIR,
  desired: (policies: readonly DesiredPolicyBase[], env) => buildDesiredPrograms(env.root, policies as ProgramPolicy[], env.failedFiles, systemProgramResolver()),
  observe: observePrograms,
  plan: planPrograms,
  execute: executeProgram,
  policies: programViews,
  renderStatus: renderProgramStatus,
  programTags: (desired) => desired.policies.map((p) => `${p.name}:${p.sha256}`),
  teardown: (root) => {
    const top = join(root, PROGRAMS_DIR);
    return existsSync(top) ? readdirSync(top).flatMap((name) => removeProgram(join(top, name))) : [];
  },
  drift: { expect: programExpectation, probe: probePrograms },
  events: { open: openProgramEvents },
};
