/**
 * planGuards(desired, observed): the pure plan for ConnectPolicy policies.
 * It compares the guards the policies want (one per cgroup) with the guards
 * pinned under ROOT/connect and returns the actions that converge them, each
 * with a reason. No I/O.
 *
 * Per guard: a missing or broken one is built in full (maps, programs, first
 * rule set, four links); a hook whose link is missing or detached is attached
 * again; a changed program is swapped into its link atomically (the link id
 * stays); changed rules (and audit/enforce switches) are written into the
 * inactive generation and switched to; a guard no policy wants, or whose
 * cgroup is gone, is removed.
 */
import { swapInterruptedAfterUpdate } from '../../bpf/program-swap.js';
import type { KindPlan, PlanEnv } from '../../reconciler/kind.js';
import type { Action, PlanProblem } from '../../reconciler/model.js';
import { policyRecordChanges } from '../../reconciler/policy-records.js';
import { compileGuard, GuardCompileError, type GuardPolicy } from './compile.js';
import { encodeGeneration, generationFingerprint, GUARD_HOOKS, guardDir, MAX_SLOTS, splitEntries } from './layout.js';
import type { DesiredGuard, DesiredGuards, GuardOperation } from './model.js';
import type { GenerationWrite, GuardPolicyRecord, GuardRecord, ObservedGuard, ObservedGuards } from './store.js';

type GuardPlanAction = Action<GuardOperation>;

/** How a guard is named in actions: `connect guard on /sys/fs/cgroup/app (cg-1234)`. */
export function guardObject(g: { key: string; cgroupPath?: string }): string {
  return `connect guard on ${g.cgroupPath ?? 'a removed cgroup'} (${g.key})`;
}

function slotKey(policy: string, rule: string): string {
  return `${policy}\u0000${rule}`;
}

/** Counter slots: kept where (policy, rule) already has one, else the lowest free ones. Rule "" is a policy's default. */
function assignSlots(want: DesiredGuard, have: ObservedGuard['slots']): { slotOf: Map<string, number>; fresh: GenerationWrite['newSlots']; stale: number[] } {
  const wanted = want.policies.flatMap((p) => [slotKey(p.name, ''), ...p.rules.map((r) => slotKey(p.name, r.rule))]);
  const existing = new Map(have.map((s) => [slotKey(s.policy, s.rule), s.slot]));
  const slotOf = new Map<string, number>();
  const used = new Set<number>([0]);
  for (const k of wanted) {
    const slot = existing.get(k);
    if (slot !== undefined && slot > 0 && slot < MAX_SLOTS && !used.has(slot)) {
      slotOf.set(k, slot);
      used.add(slot);
    }
  }
  const fresh: GenerationWrite['newSlots'] = [];
  let next = 1;
  for (const k of wanted) {
    if (slotOf.has(k)) continue;
    while (used.has(next)) next++;
    used.add(next);
    slotOf.set(k, next);
    const [policy, rule] = k.split('\u0000') as [string, string];
    fresh.push({ slot: next, policy, rule });
  }
  const stale = have.filter((s) => slotOf.get(slotKey(s.policy, s.rule)) !== s.slot && !fresh.some((f) => f.slot === s.slot)).map((s) => s.slot);
  return { slotOf, fresh, stale };
}

/** One generation of a guard's rules, ready to write. */
export interface GuardGeneration {
  write: GenerationWrite;
  fingerprint: string;
  /** Number of decision entries. */
  decisions: number;
}

/**
 * Compiles and encodes the rules of `want` into generation `gen`, with
 * counter slots kept from `have` where they exist (`[]` for a new guard).
 * Also what `ebpf-policy test` writes into a private load. Throws
 * GuardCompileError when the rules do not fit.
 */
export function guardGeneration(want: DesiredGuard, have: ObservedGuard['slots'], gen: number): GuardGeneration {
  const { slotOf, fresh, stale } = assignSlots(want, have);
  const policies: GuardPolicy[] = want.policies.map((p) => ({
    rules: p.rules.map((r) => ({ ...r, slot: slotOf.get(slotKey(p.name, r.rule))! })),
    defaultAction: p.defaultAction,
    defaultAudit: p.defaultAudit,
    defaultSlot: slotOf.get(slotKey(p.name, ''))!,
    sample: p.sample,
  }));
  const compiled = compileGuard(policies);
  const encoded = encodeGeneration(gen, compiled);
  const fingerprint = generationFingerprint({ addr: splitEntries(encoded.addr), port: splitEntries(encoded.port), decision: splitEntries(encoded.decision), config: encoded.config });
  return { write: { encoded, newSlots: fresh, staleSlots: stale }, fingerprint, decisions: compiled.decisions.length };
}

