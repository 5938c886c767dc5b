/**
 * The HTML report of one deploy (`runbook report <workflow-id>`): the evidence of each traffic step, and per analysis
 * window the canary against the stable release (error rate and p95, as the judge saw them), with the window where
 * the verdict fell marked. Self-contained (no script, no external resource), like the drill report.
 */
import type { AnalysisWindow, DeployState } from '../shared/deploy';
import { stepEvidenceLine } from './render';

const esc = (text: unknown) =>
  String(text).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
const time = (ms: number) => new Date(ms).toISOString().slice(11, 19);
const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

const COLORS = { canary: '#cf222e', stable: '#0969da', fail: '#cf222e', grid: '#d0d7de', muted: '#656d76' };

/** The error rate a window's judge held against the stable's, both since the step began; null without a judge. */
const rates = (w: AnalysisWindow) =>
  w.compare?.errors ? { canary: w.compare.errors.canaryRate, stable: w.compare.errors.stableRate } : null;

/** One SVG line chart of canary vs stable across the windows; the failed window gets a red band. */
function chart(
  windows: AnalysisWindow[],
  title: string,
  value: (w: AnalysisWindow) => { canary: number | null; stable: number | null } | null,
  format: (v: number) => string,
): string {
  const W = 720;
  const H = 180;
  const pad = { l: 60, r: 10, t: 24, b: 28 };
  const points = windows.map((w) => value(w));
  const all = points.flatMap((p) => (p ? [p.canary, p.stable] : [])).filter((v): v is number => v !== null);
  const max = Math.max(...all, 0) || 1;
  const x = (i: number) => pad.l + (windows.length <= 1 ? 0 : (i * (W - pad.l - pad.r)) / (windows.length - 1));
  const y = (v: number) => pad.t + (H - pad.t - pad.b) * (1 - v / max);
  const line = (side: 'canary' | 'stable') =>
    points
      .map((p, i) => (p && p[side] !== null ? `${x(i).toFixed(1)},${y(p[side]).toFixed(1)}` : ''))
      .filter(Boolean)
      .join(' ');
  const fails = windows
    .map((w, i) =>
      w.verdict === 'fail'
        ? `<rect x="${(x(i) - 4).toFixed(1)}" y="${pad.t}" width="8" height="${H - pad.t - pad.b}" fill="${COLORS.fail}" opacity="0.25"><title>${esc(w.because ?? 'failed')}</title></rect>`
        : '',
    )
    .join('');
  return `<figure><figcaption>${esc(title)}</figcaption><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img">
<line x1="${pad.l}" y1="${y(0)}" x2="${W - pad.r}" y2="${y(0)}" stroke="${COLORS.grid}"/>
<line x1="${pad.l}" y1="${y(max)}" x2="${W - pad.r}" y2="${y(max)}" stroke="${COLORS.grid}"/>
<text x="4" y="${y(max) + 4}" font-size="11" fill="${COLORS.muted}">${esc(format(max))}</text>
<text x="4" y="${y(0) + 4}" font-size="11" fill="${COLORS.muted}">${esc(format(0))}</text>
${fails}
<polyline fill="none" stroke="${COLORS.stable}" stroke-width="2" points="${line('stable')}"/>
<polyline fill="none" stroke="${COLORS.canary}" stroke-width="2" points="${line('canary')}"/>
<text x="${pad.l}" y="14" font-size="12" fill="${COLORS.canary}">canary</text>
<text x="${pad.l + 60}" y="14" font-size="12" fill="${COLORS.stable}">stable</text>
</svg></figure>`;
}

/** The report of a deploy from its state (the status query, or the result's state). */
export function renderDeployReport(s: DeployState, meta: { workflowId: string; generatedAtMs: number }): string {
  const windows = s.analysis;
  const rows = windows
    .map((w) => {
      const c = w.compare;
      const judge = c?.errors
        ? `${c.canary.errors}/${c.canary.requests} vs ${c.stable.errors}/${c.stable.requests}; Fisher p=${c.errors.pValue.toPrecision(2)} (alpha ${c.errors.alpha.toPrecision(2)})` +
          `${c.latency?.pValue != null ? `; p95 ${c.canary.p95Ms} vs ${c.stable.p95Ms} ms, Mann-Whitney p=${c.latency.pValue.toPrecision(2)}` : ''}`
        : (c?.because ?? '–');
      return `<tr class="${esc(w.verdict)}"><td>${esc(time(w.toMs))}</td><td>${w.step}</td><td>${w.weight}%</td><td>${w.requests}</td><td>${w.errors5xx}</td><td>${w.p95Ms ?? '–'}</td><td>${w.stable ? w.stable.requests : '–'}</td><td>${w.stable ? w.stable.errors5xx : '–'}</td><td>${esc(judge)}</td><td>${esc(c?.verdict ?? '–')}</td><td><b>${esc(w.verdict)}</b>${w.because ? ` ${esc(w.because)}` : ''}</td></tr>`;
    })
    .join('\n');
  const side = s.baseline ? 'baseline' : 'stable';
  const baselineLine = s.baseline
    ? `<p>Compared with the baseline <code>${esc(s.baseline.releaseId)}</code>: a fresh process of the stable version ${esc(s.baseline.version)} at the canary's weight (analysis.compare.baseline), so that both sides carry the same load; the "${side}" columns are its figures.</p>`
    : '';
  const steps = (s.steps ?? [])
    .map((st) => `<li>step ${st.step} (${st.weight}%): ${esc(stepEvidenceLine(st))}</li>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(`deploy ${s.service} ${s.version} -> ${s.environment}`)}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;color:#1f2328}table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:3px 6px;font-size:12px}tr.fail{background:#ffebe9}tr.inconclusive{color:#656d76}figure{margin:1em 0}</style>
</head><body>
<h1>${esc(`deploy ${s.service} ${s.version} -> ${s.environment}`)}</h1>
<p>${esc(meta.workflowId)}, requested by ${esc(s.requestedBy)}; outcome: <b>${esc(s.outcome ?? s.phase)}</b>${s.reason ? `: ${esc(s.reason)}` : ''}</p>
<h2>Evidence per step</h2>
<ul>${steps || '<li>no step evidence (a deploy from before judged steps, or no traffic step yet)</li>'}</ul>
<h2>Canary vs ${side}, per window</h2>
${baselineLine}
${chart(windows, 'error rate since the step began (5xx + connection errors)', rates, pct)}
${chart(
  windows,
  'p95 latency since the step began, ms',
  (w) => (w.compare ? { canary: w.compare.canary.p95Ms, stable: w.compare.stable.p95Ms } : null),
  (v) => `${Math.round(v)} ms`,
)}
<table><thead><tr><th>at</th><th>step</th><th>weight</th><th>canary req</th><th>canary 5xx</th><th>canary p95</th><th>${side} req</th><th>${side} 5xx</th><th>judge evidence (step so far)</th><th>judge</th><th>verdict</th></tr></thead>
<tbody>
${rows}
</tbody></table>
<footer><p>Windows: the last ${windows.length} kept. The judge compares the canary with the ${s.baseline ? 'baseline' : 'stable release'} since the step began (a sequential test: the false-alarm rate is split across the step's windows). Generated ${esc(new Date(meta.generatedAtMs).toISOString())} by <code>runbook report</code>.</p></footer>
</body></html>
`;
}
