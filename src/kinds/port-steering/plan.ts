/**
 * The PortSteering plan: compares what the policies want with what the
 * dispatchers under ROOT/netns hold and returns the actions that converge one
 * to the other, each with a reason code and prose. Pure: no I/O.
 *
 * Failure domains: a dispatcher's own steps (`dispatcher ino-N`) and each
 * policy's steps (which also name their dispatcher's domain, so a failed
 * dispatcher skips its policies).
 */
import { EVERY_ADDRESS, idAllocator, bindingEntryCount, bindingShapes, packBindingEntries, PackedBindings } from './bindings.js';
import { DISPATCHER_LIMITS } from './layout.js';
import type { KindPlan, PlanEnv } from '../../reconciler/kind.js';
import type { Action, PlanProblem } from '../../reconciler/model.js';
import type { DesiredSteering, ObservedDispatcherState, PolicyRecord, RecordedBinding, SteeringDesired, SteeringObserved, SteeringOperation } from './model.js';
import { dispatcherDir } from './store.js';
import { swapInterruptedAfterUpdate } from '../../bpf/program-swap.js';
import { OWN_NETNS } from '../../bpf/netns.js';
import { compareCodeUnits } from '../../common/compare.js';

/**
 * Sorts binding keys (latin1 strings) into byte order, in place: the order of the key lists in a
 * plan, whatever order the map was read in. The default sort of an array of strings compares UTF-16
 * code units, which for latin1 strings is byte order and the order of compareCodeUnits, without a
 * comparator called per comparison (half the time for a million keys).
 */
function sortKeys(keys: string[]): string[] {
  return keys.sort();
}

/**
 * The keys of `keys` that no policy writes in this plan (`upsertKeys`: the set of those, built
 * when first asked for, so not for no keys); `keys` itself when nothing is written, as in a plain removal (looking a
 * million keys up in an empty set still hashes each one: ~100 ms).
 */
function withoutUpserts(keys: string[], upsertKeys: () => ReadonlySet<string>): string[] {
  if (keys.length === 0) return keys; // the set is only built when some removal needs it
  const upserting = upsertKeys();
  return upserting.size === 0 ? keys : keys.filter((k) => !upserting.has(k));
}

const MAX_DEST_ID = 65535;
const MAX_BINDING_ID = 65535;

/** An action of this kind's plan. */
type SteeringAction = Action<SteeringOperation>;

/** A one-line summary of a policy's spec, for diffs. */
export function describeSpec(r: Pick<PolicyRecord, 'protocol' | 'bindings' | 'targetText'>): string {
  const byPrefix = new Map<string, string[]>();
  for (const b of r.bindings) {
    const list = byPrefix.get(b.prefix) ?? [];
    list.push(b.start === b.end ? String(b.start) : `${b.start}-${b.end}`);
    byPrefix.set(b.prefix, list);
  }
  const parts = [...byPrefix].map(([prefix, ports]) => `${ports.join(',')}${prefix === '*' ? '' : ` on ${prefix}`}`);
  return `${r.protocol} ${parts.join('; ')} -> ${r.targetText}`;
}

/**
 * True when two plain JSON values would serialize to the same JSON text (the
 * same keys in the same order, undefined properties left out), without
 * serializing them: a no-op pass compares every policy's record.
 */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bs = b as unknown[];
    return a.length === bs.length && a.every((x, i) => sameJson(x ?? null, bs[i] ?? null));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  return ak.length === bk.length && ak.every((k, i) => k === bk[i] && sameJson(ao[k], bo[k]));
}

function sameRecord(a: PolicyRecord, b: PolicyRecord): boolean {
  return sameJson(a, b);
}

/**
 * True when the observed entries of a destination are exactly the expected ones, in the same order
 * or in reverse (a map read returns one policy's entries in trie order, which is usually one of
 * the two): a no-op pass then compares a policy's entries without hashing a key (and without
 * building a string for an expected one: its bytes are compared in place).
 */
function sameEntries(have: ReadonlyArray<{ key: string; bindingId: number }>, expected: PackedBindings): boolean {
  const n = expected.count;
  if (have.length !== n) return false;
  let forward = true;
  for (let i = 0; i < n && forward; i++) forward = have[i]!.bindingId === expected.bindingIdAt(i) && expected.keyEquals(i, have[i]!.key);
  if (forward) return true;
  for (let i = 0; i < n; i++) if (have[i]!.bindingId !== expected.bindingIdAt(n - 1 - i) || !expected.keyEquals(n - 1 - i, have[i]!.key)) return false;
  return true;
}

