/**
 * The report's chart, as plain SVG text (no browser): one row per scenario,
 * with throughput (answers/s), p99 latency (ms, per second) and the pool's
 * remaining capacity over the scenario's time.
 */

export interface ChartRow {
  title: string;
  throughput: { t: number; v: number }[];
  p99: { t: number; v: number }[];
  remaining: { t: number; v: number }[];
  capacity: number;
}

const W = 1260;
const ROW = 250;
const PANEL_W = 340;
const PANEL_H = 170;
const LEFT = 70;
const GAP = 40; // plus 30 for the next panel's axis labels

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function fmt(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e9) return `${Math.round(v / 1e8) / 10}G`;
  if (a >= 1e6) return `${Math.round(v / 1e5) / 10}M`;
  if (a >= 1e4) return `${Math.round(v / 1e2) / 10}k`;
  if (a >= 100 || Number.isInteger(v)) return String(Math.round(v));
  return String(Math.round(v * 10) / 10);
}

function panel(
  x: number,
  y: number,
  title: string,
  unit: string,
  points: { t: number; v: number }[],
  color: string,
  yMaxHint?: number,
): string {
  const out: string[] = [];
  const tMax = Math.max(1, ...points.map((p) => p.t));
  const vMax = Math.max(yMaxHint ?? 0, ...points.map((p) => p.v), 1) * 1.05;
  const px = (t: number) => x + (t / tMax) * PANEL_W;
  const py = (v: number) => y + PANEL_H - (v / vMax) * PANEL_H;
  out.push(`<text x="${x}" y="${y - 8}" class="t">${esc(title)}</text>`);
  out.push(`<rect x="${x}" y="${y}" width="${PANEL_W}" height="${PANEL_H}" class="frame"/>`);
  for (let i = 0; i <= 4; i++) {
    const v = (vMax / 4) * i;
    const yy = py(v);
    out.push(`<line x1="${x}" y1="${yy}" x2="${x + PANEL_W}" y2="${yy}" class="grid"/>`);
    out.push(`<text x="${x - 6}" y="${yy + 4}" class="ax" text-anchor="end">${fmt(v)}</text>`);
  }
  for (let i = 0; i <= 4; i++) {
    const t = (tMax / 4) * i;
    out.push(`<text x="${px(t)}" y="${y + PANEL_H + 14}" class="ax" text-anchor="middle">${fmt(t)} s</text>`);
  }
  out.push(`<text x="${x + PANEL_W}" y="${y - 8}" class="ax" text-anchor="end">${esc(unit)}</text>`);
  if (yMaxHint !== undefined) {
    out.push(`<line x1="${x}" y1="${py(yMaxHint)}" x2="${x + PANEL_W}" y2="${py(yMaxHint)}" class="cap"/>`);
  }
  if (points.length > 0) {
    const d = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${px(p.t).toFixed(1)},${py(p.v).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.8"/>`);
  } else {
    out.push(`<text x="${x + PANEL_W / 2}" y="${y + PANEL_H / 2}" class="ax" text-anchor="middle">no data</text>`);
  }
  return out.join('\n');
}

export function renderChart(heading: string, rows: ChartRow[]): string {
  const height = 50 + rows.length * ROW;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" ` +
      `viewBox="0 0 ${W} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    '<style>.t{font-size:13px;font-weight:bold;fill:#222}.h{font-size:16px;font-weight:bold;fill:#111}' +
      '.ax{font-size:10px;fill:#555}.frame{fill:#fafafa;stroke:#bbb}.grid{stroke:#e4e4e4}' +
      '.cap{stroke:#c0392b;stroke-dasharray:4 3}.r{font-size:14px;font-weight:bold;fill:#333}</style>',
    `<rect width="${W}" height="${height}" fill="#fff"/>`,
    `<text x="20" y="28" class="h">${esc(heading)}</text>`,
  ];
  rows.forEach((row, i) => {
    const top = 50 + i * ROW;
    parts.push(`<text x="20" y="${top + 14}" class="r">${esc(row.title)}</text>`);
    const y = top + 48;
    parts.push(panel(LEFT, y, 'Throughput', 'answers/s', row.throughput, '#2874a6'));
    parts.push(panel(LEFT + PANEL_W + GAP + 30, y, 'p99 latency', 'ms', row.p99, '#ca6f1e'));
    parts.push(
      panel(
        LEFT + 2 * (PANEL_W + GAP + 30),
        y,
        'Pool remaining (dashed: capacity)',
        'minor units',
        row.remaining,
        '#1e8449',
        row.capacity,
      ),
    );
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
