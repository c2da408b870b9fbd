/**
 * planFilters(desired, observed): the pure plan for PacketFilter policies.
 * It compares the filters the policies want with the filters pinned under
 * ROOT/filters and returns the actions that converge them, each with a
 * reason, in the same Action shape as the rest of the plan. No I/O.
 *
 * Per filter: a missing or broken one is built in full (maps, program, first
 * rule set, attachment); a changed program is swapped into the link
 * atomically; changed rules (and enforce/audit switches, which change the
 * decision entries and the config) are written into the inactive generation
 * and switched to (no new program, no new link); a filter no policy wants, or
 * whose interface vanished, is removed.
 */
import { DEFAULT_SLOT, MAX_SLOTS, encodeRuleset, encodedFingerprint, filterDir } from './layout.js';
import type { AttachmentRecord, AttachSpec, FilterPolicyRecord, ObservedFilter, ObservedFilters, RulesetWrite } from './store.js';
import { CompileError, compileRules } from './compile.js';
import { swapInterruptedAfterUpdate } from '../../bpf/program-swap.js';
import type { DesiredFilter, DesiredFilters, FilterOperation } from './model.js';
import type { KindPlan, PlanEnv } from '../../reconciler/kind.js';
import type { Action, PlanProblem } from '../../reconciler/model.js';
import { policyRecordChanges } from '../../reconciler/policy-records.js';

/** An action of this kind's plan. */
type FilterPlanAction = Action<FilterOperation>;

/** How a filter is named in actions: `filter xdp on eth0 (ino-4026531840, ifindex 2)`. */
export function filterObject(f: { hook: string; ifname?: string; ifindex: number; netnsKey: string }): string {
  return `filter ${f.hook} on ${f.ifname ?? `ifindex ${f.ifindex}`} (${f.netnsKey}, ifindex ${f.ifindex})`;
}

function slotKey(policy: string, rule: string): string {
  return `${policy}\u0000${rule}`;
}

/** Counter slots for the desired rules: kept where (policy, rule) already has one, else the lowest free ones. */
function assignSlots(want: DesiredFilter, have: ObservedFilter['slots']): { slots: number[]; fresh: RulesetWrite['newSlots']; stale: number[] } {
  const existing = new Map(have.map((s) => [slotKey(s.policy, s.rule), s.slot]));
  const used = new Set<number>([DEFAULT_SLOT]);
  const keep = new Set<string>();
  for (const r of want.rules) {
    const k = slotKey(r.policy, r.rule);
    const slot = existing.get(k);
    if (slot !== undefined && slot !== DEFAULT_SLOT && slot < MAX_SLOTS) {
      keep.add(k);
      used.add(slot);
    }
  }
  let next = 1;
  const fresh: RulesetWrite['newSlots'] = [];
  const slots = want.rules.map((r) => {
    const k = slotKey(r.policy, r.rule);
    if (keep.has(k)) return existing.get(k)!;
    while (used.has(next)) next++;
    used.add(next);
    fresh.push({ slot: next, policy: r.policy, rule: r.rule });
    return next;
  });
  const reused = new Set(fresh.map((f) => f.slot));
  const stale = have.filter((s) => !keep.has(slotKey(s.policy, s.rule)) && !reused.has(s.slot)).map((s) => s.slot);
  return { slots, fresh, stale };
}

function attachSpec(f: DesiredFilter): AttachSpec {
  return { netns: f.netns ?? null, netnsPath: f.netnsPath, ifname: f.ifname, ifindex: f.ifindex, hook: f.hook, method: f.method };
}

function describeRules(f: DesiredFilter, decisions: number): string {
  const drops = f.rules.filter((r) => r.action === 'drop').length;
  const audited = f.rules.filter((r) => r.action === 'drop' && r.audit).length;
  return `${f.rules.length} rules (${drops} drop${audited ? `, ${audited} of them audited` : ''}) of ${f.policies.map((p) => p.name).join(', ')}, ${decisions} decision entries, default ${f.defaultAction}${f.defaultAudit ? ' (audit)' : ''}`;
}