/** A policy record kept as it is in a dispatcher, and why. */
interface Retained {
  record: PolicyRecord;
  failedFile?: string;
  atLimit?: boolean;
  /** Kept because its new spec claims a binding a policy kept here holds: that policy's name. */
  claimsKeptBy?: string;
}

/** What every step of one dispatcher's plan shares. */
interface DispatcherContext {
  readonly obs: ObservedDispatcherState | undefined;
  readonly dir: string;
  /** `dispatcher KEY`: the dispatcher's object name and failure domain. */
  readonly object: string;
  readonly desired: SteeringDesired;
  readonly desiredByName: ReadonlyMap<string, DesiredSteering>;
  readonly failedFiles: ReadonlySet<string>;
  readonly add: (a: SteeringAction) => void;
  readonly problems: PlanProblem[];
}

/** A policy's planned record, the record it replaces and its newly allocated binding ids. */
interface PlannedRecord {
  p: DesiredSteering;
  record: PolicyRecord;
  previous?: PolicyRecord;
  fresh: number[];
}

/** A policy's expected entry count, the entries to write and the observed keys of its destination it does not want. */
interface EntryDiff {
  want: number;
  upserts: PackedBindings;
  unwanted: string[];
}

/**
 * Computes the actions that take `observed` to `desired`. Pure and
 * deterministic: the same inputs give the same plan. (Written as small
 * functions per step: V8 takes seconds and tens of MB to optimize one
 * function of this size, which the daemon's peak memory showed.)
 */
export function planSteering(desired: SteeringDesired, observed: SteeringObserved, env: PlanEnv): KindPlan {
  const actions: SteeringAction[] = [];
  const problems: PlanProblem[] = [];
  const add = (a: SteeringAction) => actions.push(a);
  const { applicable, desiredByName } = applicablePolicies(desired, env.failedFiles, problems);

  const observedByKey = new Map(observed.dispatchers.map((d) => [d.key, d]));
  const keys = [...new Set([...observedByKey.keys(), ...applicable.keys()])].sort();
  for (const key of keys) {
    const obs = observedByKey.get(key);
    const object = `dispatcher ${key}`;
    const ctx: DispatcherContext = { obs, dir: obs?.dir ?? dispatcherDir(env.root, key), object, desired, desiredByName, failedFiles: env.failedFiles, add, problems };
    planDispatcher(ctx, applicable.get(key) ?? []);
  }

  for (const s of observed.stray)
    add({ kind: 'delete', phase: 'gc', object: s, code: 'NotInLayout', reason: 'not part of the dispatcher pin layout (left by an interrupted run or an older version)', op: { type: 'removeStray', path: s } });
  return { actions, problems };
}

/** Which policies can be applied, grouped by network namespace key; the others become problems. */
function applicablePolicies(
  desired: SteeringDesired,
  failedFiles: ReadonlySet<string>,
  problems: PlanProblem[],
): { applicable: Map<string, DesiredSteering[]>; desiredByName: Map<string, DesiredSteering> } {
  const applicable = new Map<string, DesiredSteering[]>(); // netns key -> policies
  const desiredByName = new Map<string, DesiredSteering>();
  for (const p of desired.policies) {
    desiredByName.set(p.name, p);
    if (failedFiles.has(p.sourceFile)) {
      problems.push({
        policy: p.name,
        sourceFile: p.sourceFile,
        condition: 'Failed',
        reason: 'InvalidSourceFile',
        message: `${p.sourceFile} has errors; the policy keeps its last applied state until the file is fixed`,
      });
      continue;
    }
    if (!p.netnsKey.ok) {
      problems.push({ policy: p.name, sourceFile: p.sourceFile, condition: 'Failed', reason: 'NetnsNotFound', message: p.netnsKey.reason });
      continue;
    }
    if (!p.target.ok)
      problems.push({ policy: p.name, sourceFile: p.sourceFile, condition: 'Degraded', reason: 'TargetNotFound', message: p.target.reason });
    const list = applicable.get(p.netnsKey.key) ?? [];
    list.push(p);
    applicable.set(p.netnsKey.key, list);
  }
  return { applicable, desiredByName };
}