function describeRules(want: DesiredGuard, decisions: number): string {
  const rules = want.policies.reduce((n, p) => n + p.rules.length, 0);
  const audit = want.policies.filter((p) => p.defaultAudit).map((p) => p.name);
  return `${rules} rules of ${want.policies.map((p) => p.name).join(', ')}, ${decisions} decision entries${audit.length ? `; audit mode: ${audit.join(', ')}` : ''}`;
}

/**
 * Computes the guard actions. `env.failedFiles` are absolute paths of policy
 * files that failed to load: guards recording a policy from one are kept.
 * Each guard is its own failure domain (`connect cg-<id>`). Pure and
 * deterministic.
 */
export function planGuards(desired: DesiredGuards, observed: ObservedGuards, env: PlanEnv): KindPlan {
  const actions: GuardPlanAction[] = [];
  const problems: PlanProblem[] = desired.problems.map((p) => ({ ...p }));
  const keepPolicies = new Set(desired.keepPolicies);
  const desiredNames = new Set(desired.policies.map((p) => p.name));
  const wantByKey = new Map(desired.guards.map((g) => [g.key, g]));
  const obsByKey = new Map(observed.guards.map((g) => [g.key, g]));
  const keys = [...new Set([...obsByKey.keys(), ...wantByKey.keys()])].sort();

  for (const key of keys) {
    const want = wantByKey.get(key);
    const obs = obsByKey.get(key);
    const object = guardObject({ key, cgroupPath: want?.cgroupPath ?? obs?.guard?.cgroupPath });
    const base = { domain: `connect ${key}` };
    const links = obs ? GUARD_HOOKS.map((h) => obs.hooks[h].link) : [];
    // The kernel detaches a removed cgroup's links a little later than the directory goes: either sign counts.
    const cgroupGone = !want && (obs?.cgroupPresent === false || (links.some((l) => l !== undefined) && links.every((l) => l === undefined || !l.attached)));

    if (obs?.error) {
      for (const p of want?.policies ?? [])
        problems.push({ policy: p.name, sourceFile: p.sourceFile, condition: 'Failed', reason: 'PinsUnreadable', message: `${object} (${obs.dir}): ${obs.error}` });
      actions.push({ ...base, kind: 'noop', phase: 'add', object, code: 'PinsUnreadable', reason: `its pins cannot be read (${obs.error}): left as it is`, op: { type: 'none' } });
      continue;
    }

    // Guards whose state must stay as it is: a policy's file is broken or its cgroup cannot be read now.
    const keptFor = (obs?.policies ?? []).filter((r) => keepPolicies.has(r.name) || (env.failedFiles.has(r.sourceFile) && !desiredNames.has(r.name)));
    if (obs && keptFor.length > 0 && !cgroupGone) {
      actions.push({
        ...base,
        kind: 'noop',
        phase: 'add',
        object,
        code: 'KeptForPolicy',
        reason: `policy ${keptFor.map((r) => r.name).join(', ')} cannot be applied now (invalid file or unreadable cgroup): keeping the last applied state`,
        op: { type: 'none' },
      });
      continue;
    }

    if (!want) {
      if (!obs) continue;
      const incomplete = obs.policies.length === 0 && !obs.guard;
      actions.push({
        ...base,
        kind: 'delete',
        phase: 'remove',
        object,
        code: cgroupGone ? 'CgroupGone' : incomplete ? 'LeftByInterruptedRun' : 'Unused',
        reason: cgroupGone
          ? `cgroup ${obs.guard?.cgroupPath ?? obs.cgroupId} is gone (${obs.cgroupPresent === false ? `no cgroup ${obs.cgroupId} at its path` : 'its links report attached: false'})`
          : incomplete
            ? 'incomplete guard left by an interrupted run'
            : `no policy guards cgroup ${obs.guard?.cgroupPath ?? obs.cgroupId} any more`,
        before: `${obs.slots.length} counter slots of ${obs.policies.map((p) => p.name).join(', ') || 'no policy'}`,
        op: { type: 'removeGuard', dir: obs.dir },
      });
      continue;
    }

    const guardRecord: GuardRecord = { v: 1, cgroupPath: want.cgroupPath, cgroupId: want.cgroupId };
    const policyRecords: GuardPolicyRecord[] = want.policies.map((p) => ({ v: 1, name: p.name, sourceFile: p.sourceFile, specHash: p.specHash }));
    const missingPrograms = obs ? GUARD_HOOKS.filter((h) => !obs.hooks[h].program && !obs.hooks[h].programNext) : [];
    const broken = !obs || missingPrograms.length > 0 || obs.missingMaps.length > 0 || obs.layoutMismatch.length > 0 || !obs.guard;

    // Rules: slots, tables, fingerprint.
    const gen = broken || obs.activeGen === undefined ? 0 : obs.activeGen ^ 1;
    let write: GenerationWrite;
    let fingerprint: string;
    let decisions: number;
    try {
      ({ write, fingerprint, decisions } = guardGeneration(want, broken ? [] : obs.slots, gen));
    } catch (err) {
      if (!(err instanceof GuardCompileError)) throw err;
      for (const p of want.policies)
        problems.push({ policy: p.name, sourceFile: p.sourceFile, condition: 'Failed', reason: 'RulesTooLarge', message: `the rules on cgroup ${want.cgroupPath} cannot be compiled: ${err.message}` });
      continue;
    }

    if (broken) {
      actions.push({
        ...base,
        kind: obs ? 'replace' : 'create',
        phase: 'dispatcher',
        object,
        code: obs ? (obs.layoutMismatch.length > 0 ? 'LayoutChanged' : 'Incomplete') : 'Needed',
        reason: obs
          ? obs.layoutMismatch.length > 0
            ? `its maps have an older layout (${obs.layoutMismatch.join('; ')}): rebuilding it (counters restart)`
            : `incomplete guard (missing ${[...missingPrograms.map((h) => `program ${h}`), ...obs.missingMaps.map((m) => `map ${m}`), obs.guard ? '' : 'guard record'].filter(Boolean).join(', ')}): rebuilding it`
          : `polic${want.policies.length === 1 ? 'y' : 'ies'} ${want.policies.map((p) => p.name).join(', ')} guard${want.policies.length === 1 ? 's' : ''} the connects of cgroup ${want.cgroupPath}`,
        after: `${describeRules(want, decisions)}; cgroup links for ${GUARD_HOOKS.join(', ')}`,
        op: { type: 'createGuard', dir: obs?.dir ?? guardDir(env.root, want.cgroupId), guard: guardRecord, rules: write, policies: policyRecords },
      });
      continue;
    }

    let changed = false;
    for (const hook of GUARD_HOOKS) {
      const h = obs.hooks[hook];
      const hookObject = `${object}: ${hook}`;
      const link = h.link;
      const finishing = swapInterruptedAfterUpdate(h, link?.attached ? link.progId : undefined);
      const program = finishing || !h.program ? h.programNext! : h.program;
      if (finishing || !h.program) {
        changed = true;
        actions.push({
          ...base,
          kind: 'update',
          phase: 'dispatcher',
          object: `${hookObject} program`,
          code: 'FinishUpgrade',
          reason: `an interrupted upgrade left program ${program.id} ${finishing ? 'running ' : ''}from program_next: pinning it as the program`,
          before: h.program ? `program ${h.program.id} tag ${h.program.tag} (no longer running)` : 'no program pin',
          after: `program ${program.id} tag ${program.tag}`,
          op: { type: 'finishUpgrade', dir: `${obs.dir}/${hook}` },
        });
      }
      const upgrade = program.tag !== desired.tags[hook];
      if (!link || !link.attached) {
        changed = true;
        actions.push({
          ...base,
          kind: link ? 'replace' : 'create',
          phase: 'dispatcher',
          object: `${hookObject} link`,
          code: link ? 'LinkDetached' : 'NotAttached',
          reason: `${link ? `its link ${link.id} was detached` : 'it is not attached (no link)'}: attaching the pinned program ${program.id} to cgroup ${want.cgroupPath}${upgrade ? ', which the upgrade below replaces in the new link' : ''}`,
          before: link ? `link ${link.id} (detached)` : undefined,
          after: `cgroup link (${hook})`,
          op: { type: 'attachGuardHook', dir: obs.dir, hook, guard: guardRecord },
        });
      } else if (link.progId !== program.id && !upgrade) {
        changed = true;
        actions.push({
          ...base,
          kind: 'replace',
          phase: 'dispatcher',
          object: `${hookObject} link`,
          code: 'LinkRunsOtherProgram',
          reason: `link ${link.id} runs program ${link.progId}, not the pinned program ${program.id}: a fresh copy of ours is swapped into the same link (atomic link update)`,
          before: `link ${link.id} running program ${link.progId}`,
          after: `link ${link.id} running tag ${desired.tags[hook]}`,
          op: { type: 'replaceGuardProgram', dir: obs.dir, hook, expectedProgId: link.progId },
        });
      }
      if (upgrade) {
        changed = true;
        const running = link?.attached ? link.progId : program.id;
        actions.push({
          ...base,
          kind: 'replace',
          phase: 'dispatcher',
          object: `${hookObject} program`,
          code: 'BytecodeChanged',
          reason: `bytecode changed (tag ${program.tag} -> ${desired.tags[hook]}): atomic link update, the link id, rules and counters stay`,
          before: `program ${program.id} tag ${program.tag}`,
          after: `tag ${desired.tags[hook]}`,
          op: { type: 'replaceGuardProgram', dir: obs.dir, hook, expectedProgId: running },
        });
      }
    }
    for (const s of obs.stray)
      if (!GUARD_HOOKS.some((h) => s === `${obs.dir}/${h}/program_next` && (swapInterruptedAfterUpdate(obs.hooks[h], obs.hooks[h].link?.progId) || !obs.hooks[h].program)))
        actions.push({ ...base, kind: 'delete', phase: 'gc', object: s, code: 'LeftByInterruptedRun', reason: 'left behind by an interrupted run', op: { type: 'removeStray', path: s } });

    const fresh = write.newSlots;
    const stale = write.staleSlots;
    if (obs.fingerprint !== fingerprint || fresh.length > 0 || stale.length > 0) {
      changed = true;
      actions.push({
        ...base,
        kind: obs.fingerprint === undefined ? 'create' : 'update',
        phase: 'add',
        object: `${object}: rules`,
        code: obs.fingerprint === undefined ? 'NoRules' : obs.fingerprint !== fingerprint ? 'RulesChanged' : 'CounterSlots',
        reason:
          obs.fingerprint === undefined
            ? 'no rule set written yet'
            : obs.fingerprint !== fingerprint
              ? `the rules changed: written to generation ${gen}, then switched to in one map write (no new program or link)`
              : `counter slots to ${fresh.length ? `add (${fresh.length})` : ''}${fresh.length && stale.length ? ' and ' : ''}${stale.length ? `remove (${stale.length})` : ''}`,
        before: `${obs.slots.length} counter slots, generation ${obs.activeGen ?? 'none'}`,
        after: describeRules(want, decisions),
        op: { type: 'writeGuardRules', dir: obs.dir, rules: write },
      });
    }

    const records = policyRecordChanges(obs.policies, obs.badRecords, policyRecords);
    const upserts: Array<GuardPolicyRecord | GuardRecord> = records.upserts;
    if (JSON.stringify(obs.guard) !== JSON.stringify(guardRecord)) upserts.push(guardRecord);
    const deletes = records.deletes;
    if (upserts.length > 0 || deletes.length > 0) {
      changed = true;
      actions.push({
        ...base,
        kind: 'update',
        phase: 'add',
        object: `${object}: records`,
        code: 'RecordsOutdated',
        reason: [upserts.length ? `record ${upserts.map((r) => ('name' in r ? r.name : `cgroup path ${want.cgroupPath}`)).join(', ')}` : '', deletes.length ? `drop ${deletes.join(', ')}` : '']
          .filter(Boolean)
          .join('; '),
        op: { type: 'writeGuardRecords', dir: obs.dir, upserts, deletes },
      });
    }
    if (!changed) actions.push({ ...base, kind: 'noop', phase: 'add', object, code: 'UpToDate', reason: 'up to date', op: { type: 'none' } });
  }

  for (const s of observed.stray)
    actions.push({ kind: 'delete', phase: 'gc', object: s, code: 'NotInLayout', reason: 'not part of the connect guard pin layout (left by an interrupted run or an older version)', op: { type: 'removeStray', path: s } });
  return { actions, problems };
}