function methodText(method: string): string {
  return method === 'xdp' ? 'XDP link (native mode, generic where the driver lacks XDP)' : method === 'tcx' ? 'tcx link' : 'clsact qdisc + cls_bpf filter (no tcx before Linux 6.6)';
}

/**
 * Computes the filter actions. `env.failedFiles` are absolute paths of policy
 * files that failed to load: filters recording a policy from one are kept.
 * Each filter is its own failure domain (`filter <netns key>/<hook>-<ifindex>`).
 * A new filter's directory is under `env.root` (as the kind's other pins).
 * Pure and deterministic.
 */
export function planFilters(desired: DesiredFilters, observed: ObservedFilters, env: PlanEnv): KindPlan {
  const actions: FilterPlanAction[] = [];
  const problems: PlanProblem[] = desired.problems.map((p) => ({ ...p }));
  const failed = env.failedFiles;
  const keepPolicies = new Set(desired.keepPolicies);
  const keepNetns = new Set(desired.keepNetns);
  const wantByKey = new Map(desired.filters.map((f) => [f.key, f]));
  const obsByKey = new Map(observed.filters.map((f) => [f.key, f]));
  const desiredNames = new Set(desired.policies.map((p) => p.name));
  const keys = [...new Set([...obsByKey.keys(), ...wantByKey.keys()])].sort();

  for (const key of keys) {
    const want = wantByKey.get(key);
    const obs = obsByKey.get(key);
    const object = filterObject(want ?? { ...obs!, ifname: obs!.attachment?.ifname });
    const base = { domain: `filter ${key}` };
    const linkGone = obs?.link !== undefined && !obs.link.attached;

    // Pins that cannot be read (an error other than ENOENT): nothing is known, so nothing is touched.
    if (obs?.error) {
      for (const p of want?.policies ?? [])
        problems.push({ policy: p.name, sourceFile: p.sourceFile, condition: 'Failed', reason: 'PinsUnreadable', message: `${object} (${obs.dir}): ${obs.error}` });
      actions.push({ ...base, kind: 'noop', phase: 'add', object, code: 'PinsUnreadable', reason: `its pins cannot be read (${obs.error}): left as it is`, op: { type: 'none' } });
      continue;
    }

    // Filters whose state must stay as it is: a policy's file is broken or its namespace unresolvable.
    const keptFor = (obs?.policies ?? []).filter(
      (r) => keepPolicies.has(r.name) || (failed.has(r.sourceFile) && !desiredNames.has(r.name)),
    );
    // A kept filter whose link is detached stays too while its interface is there (a desired filter of
    // another policy has the same key); without one, its interface is gone and it is removed below.
    if (obs && (keepNetns.has(obs.netnsKey) || keptFor.length > 0) && (!linkGone || want)) {
      actions.push({
        ...base,
        kind: 'noop',
        phase: 'add',
        object,
        code: keptFor.length ? 'KeptForPolicy' : 'InterfacesUnlisted',
        reason: keptFor.length
          ? `policy ${keptFor.map((r) => r.name).join(', ')} cannot be applied now (invalid file or unresolvable namespace): keeping the last applied state`
          : `the interfaces of ${obs.attachment?.netns ?? 'its namespace'} cannot be listed: keeping the last applied state`,
        op: { type: 'none' },
      });
      // Its last applied state is attached: a missing or detached link is attached again with the pinned
      // program (rules, records and program stay), unless another tool's XDP program took the interface.
      const link = obs.link;
      const intact = obs.program && obs.attachment && obs.missingMaps.length === 0 && obs.layoutMismatch.length === 0;
      const taken = want?.hook === 'xdp' && want.xdpProgs.some((x) => x.progId !== obs.program?.id && x.progId !== link?.progId);
      if (want && intact && !taken && (!link || !link.attached))
        actions.push({
          ...base,
          kind: link ? 'replace' : 'create',
          phase: 'dispatcher',
          object: `${object}: attachment`,
          code: link ? 'LinkDetached' : 'NotAttached',
          reason: `${link ? 'its link was detached' : 'it is not attached (no link)'}: attaching the pinned program again, the rest is kept as it is`,
          before: link ? `${link.method}${link.id ? ` link ${link.id}` : ''} (detached)` : undefined,
          after: methodText(want.method),
          op: { type: 'attachFilter', dir: obs.dir, spec: attachSpec(want), previous: obs.attachment },
        });
      continue;
    }

    if (!want) {
      if (!obs) continue;
      const reason = linkGone
        ? `interface ${obs.attachment?.ifname ?? `ifindex ${obs.ifindex}`} is gone (its link reports attached: false)`
        : obs.policies.length === 0 && !obs.attachment
          ? 'incomplete filter left by an interrupted run'
          : `no policy filters ${obs.hook} on ${obs.attachment?.ifname ?? `ifindex ${obs.ifindex}`} any more`;
      actions.push({
        ...base,
        kind: 'delete',
        phase: 'remove',
        object,
        code: linkGone ? 'InterfaceGone' : obs.policies.length === 0 && !obs.attachment ? 'LeftByInterruptedRun' : 'Unused',
        reason,
        before: obs.program ? `program ${obs.program.id}, ${obs.link ? `${obs.link.method} ${obs.link.id || ''}`.trim() : 'not attached'}, ${obs.slots.length} rules of ${obs.policies.map((p) => p.name).join(', ') || 'no policy'}` : 'partial',
        op: { type: 'removeFilter', dir: obs.dir },
      });
      continue;
    }

    const failPolicies = (reason: string, message: string) => {
      for (const p of want.policies) problems.push({ policy: p.name, sourceFile: p.sourceFile, condition: 'Failed', reason, message });
    };

    // Another tool's XDP program on the interface: reported, never replaced.
    const ours = new Set([obs?.program?.id, obs?.link?.progId].filter((x): x is number => x !== undefined));
    const foreign = want.hook === 'xdp' ? want.xdpProgs.filter((x) => !ours.has(x.progId)) : [];
    const broken = !obs || !obs.program || obs.missingMaps.length > 0 || obs.layoutMismatch.length > 0 || !obs.attachment;
    if (foreign.length > 0 && (broken || !obs?.link?.attached)) {
      failPolicies(
        'XdpConflict',
        `interface ${want.ifname} already runs XDP program ${foreign.map((f) => `${f.progId} (${f.mode} mode)`).join(', ')} of another tool: not replacing it`,
      );
      if (obs && broken) actions.push({ ...base, kind: 'delete', phase: 'remove', object, code: 'XdpConflict', reason: 'incomplete filter, and the interface belongs to another XDP program', op: { type: 'removeFilter', dir: obs.dir } });
      continue;
    }
    if (foreign.length > 0)
      for (const p of want.policies)
        problems.push({
          policy: p.name,
          sourceFile: p.sourceFile,
          condition: 'Degraded',
          reason: 'XdpShared',
          message: `interface ${want.ifname} also runs XDP program ${foreign.map((f) => `${f.progId} (${f.mode} mode)`).join(', ')} of another tool`,
        });

    // Rules: slots, tables, fingerprint.
    const { slots, fresh, stale } = assignSlots(want, broken ? [] : obs.slots);
    let write: RulesetWrite;
    let fingerprint: string;
    let decisions: number;
    try {
      const compiled = compileRules(
        want.rules.map((r, i) => ({ ...r, slot: slots[i]! })),
        { action: want.defaultAction, audit: want.defaultAudit, sample: want.defaultSample },
      );
      const encoded = encodeRuleset(compiled);
      fingerprint = encodedFingerprint(encoded);
      decisions = compiled.decisions.length;
      write = { encoded, newSlots: fresh, staleSlots: stale };
    } catch (err) {
      if (!(err instanceof CompileError)) throw err;
      failPolicies('RulesTooLarge', `the rules on ${want.ifname} (${want.hook}) cannot be compiled: ${err.message}`);
      continue;
    }
    const policyRecords: FilterPolicyRecord[] = want.policies.map((p) => ({ v: 1, name: p.name, sourceFile: p.sourceFile, specHash: p.specHash }));

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
            : `incomplete filter (missing ${[obs.program ? '' : 'program', ...obs.missingMaps.map((m) => `map ${m}`), obs.attachment ? '' : 'attachment record'].filter(Boolean).join(', ')}): rebuilding it`
          : `polic${want.policies.length === 1 ? 'y' : 'ies'} ${want.policies.map((p) => p.name).join(', ')} filter${want.policies.length === 1 ? 's' : ''} ${want.hook} on ${want.ifname}`,
        after: `${describeRules(want, decisions)}; ${methodText(want.method)}`,
        op: { type: 'createFilter', dir: obs?.dir ?? filterDir(env.root, want.netnsKey, want.hook, want.ifindex), spec: attachSpec(want), rules: write, policies: policyRecords },
      });
      continue;
    }

    let changed = false;
    const tag = want.hook === 'xdp' ? desired.tags.xdp : desired.tags.tc;
    // A crash between the link update and the rename left the new program running from program_next: finish that first.
    const finishing = swapInterruptedAfterUpdate(obs, obs.link?.attached ? obs.link.progId : undefined);
    const program = finishing ? obs.programNext! : obs.program!;
    if (finishing) {
      changed = true;
      actions.push({
        ...base,
        kind: 'update',
        phase: 'dispatcher',
        object: `${object}: program`,
        code: 'FinishUpgrade',
        reason: `an interrupted upgrade left program ${program.id} running from program_next: pinning it as the program`,
        before: `program ${obs.program!.id} tag ${obs.program!.tag} (no longer running)`,
        after: `program ${program.id} tag ${program.tag}`,
        op: { type: 'finishUpgrade', dir: obs.dir },
      });
    }
    // The attachment first, then the program: attachFilter attaches the pinned program, so an upgrade of
    // a filter whose link is missing, detached or of another method swaps the new program into the new
    // attachment (BPF_F_REPLACE expects the pinned program, which it runs). A program cannot be swapped
    // into a link that is missing (ENOENT) or detached (ENOLINK); and should the new program fail to load,
    // the reattached old one keeps filtering.
    const upgrade = program.tag !== tag;
    const link = obs.link;
    const rec = obs.attachment!;
    const usable = link !== undefined && link.attached && link.method === want.method;
    if (!usable) {
      changed = true;
      actions.push({
        ...base,
        kind: link ? 'replace' : 'create',
        phase: 'dispatcher',
        object: `${object}: attachment`,
        code: !link ? 'NotAttached' : !link.attached ? 'LinkDetached' : 'AttachMethodChanged',
        reason:
          (!link
            ? 'it is not attached (no link)'
            : !link.attached
              ? 'its link was detached'
              : `it is attached with ${link.method}, but this kernel wants ${want.method}`) +
          (upgrade ? `: attaching the pinned program ${program.id}, which the upgrade below replaces in the new attachment` : ''),
        before: link ? `${link.method}${link.id ? ` link ${link.id}` : ''}${link.attached ? '' : ' (detached)'}` : undefined,
        after: methodText(want.method),
        op: { type: 'attachFilter', dir: obs.dir, spec: attachSpec(want), previous: rec },
      });
    } else if (link.progId !== program.id && !upgrade) {
      changed = true;
      // Our attachment runs a program we did not pin (someone updated our link). An interface takes one
      // XDP link, so a second one would be refused (EBUSY): an XDP or tcx link is updated in place, with
      // a fresh copy of the pinned program (same object, same maps; BPF_F_REPLACE expects what the link
      // runs now). Our cls_bpf filter is replaced with the pinned program (tc filter replace).
      const inPlace = link.method !== 'cls_bpf';
      actions.push({
        ...base,
        kind: 'replace',
        phase: 'dispatcher',
        object: `${object}: attachment`,
        code: 'LinkRunsOtherProgram',
        reason: `the attachment runs program ${link.progId}, not the pinned program ${program.id}${inPlace ? ': the pinned program is swapped into the same link (atomic link update)' : ''}`,
        before: `${link.method}${link.id ? ` link ${link.id}` : ''} running program ${link.progId}`,
        after: inPlace ? `the same link running tag ${tag}` : methodText(want.method),
        op: inPlace ? { type: 'replaceFilterProgram', dir: obs.dir, expectedProgId: link.progId } : { type: 'attachFilter', dir: obs.dir, spec: attachSpec(want), previous: rec },
      });
    }
    if (upgrade) {
      changed = true;
      const running = usable ? link.progId : program.id;
      actions.push({
        ...base,
        kind: 'replace',
        phase: 'dispatcher',
        object: `${object}: program`,
        code: 'BytecodeChanged',
        reason:
          `bytecode changed (tag ${program.tag} -> ${tag}): atomic link update, rules and counters stay` +
          (running !== program.id ? ` (the attachment runs program ${running}, not the pinned program ${program.id}: it runs the new one after the update)` : ''),
        before: `program ${program.id} tag ${program.tag}`,
        after: `tag ${tag}`,
        op: { type: 'replaceFilterProgram', dir: obs.dir, expectedProgId: running },
      });
    }
    for (const s of obs.stray)
      if (!(finishing && s === `${obs.dir}/program_next`))
        actions.push({ ...base, kind: 'delete', phase: 'gc', object: s, code: 'LeftByInterruptedRun', reason: 'left behind by an interrupted run', op: { type: 'removeStray', path: s } });

    if (obs.fingerprint !== fingerprint || fresh.length > 0 || stale.length > 0) {
      changed = true;
      const gen = obs.activeGen ^ 1;
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
        before: `${obs.slots.length} rules, generation ${obs.activeGen}`,
        after: describeRules(want, decisions),
        op: { type: 'writeFilterRules', dir: obs.dir, gen, rules: write },
      });
    }

    // Records: the policies served, and the attachment (an interface may be renamed).
    const records = policyRecordChanges(obs.policies, obs.badRecords, policyRecords);
    const upserts: Array<FilterPolicyRecord | AttachmentRecord> = records.upserts;
    const deletes = records.deletes;
    if (rec.ifname !== want.ifname || rec.netnsPath !== want.netnsPath || (rec.netns ?? null) !== (want.netns ?? null))
      upserts.push({ ...rec, ifname: want.ifname, netnsPath: want.netnsPath, netns: want.netns ?? null });
    if (upserts.length > 0 || deletes.length > 0) {
      changed = true;
      actions.push({
        ...base,
        kind: 'update',
        phase: 'add',
        object: `${object}: records`,
        code: 'RecordsOutdated',
        reason: [upserts.length ? `record ${upserts.map((r) => ('name' in r ? r.name : `interface name ${want.ifname}`)).join(', ')}` : '', deletes.length ? `drop ${deletes.join(', ')}` : '']
          .filter(Boolean)
          .join('; '),
        op: { type: 'writeFilterRecords', dir: obs.dir, upserts, deletes },
      });
    }
    if (!changed) actions.push({ ...base, kind: 'noop', phase: 'add', object, code: 'UpToDate', reason: 'up to date', op: { type: 'none' } });
  }

  for (const s of observed.stray)
    actions.push({ kind: 'delete', phase: 'gc', object: s, code: 'NotInLayout', reason: 'not part of the filter pin layout (left by an interrupted run or an older version)', op: { type: 'removeStray', path: s } });
  return { actions, problems };
}