/** The plan of one dispatcher (network namespace) and of the policies it serves. */
function planDispatcher(ctx: DispatcherContext, candidates: DesiredSteering[]): void {
  const { obs, add, object: dispatcherObject } = ctx;
  const domain = dispatcherObject;

  // Pins that cannot be read (an error other than ENOENT): nothing is known, so nothing is touched.
  if (obs?.error) {
    for (const p of candidates)
      ctx.problems.push({ policy: p.name, sourceFile: p.sourceFile, condition: 'Failed', reason: 'PinsUnreadable', message: `${dispatcherObject} (${obs.dir}): ${obs.error}` });
    add({ kind: 'noop', phase: 'add', object: dispatcherObject, domain, code: 'PinsUnreadable', reason: `its pins cannot be read (${obs.error}): left as it is`, op: { type: 'none' } });
    return;
  }

  const retained = retainedRecords(ctx);
  const wanted = fitCapacity(ctx, notClaimingKept(ctx, candidates, retained), retained);
  const namespaceGone = obs?.link !== undefined && !obs.link.attached && wanted.length === 0;

  if (wanted.length === 0 && (retained.length === 0 || namespaceGone)) {
    if (obs) {
      add({
        kind: 'delete',
        phase: 'gc',
        object: dispatcherObject,
        domain,
        code: namespaceGone ? 'NamespaceGone' : 'Unused',
        reason: namespaceGone ? 'its network namespace is gone' : 'no policy uses this network namespace any more',
        before: obs.program ? `program ${obs.program.id}, link ${obs.link?.id ?? 'none'}, ${obs.records.length} policies` : 'partial',
        op: { type: 'removeDispatcher', dir: ctx.dir },
      });
    }
    return;
  }
  for (const { record: r, failedFile, atLimit, claimsKeptBy } of retained)
    add({
      kind: 'noop',
      phase: 'add',
      object: `policy ${r.name}`,
      policy: r.name,
      domain,
      code: failedFile ? 'KeptForInvalidFile' : atLimit ? 'KeptAtLimit' : claimsKeptBy ? 'KeptForClaimOnKept' : 'KeptForUnresolvedNamespace',
      reason: failedFile
        ? `${failedFile} failed to validate: keeping the last applied state`
        : atLimit
          ? 'it no longer fits in the dispatcher: keeping the last applied state'
          : claimsKeptBy
            ? `it now claims a binding that policy ${claimsKeptBy} keeps: keeping the last applied state`
            : `its network namespace cannot be resolved: keeping the last applied state`,
      op: { type: 'none' },
    });

  const { view, carried } = planDispatcherItself(ctx, wanted, retained);
  planCarried(ctx, carried);

  const entriesByDest = new Map<number, Array<{ key: string; destId: number; bindingId: number }>>();
  for (const e of view?.bindings ?? []) {
    let list = entriesByDest.get(e.destId);
    if (list === undefined) entriesByDest.set(e.destId, (list = []));
    list.push(e);
  }
  const plannedRecords = planRecords(wanted, view, carried);
  const upsertsOf = diffEntries(plannedRecords, entriesByDest);
  let upsertKeySet: Set<string> | undefined;
  /** Keys some policy of this dispatcher writes in this plan (built only when some removal needs it). */
  const upsertKeys = (): Set<string> => {
    if (upsertKeySet) return upsertKeySet;
    upsertKeySet = new Set();
    for (const { upserts } of upsertsOf.values()) for (let i = 0; i < upserts.count; i++) upsertKeySet.add(upserts.keyAt(i));
    return upsertKeySet;
  };
  for (const planned of plannedRecords) planPolicy(ctx, planned, upsertsOf.get(planned.p.name)!, view, entriesByDest, upsertKeys);

  const keep = new Set([...wanted.map((p) => p.name), ...retained.map((r) => r.record.name)]);
  planDepartures(ctx, view, keep, entriesByDest, upsertKeys);

  // Entries that belong to no policy (an interrupted run): garbage.
  const owned = new Set([...plannedRecords.map((x) => x.record.destId), ...retained.map((r) => r.record.destId)]);
  for (const r of view?.records ?? []) if (!keep.has(r.name)) owned.add(r.destId);
  const orphans = sortKeys(
    withoutUpserts(
      [...entriesByDest].filter(([destId]) => !owned.has(destId)).flatMap(([, list]) => list.map((e) => e.key)),
      upsertKeys,
    ),
  );
  if (orphans.length > 0)
    add({
      kind: 'delete',
      phase: 'gc',
      object: `${dispatcherObject}: bindings`,
      domain,
      code: 'OrphanEntries',
      reason: `${orphans.length} entries belong to no policy (left by an interrupted run)`,
      op: { type: 'deleteBindings', dir: ctx.dir, keys: orphans },
    });
}

/**
 * Records to keep as they are: their policy is defined in a file that failed (or, defined in no
 * loaded file, came from one that failed), or its namespace cannot be resolved right now.
 */
function retainedRecords(ctx: DispatcherContext): Retained[] {
  const retained: Retained[] = [];
  for (const r of ctx.obs?.records ?? []) {
    const d = ctx.desiredByName.get(r.name);
    if (!d) {
      if (ctx.failedFiles.has(r.sourceFile)) retained.push({ record: r, failedFile: r.sourceFile });
    } else if (ctx.failedFiles.has(d.sourceFile)) retained.push({ record: r, failedFile: d.sourceFile });
    else if (!d.netnsKey.ok) retained.push({ record: r });
  }
  return retained;
}

