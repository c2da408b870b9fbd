/**
 * planPrograms(desired, observed): the pure plan for Program policies. Each
 * policy is its own failure domain (`program <name>`): its directory is
 * created, upgraded (a new object whose maps have the same signature: the
 * program is swapped in its links, maps and their entries kept), replaced
 * (maps that changed: the plan says which and how many entries are lost),
 * given its declared entries, attached and detached target by target, or
 * removed. No I/O.
 */
import { swapInterruptedAfterUpdate } from '../../bpf/program-swap.js';
import type { KindPlan, PlanEnv } from '../../reconciler/kind.js';
import type { Action, PlanProblem } from '../../reconciler/model.js';
import type { AttachTarget } from './layout.js';
import type { DesiredProgram, DesiredPrograms, ObservedProgram, ObservedPrograms, ProgramOperation } from './model.js';

type ProgramAction = Action<ProgramOperation>;

/** A short digest for messages. */
function short(sha: string): string {
  return sha.slice(0, 12);
}

function targetName(t: AttachTarget): string {
  switch (t.kind) {
    case 'xdp':
      return `xdp ${t.ifname}${t.netns ? ` (${t.netns})` : ''} mode ${t.mode}`;
    case 'tcx':
      return `tc ${t.direction} ${t.ifname}${t.netns ? ` (${t.netns})` : ''}`;
    case 'tracepoint':
      return `tracepoint ${t.category}:${t.name}`;
    case 'cgroup':
      return `cgroup ${t.type} ${t.cgroupPath}`;
  }
}

/** What a replace loses: the maps whose layout changed or that go away, with their entry counts when known. */
function lostState(d: DesiredProgram, o: ObservedProgram): string {
  const wanted = new Map(d.maps.map((m) => [m.name, m]));
  // Every map is created anew; say which of them changed and what each held.
  const lost = o.maps.map((m) => {
    const w = wanted.get(m.name);
    const change = !w ? 'gone' : w.mapType !== m.mapType || w.keySize !== m.keySize || w.valueSize !== m.valueSize || w.maxEntries !== m.maxEntries ? 'changed' : 'same size';
    return `${m.name} (${change})`;
  });
  return lost.length === 0 ? 'no map state' : `the contents of ${lost.join(', ')}`;
}

/**
 * Computes the Program actions. Policies from files that failed to load, and
 * those the resolver could not resolve (`desired.keep`), keep their pins.
 * Pure and deterministic.
 */
