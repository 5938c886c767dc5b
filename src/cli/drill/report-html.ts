import { DRILL_STEPS, formatMs, RTO_STEPS } from '../../shared/drill';
import type { DrillRecordView } from './records';

export interface DrillReportMeta {
  service: string;
  environment: string;
  /** Where the records came from, in words. */
  source: string;
  generatedAtMs: number;
  /** The configured target, used when the records carry none. */
  rtoTargetSeconds: number | null;
}

const esc = (text: unknown) =>
  String(text).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
const secs = (s: number | null | undefined) => (s === null || s === undefined ? '–' : formatMs(s * 1000));
const day = (ms: number) => new Date(ms).toISOString().slice(0, 16).replace('T', ' ');

const COLORS = {
  pass: '#1a7f37',
  over: '#bf8700',
  fail: '#cf222e',
  other: '#6e7781',
  target: '#cf222e',
  line: '#0969da',
  rpo: '#8250df',
  grid: '#d0d7de',
  text: '#1f2328',
  muted: '#656d76',
};

/** The marker kind of a drill: passed within target, passed over target, failed, or other (cancelled, running). */
function kindOf(r: DrillRecordView): 'pass' | 'over' | 'fail' | 'other' {
  if (r.outcome === 'failed') return 'fail';
  if (r.outcome === 'passed' || r.outcome === 'awaiting-sign-off') return r.overTarget ? 'over' : 'pass';
  return 'other';
}

/** Axis steps that read well as durations: 1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10, 15, 30 min, 1, 2, 6, 12 h, 1, 2, 7 d. */
const STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 604800];

/** The axis of durations up to `max` seconds: about four steps of a readable size, and the top. */
function durationAxis(max: number): { step: number; top: number } {
  const step = STEPS_S.find((st) => st * 4 >= max) ?? Math.ceil(max / 4 / 604800) * 604800;
  return { step, top: Math.max(step, Math.ceil(max / step) * step) };
}

/**
 * The RTO chart: one point per drill over time (x) and its RTO (y), against the target line; a failed drill
 * without an RTO is a cross on the time axis. Plain SVG, no script.
 */