/**
 * The policies kept at their last applied state (`retained`: from a file that failed to validate,
 * or whose namespace cannot be resolved) still steer their bindings. A policy applied now may not
 * take one of those live bindings from them (the same protocol, prefix and port: the same LPM key),
 * whatever the validation of the loaded files says: a new file that conflicts with a live policy
 * would otherwise redirect its traffic, and the conflict check of the loaded files fails the later
 * of the two by load order, which may be the live one. Such a policy fails naming the binding and
 * the policy that holds it (one applied before keeps its last applied state, in `retained`);
 * returns the others.
 */
function notClaimingKept(ctx: DispatcherContext, candidates: DesiredSteering[], retained: Retained[]): DesiredSteering[] {
  if (retained.length === 0) return candidates;
  const held = new Map<string, Array<{ start: number; end: number; by: Retained }>>();
  const hold = (r: Retained) => {
    for (const b of r.record.bindings) {
      const k = `${r.record.protocol} ${b.prefix}`;
      const list = held.get(k);
      if (list === undefined) held.set(k, [{ start: b.start, end: b.end, by: r }]);
      else list.push({ start: b.start, end: b.end, by: r });
    }
  };
  retained.forEach(hold);
  const out: DesiredSteering[] = [];
  for (const p of candidates) {
    let clash: { port: number; prefix: string; by: Retained } | undefined;
    for (const shape of bindingShapes(p)) {
      const hit = held.get(`${p.protocol} ${shape.prefix}`)?.find((h) => h.start <= shape.end && shape.start <= h.end);
      if (hit) {
        clash = { port: Math.max(hit.start, shape.start), prefix: shape.prefix, by: hit.by };
        break;
      }
    }
    if (!clash) {
      out.push(p);
      continue;
    }
    const holder = clash.by.record;
    const why = clash.by.failedFile
      ? `because ${clash.by.failedFile} failed to validate`
      : clash.by.claimsKeptBy
        ? `because it claims a binding that policy ${clash.by.claimsKeptBy} keeps`
        : 'because its network namespace cannot be resolved';
    ctx.problems.push({
      policy: p.name,
      sourceFile: p.sourceFile,
      condition: 'Failed',
      reason: 'BindingHeldByKeptPolicy',
      message: `${p.protocol} port ${clash.port} for ${clash.prefix === EVERY_ADDRESS ? 'every address' : clash.prefix} is steered by policy ${holder.name}, which keeps its last applied state ${why}; policy ${p.name} is not applied until that is resolved`,
    });
    const previous = ctx.obs?.records.find((r) => r.name === p.name);
    if (previous) {
      // Kept as it was: its live bindings are held in turn.
      const kept: Retained = { record: previous, claimsKeptBy: holder.name };
      retained.push(kept);
      hold(kept);
    }
  }
  return out;
}

/**
 * Capacity (DISPATCHER_LIMITS): the policies, by name, that would not fit fail naming the limit
 * (one applied before is added to `retained`: it keeps its last applied state); returns the others.
 */
function fitCapacity(ctx: DispatcherContext, candidates: DesiredSteering[], retained: Retained[]): DesiredSteering[] {
  const wanted: DesiredSteering[] = [];
  const used = { entries: 0, bindings: 0, destinations: 0 };
  for (const { record } of retained) {
    used.entries += record.bindings.reduce((n, b) => n + bindingEntryCount(b), 0);
    used.bindings += record.bindings.length;
    used.destinations += 1;
  }
  for (const p of [...candidates].sort((a, b) => compareCodeUnits(a.name, b.name))) {
    const shapes = bindingShapes(p);
    const need = { entries: shapes.reduce((n, b) => n + bindingEntryCount(b), 0), bindings: shapes.length, destinations: 1 };
    const over = (['entries', 'bindings', 'destinations'] as const).find((k) => used[k] + need[k] > DISPATCHER_LIMITS[k]);
    if (over) {
      const what = { entries: 'binding entries', bindings: 'bindings (port ranges times prefixes)', destinations: 'target sockets' }[over];
      ctx.problems.push({
        policy: p.name,
        sourceFile: p.sourceFile,
        condition: 'Failed',
        reason: 'DispatcherFull',
        message: `policy ${p.name} needs ${need[over]} ${what}, but the dispatcher of network namespace ${p.netns ?? '(own)'} holds at most ${DISPATCHER_LIMITS[over]} and the policies before it (by name) take ${used[over]}`,
      });
      const previous = ctx.obs?.records.find((r) => r.name === p.name);
      if (previous) retained.push({ record: previous, atLimit: true });
      continue;
    }
    used.entries += need.entries;
    used.bindings += need.bindings;
    used.destinations += need.destinations;
    wanted.push(p);
  }
  return wanted;
}