export function planPrograms(desired: DesiredPrograms, observed: ObservedPrograms, env: PlanEnv): KindPlan {
  const actions: ProgramAction[] = [];
  const problems: PlanProblem[] = desired.problems.map((p) => ({ ...p }));
  const wanted = new Map(desired.policies.map((p) => [p.name, p]));
  const loaded = new Set(desired.status.map((p) => p.name));
  const keep = new Set(desired.keep);

  for (const o of observed.programs) {
    const d = wanted.get(o.name);
    const base = { domain: `program ${o.name}`, policy: o.name };
    if (o.unreadable) {
      if (d || loaded.has(o.name)) problems.push({ policy: o.name, sourceFile: d?.sourceFile, condition: 'Failed', reason: 'PinsUnreadable', message: `${o.dir}: ${o.unreadable}` });
      actions.push({ ...base, kind: 'noop', phase: 'add', object: `program ${o.name}`, code: 'PinsUnreadable', reason: `its pins cannot be read (${o.unreadable}): left as it is`, op: { type: 'none' } });
      continue;
    }
    if (d) continue;
    const fromFailedFile = o.record !== undefined && env.failedFiles.has(o.record.sourceFile) && !loaded.has(o.name);
    if (keep.has(o.name) || fromFailedFile) continue;
    actions.push({
      ...base,
      kind: 'delete',
      phase: 'remove',
      object: `program ${o.name}`,
      code: loaded.has(o.name) ? 'NotApplied' : 'PolicyRemoved',
      reason: loaded.has(o.name) ? 'the policy is loaded but cannot be applied now' : 'no policy defines it any more',
      before: o.record ? `${o.record.program} of ${o.record.object} (sha256 ${short(o.record.sha256)}), program id ${o.program?.id ?? 'none'}` : `program id ${o.program?.id ?? 'none'}`,
      op: { type: 'removeProgram', dir: o.dir },
    });
  }

  const observedByName = new Map(observed.programs.map((o) => [o.name, o]));
  for (const d of desired.policies) {
    const o = observedByName.get(d.name);
    if (o?.unreadable) continue;
    const base = { domain: `program ${d.name}`, policy: d.name };
    const object = `program ${d.name}`;
    // The program an interrupted upgrade left running: program_next as soon as one link runs it (the swap went that far), else what the first attached link runs.
    const running = o?.programNext && o.links.some((l) => l.attached && l.progId === o.programNext!.id) ? o.programNext.id : o?.links.find((l) => l.attached)?.progId;
    const finishing = o?.programNext !== undefined && swapInterruptedAfterUpdate(o, running);
    // An interrupted upgrade: finish it when the links already run program_next, else drop the stray pin.
    if (o?.programNext) {
      if (finishing)
        actions.push({ ...base, kind: 'update', phase: 'add', object, code: 'FinishUpgrade', reason: 'an interrupted upgrade left the new program running: finish it', op: { type: 'finishUpgrade', dir: d.dir } });
      else actions.push({ ...base, kind: 'delete', phase: 'gc', object: `${object}: program_next`, code: 'Stray', reason: 'left by an interrupted upgrade; nothing runs it', op: { type: 'removeStray', path: `${d.dir}/program_next` } });
    }
    for (const s of o?.strays ?? [])
      actions.push({ ...base, kind: 'delete', phase: 'gc', object: `${object}: ${s}`, code: 'Stray', reason: 'left by an interrupted operation', op: { type: 'removeStray', path: `${d.dir}/${s}` } });

    const complete = o && o.record && (o.program || o.programNext) && d.maps.every((m) => !/^[A-Za-z0-9_-]+$/.test(m.name) || o.maps.some((x) => x.name === m.name));
    const after = `${d.program} of ${d.objectPath} (sha256 ${short(d.sha256)})`;
    let fresh = false;
    if (!o || !complete) {
      fresh = true;
      actions.push({
        ...base,
        kind: o ? 'replace' : 'create',
        phase: 'add',
        object,
        code: o ? 'PinsIncomplete' : 'ProgramMissing',
        reason: o ? `its pins are incomplete (${o.recordProblem ?? (o.record ? 'a map or the program is missing' : 'no record')}): load it anew` : 'the policy is new: load, pin and write its declared entries',
        after,
        op: { type: 'createProgram', desired: d },
      });
    } else {
      const r = o.record!;
      if (r.sha256 !== d.sha256 || r.program !== d.program) {
        // After an interrupted upgrade is finished (above), program_next is the program pinned and run: swap from it.
        const current = finishing ? o.programNext : o.program;
        if (r.mapsSignature === d.mapsSignature && current) {
          actions.push({
            ...base,
            kind: 'update',
            phase: 'add',
            object,
            code: 'ObjectChanged',
            reason: `the object changed (sha256 ${short(r.sha256)} → ${short(d.sha256)}); its maps have the same types and sizes: the program is swapped atomically in its links and the maps keep their contents (global variables start anew)`,
            before: `${r.program} of ${r.object} (sha256 ${short(r.sha256)}), program id ${current.id}`,
            after,
            op: { type: 'upgradeProgram', desired: d, expectedProgId: current.id },
          });
        } else {
          fresh = true;
          actions.push({
            ...base,
            kind: 'replace',
            phase: 'add',
            object,
            code: 'MapsIncompatible',
            reason: `the object changed (sha256 ${short(r.sha256)} → ${short(d.sha256)}) and its maps differ in names, types or sizes: the program and its maps are created anew; lost: ${lostState(d, o)}; its links are kept and switched to the new program in this pass`,
            before: `${r.program} of ${r.object} (sha256 ${short(r.sha256)})`,
            after,
            op: { type: 'createProgram', desired: d },
          });
        }
      }
      // The same object from another policy file (or path): the record must name them, since a failed file keeps only the pins whose record names it.
      const upgrading = r.sha256 !== d.sha256 || r.program !== d.program;
      if (!fresh && !upgrading && (r.sourceFile !== d.sourceFile || r.object !== d.objectPath))
        actions.push({
          ...base,
          kind: 'update',
          phase: 'add',
          object: `${object}: record`,
          code: 'SourceChanged',
          reason: `the policy now comes from ${d.sourceFile} (was ${r.sourceFile}), its object from ${d.objectPath} (same sha256): record it`,
          before: `${r.sourceFile}, ${r.object}`,
          after: `${d.sourceFile}, ${d.objectPath}`,
          op: { type: 'recordSource', dir: d.dir, sourceFile: d.sourceFile, object: d.objectPath },
        });
      if (!fresh && r.entriesHash !== d.entriesHash) {
        const now = new Set(d.entries.map((e) => `${e.map}\u0000${e.key}`));
        const deleteKeys = r.declaredKeys.filter((k) => !now.has(`${k.map}\u0000${k.key}`));
        actions.push({
          ...base,
          kind: 'update',
          phase: 'add',
          object: `${object}: map entries`,
          code: 'EntriesChanged',
          reason: `the declared map entries changed: write ${d.entries.length}${deleteKeys.length ? `, delete ${deleteKeys.length} no longer declared` : ''}`,
          op: { type: 'writeEntries', desired: d, deleteKeys },
        });
      }
    }

    // Attachments: after a create or replace every target is attached anew.
    const links = new Map((fresh ? [] : (o?.links ?? [])).map((l) => [l.pin, l]));
    // The program every link should run once this pass is done: program_next when the pass finishes its swap.
    const programId = fresh ? undefined : finishing ? o?.programNext?.id : (o?.program?.id ?? o?.programNext?.id);
    for (const t of d.targets) {
      const l = links.get(t.pin);
      const recorded = fresh ? undefined : o?.record?.targets.find((x) => x.pin === t.pin);
      let why: { code: string; reason: string } | undefined;
      // A load anew keeps the links its record names (createProgram): they are switched, not attached anew.
      const kept = fresh ? o?.links.find((x) => x.pin === t.pin && o.record?.targets.some((r) => r.pin === x.pin)) : undefined;
      if (kept) why = { code: 'ProgramReloaded', reason: `the program is loaded anew: switch link ${kept.id} to it, or attach anew (${targetName(t)})` };
      else if (!l) why = { code: 'LinkMissing', reason: `attach it (${targetName(t)})` };
      else if (!l.attached) why = { code: 'LinkDetached', reason: `its link ${l.id} was detached (${targetName(t)}): attach it again` };
      else if (programId !== undefined && l.progId !== programId) why = { code: 'LinkRunsOtherProgram', reason: `link ${l.id} runs program ${l.progId}, not ours (${programId}): update it` };
      else if (recorded && JSON.stringify(recorded) !== JSON.stringify(t)) why = { code: 'TargetChanged', reason: `the attachment changed (${targetName(recorded)} → ${targetName(t)}): attach it again` };
      if (why) actions.push({ ...base, kind: l || kept ? 'update' : 'create', phase: 'add', object: `${object}: ${t.pin}`, ...why, after: targetName(t), op: { type: 'attachTarget', desired: d, target: t } });
    }
    {
      // Links not wanted (a load anew keeps the links its record names), and targets the record names whose link pin is gone already (so the record says no more than what is attached).
      const gone = [...(o?.links ?? []).map((l) => ({ pin: l.pin, before: `link ${l.id}` })), ...(fresh ? [] : (o?.record?.targets ?? [])).filter((t) => !o?.links.some((l) => l.pin === t.pin)).map((t) => ({ pin: t.pin, before: `${targetName(t)}, link pin missing` }))];
      for (const g of gone)
        if (!d.targets.some((t) => t.pin === g.pin))
          actions.push({ ...base, kind: 'delete', phase: 'remove', object: `${object}: ${g.pin}`, code: 'TargetRemoved', reason: 'the policy no longer attaches here (or the interface is gone)', before: g.before, op: { type: 'detachTarget', dir: d.dir, pin: g.pin } });
    }
  }
  return { actions, problems };
}