function rtoChart(records: DrillRecordView[], targetSeconds: number | null): string {
  const W = 920;
  const H = 320;
  const m = { left: 64, right: 24, top: 20, bottom: 44 };
  const iw = W - m.left - m.right;
  const ih = H - m.top - m.bottom;
  const points = [...records].sort((a, b) => a.startedAtMs - b.startedAtMs);
  if (points.length === 0) return `<p class="muted">No drill yet.</p>`;
  const axis = durationAxis(Math.max(targetSeconds ?? 0, ...points.map((r) => r.rtoSeconds ?? 0)) * 1.1);
  const maxY = axis.top;
  const t0 = points[0]!.startedAtMs;
  const t1 = points.at(-1)!.startedAtMs;
  const span = Math.max(1, t1 - t0);
  const x = (ms: number) => m.left + (points.length === 1 ? iw / 2 : ((ms - t0) / span) * iw);
  const y = (s: number) => m.top + ih - (s / maxY) * ih;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="RTO per drill over time">`,
  );
  for (let v = 0; v <= maxY; v += axis.step) {
    out.push(
      `<line x1="${m.left}" x2="${W - m.right}" y1="${y(v)}" y2="${y(v)}" stroke="${COLORS.grid}" stroke-width="1"/>`,
      `<text x="${m.left - 8}" y="${y(v) + 4}" text-anchor="end" class="axis">${v === 0 ? '0' : esc(formatMs(v * 1000))}</text>`,
    );
  }
  // Dates under the axis: each drill's while they fit, else five evenly spaced; none closer than a label's width.
  const showTime = span < 2 * 86_400_000;
  const label = (t: number) => (showTime ? `${day(t).slice(5)} UTC` : day(t).slice(0, 10));
  const candidates =
    points.length <= 8 ? points.map((r) => r.startedAtMs) : [0, 1, 2, 3, 4].map((i) => t0 + (span * i) / 4);
  let lastX = -Infinity;
  candidates.forEach((t) => {
    const at = x(t);
    if (at - lastX < 120) return;
    lastX = at;
    const anchor =
      candidates.length === 1 ? 'middle' : at - m.left < 60 ? 'start' : W - m.right - at < 60 ? 'end' : 'middle';
    out.push(`<text x="${at}" y="${H - m.bottom + 18}" text-anchor="${anchor}" class="axis">${esc(label(t))}</text>`);
  });
  out.push(
    `<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + ih}" stroke="${COLORS.muted}"/>`,
    `<line x1="${m.left}" x2="${W - m.right}" y1="${m.top + ih}" y2="${m.top + ih}" stroke="${COLORS.muted}"/>`,
    `<text transform="translate(16 ${m.top + ih / 2}) rotate(-90)" text-anchor="middle" class="axis">RTO (restore start to app ready)</text>`,
  );
  if (targetSeconds !== null) {
    out.push(
      `<line x1="${m.left}" x2="${W - m.right}" y1="${y(targetSeconds)}" y2="${y(targetSeconds)}" stroke="${COLORS.target}" stroke-width="2" stroke-dasharray="8 5"/>`,
      `<text x="${W - m.right - 4}" y="${y(targetSeconds) - 6}" text-anchor="end" class="target">target ${esc(formatMs(targetSeconds * 1000))}</text>`,
    );
  }
  const measured = points.filter((r) => r.rtoSeconds !== null);
  if (measured.length > 1) {
    const d = measured.map((r, i) => `${i === 0 ? 'M' : 'L'}${x(r.startedAtMs)},${y(r.rtoSeconds!)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${COLORS.line}" stroke-width="2" stroke-opacity="0.5"/>`);
  }
  for (const r of points) {
    const kind = kindOf(r);
    const title = esc(
      `${day(r.startedAtMs)} UTC: ${r.outcome}, RTO ${secs(r.rtoSeconds)}, snapshot age ${secs(r.snapshotAgeSeconds)}` +
        (r.reason ? `\n${r.reason}` : ''),
    );
    const cx = x(r.startedAtMs);
    if (r.rtoSeconds === null && kind !== 'fail') {
      out.push(
        `<g><title>${title}</title><circle cx="${cx}" cy="${m.top + ih}" r="6" fill="#fff" stroke="${COLORS[kind]}" stroke-width="3"/></g>`,
      );
    } else if (r.rtoSeconds === null) {
      const cy = m.top + ih;
      out.push(
        `<g><title>${title}</title><path d="M${cx - 7},${cy - 7} L${cx + 7},${cy + 7} M${cx - 7},${cy + 7} L${cx + 7},${cy - 7}" stroke="${COLORS[kind]}" stroke-width="3"/></g>`,
      );
    } else if (kind === 'fail') {
      const cy = y(r.rtoSeconds!);
      out.push(
        `<g><title>${title}</title><path d="M${cx - 7},${cy - 7} L${cx + 7},${cy + 7} M${cx - 7},${cy + 7} L${cx + 7},${cy - 7}" stroke="${COLORS.fail}" stroke-width="3"/></g>`,
      );
    } else {
      if (points.length <= 16) {
        out.push(
          `<text x="${cx}" y="${y(r.rtoSeconds!) - 12}" text-anchor="${cx - m.left < 30 ? 'start' : W - m.right - cx < 30 ? 'end' : 'middle'}" class="value">${esc(formatMs(r.rtoSeconds! * 1000))}</text>`,
        );
      }
      out.push(
        `<g><title>${title}</title><circle cx="${cx}" cy="${y(r.rtoSeconds!)}" r="7" fill="${COLORS[kind]}" stroke="#fff" stroke-width="2"/></g>`,
      );
    }
  }
  out.push('</svg>');
  return out.join('\n');
}