/**
 * The dispatcher itself: created, rebuilt, relinked, upgraded or cleaned. Returns what the policy
 * steps build on (`view`: undefined when everything is rebuilt from scratch) and the kept records a
 * rebuild writes again.
 */
function planDispatcherItself(ctx: DispatcherContext, wanted: DesiredSteering[], retained: Retained[]): { view: ObservedDispatcherState | undefined; carried: PolicyRecord[] } {
  const { obs, add, dir, desired, object: dispatcherObject } = ctx;
  const domain = dispatcherObject;
  const netnsPath = wanted[0]?.netnsPath ?? OWN_NETNS;
  const broken = !obs || !obs.program || obs.missingMaps.length > 0;
  const missing = obs ? `${obs.program ? '' : 'program '}${obs.missingMaps.map((m) => `map ${m}`).join(', ')}`.trim() : '';
  if (broken && obs && wanted.length === 0) {
    // Only kept policies live here (retained is not empty): a rebuild would start from empty maps and
    // lose them, so the dispatcher is left as it is until their files are fixed or their namespaces
    // resolve. Records of removed policies and orphan entries are still cleaned up below (only from
    // maps that could be read: what a missing map held is observed as empty).
    add({
      kind: 'noop',
      phase: 'dispatcher',
      object: dispatcherObject,
      domain,
      code: 'KeptIncomplete',
      reason: `incomplete dispatcher (missing ${missing}), but it only serves policies that keep their last applied state (${retained.map((r) => r.record.name).join(', ')}): not rebuilt, which would lose them`,
      op: { type: 'none' },
    });
    return { view: obs, carried: [] };
  }
  if (broken) {
    add({
      kind: obs ? 'replace' : 'create',
      phase: 'dispatcher',
      object: dispatcherObject,
      domain,
      code: obs ? 'Incomplete' : 'Needed',
      reason: obs
        ? `incomplete dispatcher (missing ${missing}): rebuilding it`
        : `policies ${wanted.map((p) => p.name).join(', ')} need a dispatcher in network namespace ${wanted[0]?.netns ?? '(own)'}`,
      after: `program tag ${desired.dispatcherTag}, sk_lookup link on ${netnsPath}`,
      op: { type: 'createDispatcher', dir, netnsPath },
    });
    // Everything below is rebuilt from scratch; kept records are written again.
    return { view: undefined, carried: retained.map((r) => r.record) };
  }
  const link = obs.link;
  // A crash between the link update and the rename left the new program running from program_next: finish that first.
  // Only an attached link runs anything (as for PacketFilter).
  const finishing = swapInterruptedAfterUpdate(obs, link?.attached ? link.progId : undefined);
  const program = finishing ? obs.programNext! : obs.program!;
  if (finishing)
    add({
      kind: 'update',
      phase: 'dispatcher',
      object: `${dispatcherObject}: program`,
      domain,
      code: 'FinishUpgrade',
      reason: `an interrupted upgrade left program ${program.id} running from program_next: pinning it as the program`,
      before: `program ${obs.program!.id} tag ${obs.program!.tag} (no longer running)`,
      after: `program ${program.id} tag ${program.tag}`,
      op: { type: 'finishUpgrade', dir },
    });
  // The link first, then the program: a relink attaches the pinned program with a new link, so an
  // upgrade of a dispatcher whose link is missing or detached swaps the new program into that new
  // link (BPF_F_REPLACE expects the pinned program, which it runs). A program cannot be swapped into
  // a link that is missing (ENOENT) or detached (ENOLINK); and should the new program fail to load,
  // the relinked old one keeps steering. A link that runs another program than the pinned one gets
  // the new program from the swap itself (expecting what it runs now), so it needs no relink.
  const upgrade = program.tag !== desired.dispatcherTag;
  if (!link || !link.attached || (!upgrade && link.progId !== program.id)) {
    add({
      kind: link ? 'replace' : 'create',
      phase: 'dispatcher',
      object: `${dispatcherObject}: link`,
      domain,
      code: !link ? 'LinkMissing' : !link.attached ? 'LinkDetached' : 'LinkRunsOtherProgram',
      reason:
        (!link
          ? 'the sk_lookup link pin is missing'
          : !link.attached
            ? 'the sk_lookup link was detached'
            : `the link runs program ${link.progId}, not the pinned program ${program.id}`) +
        (upgrade ? `: linking the pinned program ${program.id}, which the upgrade below replaces in the new link` : ''),
      before: link ? `link ${link.id}${link.attached ? '' : ' (detached)'}` : undefined,
      after: `sk_lookup link on ${netnsPath}`,
      op: { type: 'relink', dir, netnsPath },
    });
  }
  if (upgrade) {
    const running = link?.attached ? link.progId : program.id;
    add({
      kind: 'replace',
      phase: 'dispatcher',
      object: `${dispatcherObject}: program`,
      domain,
      code: 'BytecodeChanged',
      reason:
        `bytecode changed (tag ${program.tag} -> ${desired.dispatcherTag}): atomic link update` +
        (running !== program.id ? ` (the link runs program ${running}, not the pinned program ${program.id}: it runs the new one after the update)` : ''),
      before: `program ${program.id} tag ${program.tag}`,
      after: `tag ${desired.dispatcherTag}`,
      op: { type: 'replaceProgram', dir, expectedProgId: running },
    });
  }
  for (const s of obs.stray)
    if (!(finishing && s === `${dir}/program_next`))
      add({ kind: 'delete', phase: 'gc', object: s, domain, code: 'LeftByInterruptedRun', reason: 'left behind by an interrupted run', op: { type: 'removeStray', path: s } });
  for (const b of obs.badRecords)
    add({
      kind: 'delete',
      phase: 'gc',
      object: `record ${b.name}`,
      domain,
      code: 'UnreadableRecord',
      reason: `unreadable policy record: ${b.reason}`,
      op: { type: 'deleteRecord', dir, name: b.name },
    });
  return { view: obs, carried: [] };
}

