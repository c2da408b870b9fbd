/**
 * planCounters(desired, observed): the pure plan for SyscallCounter
 * policies. One counter (program, raw tracepoint link, maps) serves every
 * policy, each in a slot; the plan builds or repairs the counter, writes the
 * slots whose kernel state differs from their policy (syscalls and cgroup in
 * place; a fresh count table only when groupBy, maxKeys or the slot change),
 * empties the slots no policy wants, and removes the counter when no policy
 * is left. No I/O.
 */
import { swapInterruptedAfterUpdate } from '../../bpf/program-swap.js';
import type { KindPlan, PlanEnv } from '../../reconciler/kind.js';
import type { Action, PlanProblem } from '../../reconciler/model.js';
import { counterDir, groupBits, MAX_POLICIES, MAX_SYSCALLS } from './layout.js';
import type { CounterOperation, DesiredCounterPolicy, DesiredCounters } from './model.js';
import type { CounterPolicyRecord, ObservedCounter, ObservedCounters, ObservedSlot, SlotWrite } from './store.js';

type CounterAction = Action<CounterOperation>;

const OBJECT = 'syscall counter';

/** The syscall numbers whose `wanted` bit a policy sets: every number for "*" (the program's hot path is then one lookup). */
function syscallList(s: readonly number[] | 'all'): number[] {
  return s === 'all' ? Array.from({ length: MAX_SYSCALLS }, (_, nr) => nr) : s.filter((nr) => nr < MAX_SYSCALLS);
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function record(p: DesiredCounterPolicy, slot: number): CounterPolicyRecord {
  return {
    v: 1,
    name: p.name,
    sourceFile: p.sourceFile,
    specHash: p.specHash,
    slot,
    syscalls: p.syscalls === 'all' ? 'all' : [...p.syscalls],
    groupBy: [...p.groupBy],
    cgroupPath: p.cgroup?.path ?? null,
    cgroupId: p.cgroup?.id ?? null,
    maxKeys: p.maxKeys,
  };
}

function describe(p: DesiredCounterPolicy): string {
  const what = p.syscalls === 'all' ? 'every syscall' : `${p.syscalls.length} syscall${p.syscalls.length === 1 ? '' : 's'}`;
  return `${what} by ${p.groupBy.join(', ')}${p.cgroup ? ` in cgroup ${p.cgroup.path}` : ''}, at most ${p.maxKeys} keys`;
}

/**
 * Slots for the desired policies: the recorded one where free, else the lowest free. Kept policies' slots are taken:
 * with them, there may be fewer free slots than policies (desired.ts counts only those it applies), and the last
 * policies by name get none.
 */
function assignSlots(policies: readonly DesiredCounterPolicy[], records: readonly CounterPolicyRecord[], kept: ReadonlySet<number>): Map<string, number> {
  const used = new Set<number>(kept);
  const out = new Map<string, number>();
  for (const p of policies) {
    const r = records.find((x) => x.name === p.name);
    if (r && Number.isInteger(r.slot) && r.slot >= 0 && r.slot < MAX_POLICIES && !used.has(r.slot)) {
      out.set(p.name, r.slot);
      used.add(r.slot);
    }
  }
  let next = 0;
  for (const p of policies) {
    if (out.has(p.name)) continue;
    while (used.has(next)) next++;
    if (next >= MAX_POLICIES) break;
    out.set(p.name, next);
    used.add(next);
  }
  return out;
}

/**
 * Computes the counter actions. `env.failedFiles` are absolute paths of
 * policy files that failed to load: slots recording a policy from one are
 * kept. The counter is one failure domain (`syscalls`). Pure and
 * deterministic.
 */
export function planCounters(desired: DesiredCounters, observed: ObservedCounters, env: PlanEnv): KindPlan {
  const actions: CounterAction[] = [];
  const problems: PlanProblem[] = desired.problems.map((p) => ({ ...p }));
  const base = { domain: 'syscalls' };
  const obs = observed.counter;
  const dir = obs?.dir ?? counterDir(env.root);

  if (obs?.error) {
    for (const p of desired.policies) problems.push({ policy: p.name, sourceFile: p.sourceFile, condition: 'Failed', reason: 'PinsUnreadable', message: `${OBJECT} (${obs.dir}): ${obs.error}` });
    actions.push({ ...base, kind: 'noop', phase: 'add', object: OBJECT, code: 'PinsUnreadable', reason: `its pins cannot be read (${obs.error}): left as it is`, op: { type: 'none' } });
    return { actions, problems };
  }

  const desiredNames = new Set(desired.status.map((p) => p.name));
  const broken = !obs || (!obs.program && !obs.programNext) || obs.missingMaps.length > 0 || obs.layoutMismatch.length > 0;
  // Policies whose slot stays as it is: their file is broken (and no loaded file defines them now) or their cgroup cannot be read.
  const kept = broken ? [] : obs.policies.filter((r) => desired.keepPolicies.includes(r.name) || (env.failedFiles.has(r.sourceFile) && !desiredNames.has(r.name)));
  const keptSlots = new Set(kept.map((r) => r.slot));

  if (desired.policies.length === 0 && kept.length === 0) {
    if (obs)
      actions.push({
        ...base,
        kind: 'delete',
        phase: 'remove',
        object: OBJECT,
        code: obs.policies.length === 0 && obs.slots.length === 0 ? 'LeftByInterruptedRun' : 'Unused',
        reason: obs.policies.length === 0 && obs.slots.length === 0 ? 'a counter that counts nothing (left by an interrupted run)' : 'no policy counts syscalls any more',
        before: `${obs.policies.length} policies: ${obs.policies.map((p) => p.name).join(', ') || 'none'}`,
        op: { type: 'removeCounter', dir: obs.dir },
      });
    return { actions, problems };
  }

  let changed = false;
  if (broken) {
    changed = true;
    actions.push({
      ...base,
      kind: obs ? 'replace' : 'create',
      phase: 'dispatcher',
      object: OBJECT,
      code: obs ? (obs.layoutMismatch.length > 0 ? 'LayoutChanged' : 'Incomplete') : 'Needed',
      reason: obs
        ? obs.layoutMismatch.length > 0
          ? `its maps have an older layout (${obs.layoutMismatch.join('; ')}): rebuilding it (counts restart)`
          : `incomplete counter (missing ${[obs.program ? '' : 'program', ...obs.missingMaps.map((m) => `map ${m}`)].filter(Boolean).join(', ')}): rebuilding it`
        : `polic${desired.policies.length === 1 ? 'y' : 'ies'} ${desired.policies.map((p) => p.name).join(', ')} count syscalls`,
      after: 'count_syscalls on the raw tracepoint sys_enter',
      op: { type: 'createCounter', dir },
    });
  } else {
    changed = programActions(desired, obs, actions) || changed;
  }

  // Slots.
  const observedSlots = broken ? [] : obs!.slots;
  const records = broken ? [] : obs!.policies;
  const slotOf = assignSlots(desired.policies, records, keptSlots);
  // Policies without a slot (the others are kept for failed files or unreadable cgroups) are not applied.
  const placed = desired.policies.filter((p) => slotOf.has(p.name));
  for (const p of desired.policies.filter((x) => !slotOf.has(x.name)))
    problems.push({
      policy: p.name,
      sourceFile: p.sourceFile,
      condition: 'Failed',
      reason: 'CounterFull',
      message: `every one of the ${MAX_POLICIES} slots of the counter is taken (some kept for policies that cannot be applied now); ${p.name} is not applied`,
    });
  const keptAll = kept.filter((r) => observedSlots.find((s) => s.slot === r.slot)?.config.all).map((r) => r.slot);
  const usedSlots = [...keptSlots, ...slotOf.values()];
  const allMask = [...placed.filter((p) => p.syscalls === 'all').map((p) => slotOf.get(p.name)!), ...keptAll].reduce((m, s) => m | (1n << BigInt(s)), 0n);
  const nSlots = usedSlots.length === 0 ? 0 : Math.max(...usedSlots) + 1;
  const config = { allMask: allMask.toString(), nSlots };
  let configWritten = false;

  for (const p of placed) {
    const slot = slotOf.get(p.name)!;
    const have = observedSlots.find((s) => s.slot === slot);
    const rec = records.find((r) => r.name === p.name);
    const want = record(p, slot);
    const wantConfig = { inUse: true, groupBy: groupBits(p.groupBy), cgroup: p.cgroup !== null, all: p.syscalls === 'all' };
    // A fresh table when there is none, or the keys change meaning (groupBy), or its size (maxKeys), or the slot was someone else's.
    const tableFits = have?.table !== undefined && have.table.maxEntries === p.maxKeys && rec?.slot === slot && rec.maxKeys === p.maxKeys && rec.groupBy.join() === p.groupBy.join();
    const reasons: string[] = [];
    if (!tableFits) reasons.push(!have?.table ? 'no count table' : 'groupBy or maxKeys changed: a fresh count table (counts restart)');
    if (!have || JSON.stringify(have.config) !== JSON.stringify(wantConfig)) reasons.push('slot config');
    if (!sameList(have?.syscalls ?? [], syscallList(p.syscalls))) reasons.push('syscalls');
    if ((rec?.cgroupId ?? null) !== (p.cgroup?.id ?? null) || (rec?.cgroupPath ?? null) !== (p.cgroup?.path ?? null)) reasons.push('cgroup');
    if (JSON.stringify(rec) !== JSON.stringify(want)) reasons.push('record');
    if (reasons.length === 0) continue;
    changed = true;
    configWritten = true;
    const write: SlotWrite = { slot, config: wantConfig, syscalls: syscallList(p.syscalls), ...(tableFits ? {} : { newTable: p.maxKeys }), cgroup: p.cgroup && { cgroupPath: p.cgroup.path, cgroupId: p.cgroup.id }, record: want, allMask: config.allMask, nSlots };
    actions.push({
      ...base,
      kind: rec ? 'update' : 'create',
      phase: 'add',
      object: `${OBJECT}: policy ${p.name} (slot ${slot})`,
      policy: p.name,
      code: rec ? (tableFits ? 'CountingChanged' : 'CountTableChanged') : 'NewPolicy',
      reason: rec ? `${reasons.join(', ')} to write (in place: no new program or link)` : `new policy from ${p.sourceFile}`,
      after: describe(p),
      op: { type: 'writeSlot', dir, write },
    });
  }

  // Slots no policy wants any more, and records of policies without one.
  const wanted = new Set([...slotOf.values(), ...keptSlots]);
  const slotRecords = (slot: number) => records.filter((r) => r.slot === slot && !slotOf.has(r.name) && !keptSlots.has(r.slot)).map((r) => r.name);
  for (const s of observedSlots as ObservedSlot[]) {
    if (wanted.has(s.slot)) continue;
    changed = true;
    configWritten = true;
    const names = slotRecords(s.slot);
    actions.push({
      ...base,
      kind: 'delete',
      phase: 'remove',
      object: `${OBJECT}: slot ${s.slot}`,
      code: names.length ? 'Unused' : 'LeftByInterruptedRun',
      reason: names.length ? `no policy ${names.join(', ')} any more` : 'a slot no record names (left by an interrupted run)',
      op: { type: 'clearSlot', dir, slot: s.slot, allMask: config.allMask, nSlots, deleteRecords: names },
    });
  }
  const cleared = new Set(observedSlots.filter((s) => !wanted.has(s.slot)).map((s) => s.slot));
  const orphanRecords = [
    ...records.filter((r) => !slotOf.has(r.name) && !kept.includes(r) && !cleared.has(r.slot)).map((r) => r.name),
    ...(broken ? [] : obs!.badRecords.filter((b) => !slotOf.has(b.name)).map((b) => b.name)),
  ];
  if (orphanRecords.length > 0) {
    changed = true;
    actions.push({ ...base, kind: 'delete', phase: 'remove', object: `${OBJECT}: records`, code: 'RecordsOutdated', reason: `drop ${orphanRecords.join(', ')}`, op: { type: 'deleteRecords', dir, names: orphanRecords } });
  }
  if (!configWritten && !broken && (obs!.config?.allMask.toString() !== config.allMask || obs!.config?.nSlots !== nSlots)) {
    changed = true;
    actions.push({ ...base, kind: 'update', phase: 'add', object: `${OBJECT}: config`, code: 'ConfigOutdated', reason: `slots in use: ${nSlots}, counting every syscall: mask ${config.allMask}`, op: { type: 'writeCounterConfig', dir, allMask: config.allMask, nSlots } });
  }
  if (!changed) actions.push({ ...base, kind: 'noop', phase: 'add', object: OBJECT, code: 'UpToDate', reason: 'up to date', op: { type: 'none' } });
  return { actions, problems };
}

/** The program and link of an intact counter: finish an interrupted upgrade, attach a missing link, upgrade. Returns whether it acted. */
function programActions(desired: DesiredCounters, obs: ObservedCounter, actions: CounterAction[]): boolean {
  const base = { domain: 'syscalls' };
  let changed = false;
  const finishing = swapInterruptedAfterUpdate(obs, obs.link?.progId) || (!obs.program && obs.programNext !== undefined);
  const program = finishing ? obs.programNext! : obs.program!;
  if (finishing) {
    changed = true;
    actions.push({
      ...base,
      kind: 'update',
      phase: 'dispatcher',
      object: `${OBJECT}: program`,
      code: 'FinishUpgrade',
      reason: `an interrupted upgrade left program ${program.id} running from program_next: pinning it as the program`,
      before: obs.program ? `program ${obs.program.id} tag ${obs.program.tag} (no longer running)` : 'no program pin',
      after: `program ${program.id} tag ${program.tag}`,
      op: { type: 'finishUpgrade', dir: obs.dir },
    });
  }
  // No tag when no policy loaded at all (their files failed, the counter is kept for them): the program stays as it is.
  const upgrade = desired.tag !== '' && program.tag !== desired.tag;
  if (upgrade) {
    changed = true;
    actions.push({
      ...base,
      kind: 'replace',
      phase: 'dispatcher',
      object: `${OBJECT}: program`,
      code: 'BytecodeChanged',
      reason: `bytecode changed (tag ${program.tag} -> ${desired.tag}): a new link with the new program replaces the old one; counts stay (a raw tracepoint link cannot swap programs, so a syscall in that instant may be counted twice)`,
      before: `program ${program.id} tag ${program.tag}`,
      after: `tag ${desired.tag}`,
      op: { type: 'replaceCounterProgram', dir: obs.dir },
    });
  } else if (!obs.link || obs.link.progId !== program.id) {
    changed = true;
    actions.push({
      ...base,
      kind: obs.link ? 'replace' : 'create',
      phase: 'dispatcher',
      object: `${OBJECT}: link`,
      code: obs.link ? 'LinkRunsOtherProgram' : 'NotAttached',
      reason: obs.link ? `link ${obs.link.id} runs program ${obs.link.progId}, not the pinned program ${program.id}: a new link replaces it` : 'it is not attached (no link): attaching the pinned program to sys_enter',
      after: 'raw tracepoint link on sys_enter',
      op: { type: 'attachCounter', dir: obs.dir },
    });
  }
  for (const s of obs.stray)
    if (!(finishing && s === `${obs.dir}/program_next`))
      actions.push({ ...base, kind: 'delete', phase: 'gc', object: s, code: 'LeftByInterruptedRun', reason: 'left behind by an interrupted run', op: { type: 'removeStray', path: s } });
  return changed || obs.stray.length > 0;
}