/** Snapshot age per drill (how much data a recovery at that moment would have lost), as bars. */
function rpoChart(records: DrillRecordView[]): string {
  const points = [...records]
    .sort((a, b) => a.startedAtMs - b.startedAtMs)
    .filter((r) => r.snapshotAgeSeconds !== null);
  if (points.length === 0) return '';
  const W = 920;
  const H = 150;
  const m = { left: 64, right: 24, top: 12, bottom: 24 };
  const iw = W - m.left - m.right;
  const ih = H - m.top - m.bottom;
  const maxY = durationAxis(Math.max(...points.map((r) => r.snapshotAgeSeconds!))).top;
  const slot = iw / points.length;
  const bw = Math.min(36, slot * 0.7);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="snapshot age per drill">`,
    `<line x1="${m.left}" x2="${W - m.right}" y1="${m.top + ih}" y2="${m.top + ih}" stroke="${COLORS.muted}"/>`,
    `<text x="${m.left - 8}" y="${m.top + 10}" text-anchor="end" class="axis">${esc(formatMs(maxY * 1000))}</text>`,
    `<text x="${m.left - 8}" y="${m.top + ih + 4}" text-anchor="end" class="axis">0</text>`,
  ];
  points.forEach((r, i) => {
    const h = (r.snapshotAgeSeconds! / maxY) * ih;
    const bx = m.left + slot * i + (slot - bw) / 2;
    out.push(
      `<g><title>${esc(`${day(r.startedAtMs)} UTC: snapshot ${r.snapshotId ?? '?'} was ${secs(r.snapshotAgeSeconds)} old`)}</title>` +
        `<rect x="${bx}" y="${m.top + ih - h}" width="${bw}" height="${Math.max(1, h)}" fill="${COLORS.rpo}" rx="2"/></g>`,
    );
  });
  out.push(
    `<text x="${m.left + 4}" y="${H - 6}" class="axis">each bar: one drill, oldest left; height: the restored snapshot's age when the drill ran</text>`,
    '</svg>',
  );
  return out.join('\n');
}

/** The RTO of one drill by phase, as a horizontal stacked bar; the steps outside the RTO are named below it. */
function phaseBar(r: DrillRecordView): string {
  // In the order the drill runs them (a jsonb column returns its keys in its own order).
  const order = (phase: string) => (DRILL_STEPS as readonly string[]).indexOf(phase);
  const all = Object.entries(r.phaseTimings)
    .filter(([, s]) => s > 0)
    .sort((a, b) => order(a[0]) - order(b[0]));
  const inRto = all.filter(([phase]) => (RTO_STEPS as readonly string[]).includes(phase));
  const outside = all.filter(([phase]) => !(RTO_STEPS as readonly string[]).includes(phase));
  const total = inRto.reduce((n, [, s]) => n + s, 0);
  if (total <= 0) return '<p class="muted">No phase reached the restore.</p>';
  const palette = ['#0969da', '#1a7f37', '#bf8700', '#8250df', '#cf222e', '#1b7c83', '#953800', '#6639ba'];
  const W = 920;
  let at = 0;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} 60" width="${W}" height="60" role="img" aria-label="RTO by phase">`,
  ];
  inRto.forEach(([phase, s], i) => {
    const w = (s / total) * W;
    const color = palette[i % palette.length];
    out.push(
      `<g><title>${esc(`${phase}: ${formatMs(s * 1000)}`)}</title><rect x="${at}" y="4" width="${Math.max(1, w - 1)}" height="24" fill="${color}"/></g>`,
    );
    if (w > 80) out.push(`<text x="${at + 2}" y="46" class="axis">${esc(phase)} ${esc(formatMs(s * 1000))}</text>`);
    at += w;
  });
  out.push('</svg>');
  const legend = inRto
    .map(
      ([phase, s], i) =>
        `<span><i class="dot" style="background:${palette[i % palette.length]}"></i>${esc(phase)} ${esc(formatMs(s * 1000))}</span>`,
    )
    .join('');
  const rest = outside.map(([phase, s]) => `${phase} ${formatMs(s * 1000)}`).join(', ');
  return `${out.join('\n')}\n<div class="legend">${legend}</div>${rest ? `<p class="muted">Not in the RTO: ${esc(rest)}.</p>` : ''}`;
}