/**
 * Kept records of a rebuilt dispatcher: written again with their entries, before the applied
 * policies' (which win a key both claim). Their sockets cannot be carried over: a socket is put
 * again when the policy can be applied.
 */
function planCarried(ctx: DispatcherContext, carried: PolicyRecord[]): void {
  for (const r of carried) {
    const entries = packBindingEntries(r.protocol, r.bindings, r.destId);
    const base = { policy: r.name, domain: ctx.object, phase: 'add' as const, code: 'KeptAcrossRebuild', reason: 'the dispatcher is rebuilt: the last applied state of a policy that cannot be applied now is written again (without its socket)' };
    ctx.add({ ...base, kind: 'create', object: `policy ${r.name}`, after: describeSpec(r), op: { type: 'writeRecord', dir: ctx.dir, record: r } });
    if (entries.count > 0) ctx.add({ ...base, kind: 'create', object: `policy ${r.name}: bindings`, after: `${entries.count} entries`, op: { type: 'upsertBindings', dir: ctx.dir, entries } });
  }
}

/** The desired records of a dispatcher's applied policies, by name: destination and binding ids kept where they exist, allocated where not. */
function planRecords(wanted: DesiredSteering[], view: ObservedDispatcherState | undefined, carried: PolicyRecord[]): PlannedRecord[] {
  const records = new Map((view?.records ?? []).map((r) => [r.name, r]));
  const usedDest = new Set([...(view?.records ?? []), ...carried].map((r) => r.destId));
  const usedBinding = new Set([...(view?.records ?? []), ...carried].flatMap((r) => r.bindings.map((b) => b.id)));
  const nextDestId = idAllocator(usedDest, 1, MAX_DEST_ID);
  const nextBindingId = idAllocator(usedBinding, 0, MAX_BINDING_ID);
  const plannedRecords: PlannedRecord[] = [];
  for (const p of [...wanted].sort((a, b) => compareCodeUnits(a.name, b.name))) {
    const previous = records.get(p.name);
    const destId = previous?.destId ?? nextDestId();
    const old = new Map((previous?.bindings ?? []).map((b) => [`${b.start}-${b.end}@${b.prefix}`, b.id]));
    const fresh: number[] = [];
    const bindings: RecordedBinding[] = bindingShapes(p).map((s) => {
      let id = old.get(`${s.start}-${s.end}@${s.prefix}`);
      if (id === undefined) {
        id = nextBindingId();
        fresh.push(id);
      }
      return { id, ...s };
    });
    const record: PolicyRecord = {
      v: 1,
      name: p.name,
      sourceFile: p.sourceFile,
      netns: p.netns ?? null,
      specHash: p.specHash,
      protocol: p.protocol,
      targetText: p.targetText,
      destId,
      bindings,
    };
    plannedRecords.push({ p, record, previous, fresh });
  }
  return plannedRecords;
}

/** No entries to write. */
const NO_ENTRIES = new PackedBindings(Buffer.alloc(0), Buffer.alloc(0), 0);

