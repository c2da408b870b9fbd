/**
 * The Program kind's status: per policy the program's id and tag, the
 * object's digest, each attachment's link, and its maps' entry counts (and,
 * with `status --show-maps`, their contents decoded by BTF).
 */
import type { PolicyView, StatusInput } from '../../reconciler/kind.js';
import type { PolicyStatus } from '../../reconciler/model.js';
import { renderStatusHead } from '../../reconciler/render.js';
import { mapPinPath } from '../../bpf/pinned-maps.js';
import type { DesiredPrograms, ObservedPrograms } from './model.js';
import { readMapContents } from './map-contents.js';
import { countEntries } from './store.js';

/** The status views of every Program policy, loaded or only pinned. */
export function programViews({ desired, observed, readCounters, showMaps }: StatusInput<DesiredPrograms, ObservedPrograms>): PolicyView[] {
  const views: PolicyView[] = [];
  const observedByName = new Map(observed.programs.map((o) => [o.name, o]));
  const names = new Set([...desired.status.map((s) => s.name), ...observed.programs.map((o) => o.name)]);
  for (const name of [...names].sort()) {
    const s = desired.status.find((x) => x.name === name);
    const d = desired.policies.find((x) => x.name === name);
    const o = observedByName.get(name);
    const details: Record<string, unknown> = {
      object: o?.record?.object ?? s?.objectPath ?? null,
      sha256: o?.record?.sha256 ?? null,
      program: o?.record?.program ?? s?.program ?? null,
      programId: o?.program?.id ?? null,
      tag: o?.program?.tag ?? null,
      links: (o?.links ?? []).map((l) => ({ pin: l.pin, id: l.id, programId: l.progId, attached: l.attached })),
    };
    if (o && readCounters && !o.unreadable) {
      const counts = countEntries(o.dir, o.maps);
      details.maps = o.maps.map((m) => ({ name: m.name, id: m.id, entries: counts[m.name] ?? null }));
      if (showMaps)
        details.mapContents = Object.fromEntries(
          o.maps
            .filter((m) => m.keySize > 0)
            .map((m) => {
              try {
                return [m.name, readMapContents(mapPinPath(o.dir, m.name))];
              } catch (err) {
                return [m.name, { error: (err as Error).message }];
              }
            }),
        );
    }
    let notReady: PolicyView['notReady'];
    if (d && o && !o.unreadable) {
      const missing = d.targets.filter((t) => !o.links.some((l) => l.pin === t.pin && l.attached && l.progId === o.program?.id));
      if (missing.length > 0) notReady = { reason: 'NotAttached', message: `${missing.length} of ${d.targets.length} attachments are not running the program` };
    }
    views.push({
      name,
      sourceFile: s?.sourceFile ?? o?.record?.sourceFile ?? null,
      netns: null,
      desired: s !== undefined,
      domains: [`program ${name}`],
      ...(notReady ? { notReady } : {}),
      ...(d ? { readyMessage: `${d.program} runs (${d.targets.length} attachment${d.targets.length === 1 ? '' : 's'})` } : {}),
      details,
    });
  }
  return views;
}

/** Readable lines of Program statuses. */
export function renderProgramStatus(statuses: readonly PolicyStatus[]): string[] {
  const lines: string[] = [];
  for (const s of statuses) {
    lines.push(...renderStatusHead(s, `Program ${String(s.object ?? '')}  ${s.sourceFile ?? ''}`));
    const links = (s.links as { pin: string; id: number; attached: boolean }[] | undefined) ?? [];
    lines.push(`  program ${String(s.program)} id ${s.programId ?? '-'} tag ${s.tag ?? '-'} sha256 ${typeof s.sha256 === 'string' ? s.sha256.slice(0, 12) : '-'}`);
    for (const l of links) lines.push(`    ${l.pin} link ${l.id}${l.attached ? '' : ' (detached)'}`);
    for (const m of (s.maps as { name: string; id: number; entries: number | null }[] | undefined) ?? []) lines.push(`    map ${m.name} id ${m.id}: ${m.entries ?? '?'} entries`);
    const contents = s.mapContents as Record<string, { entries?: { key: unknown; value: unknown }[]; truncated?: boolean; error?: string }> | undefined;
    for (const [name, c] of Object.entries(contents ?? {})) {
      lines.push(`    ${name}:`);
      if (c.error) lines.push(`      cannot read: ${c.error}`);
      for (const e of c.entries ?? []) lines.push(`      ${JSON.stringify(e.key)} => ${JSON.stringify(e.value)}`);
      if (c.truncated) lines.push('      ...');
    }
  }
  return lines;
}