function integrityNotes(r: DrillRecordView): string {
  const i = r.integrity;
  const items: string[] = [];
  const item = (ok: boolean | 'note' | undefined, what: string, detail: string) => {
    const [kind, label] =
      ok === undefined ? ['other', '–'] : ok === 'note' ? ['over', 'note'] : ok ? ['pass', 'ok'] : ['fail', 'problem'];
    items.push(`<li><span class="badge ${kind}">${label}</span> <b>${esc(what)}</b>: ${esc(detail)}</li>`);
  };
  if (i?.amcheck) item(i.amcheck.ok, 'pg_amcheck', i.amcheck.detail);
  if (i?.manifest)
    item(
      i.manifest.ok,
      'manifest',
      i.manifest.ok
        ? `${i.manifest.tables} tables, ${i.manifest.rows} rows: counts and checksums match the snapshot`
        : i.manifest.differences.join('; '),
    );
  if (i?.schema)
    item(
      i.schema.ok || (i.schema.migrated ? 'note' : false),
      'schema',
      `${i.schema.detail}${i.schema.migrated ? ' (migrated the copy)' : ''}`,
    );
  if (i?.command)
    item(
      i.command.ok,
      i.command.command.join(' '),
      `${i.command.timedOut ? 'timed out' : `exit ${i.command.exitCode ?? '(stopped)'}`}; notes: ${i.command.notes.trim() || '(no output)'}`,
    );
  if (r.outcome === 'failed' && r.reason)
    item(false, `failed${i?.failedPhase ? ` at ${i.failedPhase}` : ''}`, r.reason);
  if (items.length === 0) return '<p class="muted">No integrity results recorded.</p>';
  return `<ul class="notes">${items.join('')}</ul>`;
}

/**
 * A self-contained HTML report of a service's drills (no script, no external resource): the RTO per drill over
 * time against the target, pass/fail markers, the snapshot age (the RPO actually achieved), the latest drill's
 * phases and integrity notes, and every drill in a table.
 */