/**
 * Destinations whose observed entries {@link sameEntries} found to be exactly the expected ones,
 * by their first observed entry: the entries, the protocol and the bindings they were expected
 * from. Entries decoded from bytes a map read returned unchanged are the same (never mutated)
 * objects from pass to pass, so when a pass observes the very same entries for the same bindings,
 * the answer is known without packing and comparing them again: a pass after a change to one
 * policy among a thousand with a thousand ports each compares one policy's entries, not a million
 * (a memo of a pure function; it holds nothing the entries do not keep alive).
 */
const confirmedSame = new WeakMap<object, { have: readonly object[]; protocol: string; bindings: readonly RecordedBinding[] }>();

function knownSame(have: readonly object[], record: PolicyRecord): boolean {
  const first = have[0];
  const known = first === undefined ? undefined : confirmedSame.get(first);
  if (known === undefined || known.have.length !== have.length || known.protocol !== record.protocol) return false;
  if (!sameJson(known.bindings, record.bindings)) return false;
  const h = known.have;
  for (let i = 0; i < have.length; i++) if (have[i] !== h[i]) return false;
  return true;
}

/**
 * Each policy's entries compared with the observed entries of its own destination only (no map of
 * every entry: a million entries stay cheap). When the map returned them in the order they are
 * generated (or its reverse), which is the common case, a sequential comparison suffices; otherwise
 * a map of that destination's entries. A key some policy wants that is observed under another
 * destination is one of that policy's upserts; so the keys no removal may touch (they are wanted,
 * and written in the add phase before removals run) are the wanted keys observed under their own
 * destination plus every upsert. Expected entries are packed as the batch update takes them: a
 * destination with nothing observed (a new policy) upserts them as they are, with no string or
 * object per entry.
 */
function diffEntries(plannedRecords: PlannedRecord[], entriesByDest: ReadonlyMap<number, ReadonlyArray<{ key: string; bindingId: number }>>): Map<string, EntryDiff> {
  const upsertsOf = new Map<string, EntryDiff>();
  for (const { record } of plannedRecords) {
    const have = entriesByDest.get(record.destId) ?? [];
    if (knownSame(have, record)) {
      upsertsOf.set(record.name, { want: have.length, upserts: NO_ENTRIES, unwanted: [] });
      continue;
    }
    const expected = packBindingEntries(record.protocol, record.bindings, record.destId);
    if (have.length === 0) {
      upsertsOf.set(record.name, { want: expected.count, upserts: expected, unwanted: [] });
      continue;
    }
    if (sameEntries(have, expected)) {
      confirmedSame.set(have[0]!, { have, protocol: record.protocol, bindings: record.bindings });
      upsertsOf.set(record.name, { want: expected.count, upserts: NO_ENTRIES, unwanted: [] });
      continue;
    }
    const own = new Map<string, number>();
    for (const e of have) own.set(e.key, e.bindingId);
    const upserts: number[] = [];
    for (let i = 0; i < expected.count; i++) {
      const key = expected.keyAt(i);
      const id = own.get(key);
      if (id !== undefined) own.delete(key);
      if (id !== expected.bindingIdAt(i)) upserts.push(i);
    }
    const unwanted = [...own.keys()]; // observed under this destination and not expected
    upsertsOf.set(record.name, { want: expected.count, upserts: upserts.length === expected.count ? expected : expected.pick(upserts), unwanted });
  }
  return upsertsOf;
}

/** One applied policy's actions: its record, counters, target socket and entries (additions first, removals later). */
function planPolicy(
  ctx: DispatcherContext,
  { p, record, previous, fresh }: PlannedRecord,
  { want, upserts, unwanted }: EntryDiff,
  view: ObservedDispatcherState | undefined,
  entriesByDest: ReadonlyMap<number, ReadonlyArray<{ key: string }>>,
  upsertKeys: () => Set<string>,
): void {
  const { add, dir } = ctx;
  const object = `policy ${p.name}`;
  const base = { policy: p.name, domain: ctx.object };
  let changed = false;
  if (!previous || !sameRecord(previous, record)) {
    changed = true;
    add({
      ...base,
      kind: previous ? 'update' : 'create',
      phase: 'add',
      object,
      code: previous ? (previous.specHash !== record.specHash ? 'PolicyChanged' : 'RecordOutdated') : 'NewPolicy',
      reason: previous
        ? previous.specHash !== record.specHash
          ? `the policy changed in ${p.sourceFile}`
          : 'the recorded state is out of date'
        : `new policy from ${p.sourceFile}`,
      before: previous ? describeSpec(previous) : undefined,
      after: describeSpec(record),
      op: { type: 'writeRecord', dir, record },
    });
  }
  if (fresh.length > 0)
    add({ ...base, kind: 'update', phase: 'add', object: `${object}: counters`, code: 'NewBindings', reason: 'new bindings start counting at zero', op: { type: 'resetCounters', dir, bindingIds: fresh } });

  // The target socket.
  const cookie = view?.sockets[record.destId] ?? null;
  if (p.target.ok && cookie !== p.target.cookie) {
    changed = true;
    add({
      ...base,
      kind: cookie === null ? 'create' : 'update',
      phase: 'add',
      object: `${object}: socket`,
      code: cookie === null ? 'SteerToTarget' : 'TargetRestarted',
      reason: cookie === null ? `steer to ${p.targetText}` : `${p.targetText} is a different socket now (restarted?)`,
      before: cookie === null ? undefined : `cookie ${cookie}`,
      after: `pid ${p.target.pid} fd ${p.target.fd} (cookie ${p.target.cookie})`,
      op: { type: 'putSocket', dir, destId: record.destId, pid: p.target.pid, fd: p.target.fd },
    });
  } else if (!p.target.ok && cookie !== null && previous && previous.targetText !== p.targetText) {
    changed = true;
    add({
      ...base,
      kind: 'delete',
      phase: 'remove',
      object: `${object}: socket`,
      code: 'TargetChangedAndMissing',
      reason: `the target changed to ${p.targetText}, which is not there: stop steering to the old one`,
      before: `cookie ${cookie}`,
      op: { type: 'deleteSocket', dir, destId: record.destId },
    });
  }

  // Entries: additions first, removals later.
  const have = entriesByDest.get(record.destId) ?? [];
  const stale = unwanted.length === 0 ? [] : sortKeys(withoutUpserts(unwanted, upsertKeys));
  if (upserts.count > 0) {
    changed = true;
    add({
      ...base,
      kind: have.length === 0 ? 'create' : 'update',
      phase: 'add',
      object: `${object}: bindings`,
      code: 'BindingsToAdd',
      reason: `${upserts.count} entr${upserts.count === 1 ? 'y' : 'ies'} to add or correct`,
      before: `${have.length} entries`,
      after: `${want} entries`,
      op: { type: 'upsertBindings', dir, entries: upserts },
    });
  }
  if (stale.length > 0) {
    changed = true;
    add({
      ...base,
      kind: 'delete',
      phase: 'remove',
      object: `${object}: bindings`,
      code: 'BindingsUnwanted',
      reason: `${stale.length} entr${stale.length === 1 ? 'y' : 'ies'} no longer wanted`,
      op: { type: 'deleteBindings', dir, keys: stale },
    });
  }
  if (!changed && fresh.length === 0)
    add({ ...base, kind: 'noop', phase: 'add', object, code: 'UpToDate', reason: 'up to date', op: { type: 'none' } });
}

/** Policies that went away from this dispatcher (removed, or moved to another namespace): their entries, socket and record. */
function planDepartures(
  ctx: DispatcherContext,
  view: ObservedDispatcherState | undefined,
  keep: ReadonlySet<string>,
  entriesByDest: ReadonlyMap<number, ReadonlyArray<{ key: string }>>,
  upsertKeys: () => Set<string>,
): void {
  const { add, dir } = ctx;
  for (const r of view?.records ?? []) {
    if (keep.has(r.name)) continue;
    const d = ctx.desiredByName.get(r.name);
    const reason = d ? `the policy moved to network namespace ${d.netns ?? '(own)'}` : `the policy was removed (it came from ${r.sourceFile})`;
    const base = { policy: r.name, domain: ctx.object, phase: 'remove' as const, code: d ? 'PolicyMoved' : 'PolicyRemoved' };
    const entries = entriesByDest.get(r.destId) ?? [];
    const stale = entries.length === 0 ? [] : sortKeys(withoutUpserts(entries.map((e) => e.key), upsertKeys));
    if (stale.length > 0)
      add({ ...base, kind: 'delete', object: `policy ${r.name}: bindings`, reason, before: `${stale.length} entries`, op: { type: 'deleteBindings', dir, keys: stale } });
    // An empty slot has nothing to delete (the kernel refuses to delete an empty sockmap slot with EINVAL).
    if ((view?.sockets[r.destId] ?? null) !== null)
      add({ ...base, kind: 'delete', object: `policy ${r.name}: socket`, reason, op: { type: 'deleteSocket', dir, destId: r.destId } });
    add({ ...base, kind: 'delete', object: `policy ${r.name}`, reason, before: describeSpec(r), op: { type: 'deleteRecord', dir, name: r.name } });
  }
}