export function renderDrillReport(records: DrillRecordView[], meta: DrillReportMeta): string {
  const newestFirst = [...records].sort((a, b) => b.startedAtMs - a.startedAtMs);
  const latest = newestFirst[0];
  const target = latest?.rtoTargetSeconds ?? meta.rtoTargetSeconds;
  const finished = newestFirst.filter((r) => ['passed', 'failed'].includes(r.outcome));
  const passed = finished.filter((r) => r.outcome === 'passed').length;
  const lastPass = newestFirst.find((r) => r.outcome === 'passed');
  const worst = Math.max(0, ...newestFirst.map((r) => r.rtoSeconds ?? 0));
  const card = (label: string, value: string, sub: string, kind = '') =>
    `<div class="card ${kind}"><div class="label">${esc(label)}</div><div class="value">${esc(value)}</div><div class="sub">${esc(sub)}</div></div>`;
  const rows = newestFirst
    .map((r) => {
      const kind = kindOf(r);
      const versus =
        r.rtoSeconds !== null && r.rtoTargetSeconds !== null
          ? r.overTarget
            ? `over by ${secs(r.rtoSeconds - r.rtoTargetSeconds)}`
            : 'within'
          : '–';
      return `<tr><td>${esc(day(r.startedAtMs))}</td><td><span class="badge ${kind}">${esc(r.outcome)}</span></td><td class="num">${esc(secs(r.rtoSeconds))}</td><td>${esc(versus)}</td><td class="num">${esc(secs(r.snapshotAgeSeconds))}</td><td><code>${esc(r.snapshotId ?? '–')}</code></td><td>${esc(r.signedOffBy ?? (r.integrity?.signoff === 'unsigned' ? 'unsigned' : '–'))}</td><td><code>${esc(r.workflowId)}</code></td></tr>`;
    })
    .join('\n');
  const title = `Restore drills: ${meta.service} / ${meta.environment}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: ${COLORS.text}; margin: 24px auto; max-width: 980px; padding: 0 16px; }
  h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
  .muted, .sub { color: ${COLORS.muted}; } .sub { font-size: 12px; }
  .cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 12px; margin-top: 16px; }
  .card { border: 1px solid ${COLORS.grid}; border-radius: 8px; padding: 10px 12px; border-top: 4px solid ${COLORS.other}; }
  .card.pass { border-top-color: ${COLORS.pass}; } .card.over { border-top-color: ${COLORS.over}; } .card.fail { border-top-color: ${COLORS.fail}; }
  .label { font-size: 12px; color: ${COLORS.muted}; text-transform: uppercase; letter-spacing: .04em; }
  .value { font-size: 22px; font-weight: 600; margin: 2px 0; }
  svg { max-width: 100%; height: auto; display: block; }
  svg .axis { font-size: 11px; fill: ${COLORS.muted}; } svg .value { font-size: 11px; fill: ${COLORS.text}; font-weight: 600; } svg .target { font-size: 12px; fill: ${COLORS.target}; font-weight: 600; }
  .legend span { margin-right: 16px; font-size: 12px; } .dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 4px; vertical-align: -1px; }
  table { border-collapse: collapse; width: 100%; font-size: 13px; } th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid ${COLORS.grid}; vertical-align: top; }
  th { font-size: 12px; color: ${COLORS.muted}; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
  code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
  .badge { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 12px; color: #fff; background: ${COLORS.other}; }
  .badge.pass { background: ${COLORS.pass}; } .badge.over { background: ${COLORS.over}; } .badge.fail { background: ${COLORS.fail}; }
  ul.notes { padding-left: 0; list-style: none; } ul.notes li { margin: 6px 0; }
  footer { margin-top: 28px; font-size: 12px; color: ${COLORS.muted}; }
</style>
</head>
<body>
<h1>${esc(title)}</h1>
<div class="muted">${esc(`${records.length} drill(s); generated ${day(meta.generatedAtMs)} UTC from ${meta.source}`)}</div>
<div class="cards">
${card('latest drill', latest ? latest.outcome : 'none', latest ? `${day(latest.startedAtMs)} UTC` : 'run: runbook drill', latest ? kindOf(latest) : '')}
${card('latest RTO', secs(latest?.rtoSeconds), target !== null ? `target ${secs(target)}${latest?.overTarget && latest.rtoSeconds !== null ? `, over by ${secs(latest.rtoSeconds - target)}` : ''}` : 'no target', latest?.rtoSeconds === null || !latest ? '' : latest.overTarget ? 'over' : 'pass')}
${card('RPO (snapshot age)', secs(latest?.snapshotAgeSeconds), latest?.snapshotId ? `restored ${latest.snapshotId}` : '–')}
${card('passed', `${passed} of ${finished.length}`, `worst RTO ${secs(worst)}; last pass ${lastPass ? day(lastPass.startedAtMs) : 'never'}`, finished.length === 0 ? '' : passed === finished.length ? 'pass' : 'fail')}
</div>
<h2>RTO per drill</h2>
<div class="legend"><span><i class="dot" style="background:${COLORS.pass}"></i>passed within target</span><span><i class="dot" style="background:${COLORS.over}"></i>passed, over target</span><span style="color:${COLORS.fail}">✕ failed (on the axis: before the app was ready)</span><span><i class="dot" style="background:${COLORS.other}"></i>cancelled / other</span><span style="color:${COLORS.target}">- - - target</span></div>
${rtoChart(newestFirst, target)}
<h2>Snapshot age at each drill (the RPO achieved)</h2>
${rpoChart(newestFirst)}
${latest ? `<h2>Latest drill: where the RTO went</h2>\n${phaseBar(latest)}\n<h2>Latest drill: integrity</h2>\n${integrityNotes(latest)}` : ''}
<h2>All drills</h2>
<table>
<thead><tr><th>started (UTC)</th><th>outcome</th><th>RTO</th><th>vs target</th><th>snapshot age</th><th>snapshot</th><th>signed off</th><th>workflow</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
<footer>RTO: restore start to the application answering ready and passing its smoke checks (${esc(RTO_STEPS.join(', '))}). Snapshot age: how much data a recovery at that moment would have lost. Generated by <code>runbook drill report</code>.</footer>
</body>
</html>
`;
}
