// Hand-written SVG charts for the report (no dependency): horizontal bars in panels, a log-log
// line chart, and a line chart over time. Plain shapes and text only, so that GitHub renders them as images.

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function num(x: number): string {
  const a = Math.abs(x);
  return a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : x.toFixed(2);
}

export interface Bar {
  label: string;
  value: number;
  color: string;
}

export interface Panel {
  title: string;
  bars: Bar[];
  note?: string;
}

/** Panels of horizontal bars stacked vertically, one shared linear axis per panel. */
export function barPanels(title: string, unit: string, panels: Panel[], legend: { label: string; color: string }[]): string {
  const width = 760;
  const labelW = 190;
  const plotW = width - labelW - 70;
  const barH = 16;
  const gap = 5;
  let y = 52;
  const parts: string[] = [];
  parts.push(`<text x="16" y="24" font-size="16" font-weight="600">${esc(title)}</text>`);
  // The legend on its own line under the title.
  let lx = 16;
  for (const item of legend) {
    parts.push(`<rect x="${lx}" y="35" width="10" height="10" fill="${item.color}"/>`);
    parts.push(`<text x="${lx + 14}" y="44" font-size="11">${esc(item.label)}</text>`);
    lx += 28 + item.label.length * 6.2;
  }
  for (const panel of panels) {
    y += 14;
    parts.push(`<text x="16" y="${y}" font-size="13" font-weight="600">${esc(panel.title)}</text>`);
    y += 8;
    const max = Math.max(...panel.bars.map((b) => b.value), 1e-9);
    const scale = plotW / (max * 1.08);
    const top = y;
    for (const b of panel.bars) {
      const w = Math.max(1, b.value * scale);
      parts.push(`<text x="${labelW - 8}" y="${y + barH - 4}" font-size="12" text-anchor="end">${esc(b.label)}</text>`);
      parts.push(`<rect x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${b.color}" rx="2"/>`);
      parts.push(`<text x="${(labelW + w + 5).toFixed(1)}" y="${y + barH - 4}" font-size="11" fill="#333">${num(b.value)}</text>`);
      y += barH + gap;
    }
    parts.push(`<line x1="${labelW}" y1="${top - 3}" x2="${labelW}" y2="${y - gap + 3}" stroke="#888"/>`);
    if (panel.note) {
      y += 12;
      parts.push(`<text x="${labelW}" y="${y}" font-size="11" fill="#666">${esc(panel.note)}</text>`);
    }
    y += 10;
  }
  y += 4;
  parts.push(`<text x="${labelW}" y="${y}" font-size="11" fill="#666">${esc(unit)}; shorter is faster</text>`);
  const height = y + 12;
  return svg(width, height, parts);
}

export interface Series {
  label: string;
  color: string;
  points: { x: number; y: number }[];
}

/** A log-log line chart with markers and the y value at each point. */
export function logLogChart(title: string, xLabel: string, yLabel: string, series: Series[]): string {
  const width = 760;
  const height = 420;
  const m = { left: 70, right: 130, top: 44, bottom: 50 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const ys = series.flatMap((s) => s.points.map((p) => p.y));
  const x0 = Math.floor(Math.log10(Math.min(...xs)));
  const x1 = Math.log10(Math.max(...xs) * 1.6);
  const y0 = Math.floor(Math.log10(Math.min(...ys)));
  const y1 = Math.ceil(Math.log10(Math.max(...ys)));
  const X = (x: number) => m.left + ((Math.log10(x) - x0) / Math.max(1e-9, x1 - x0)) * pw;
  const Y = (y: number) => m.top + ph - ((Math.log10(y) - y0) / Math.max(1, y1 - y0)) * ph;
  const parts: string[] = [];
  parts.push(`<text x="16" y="24" font-size="16" font-weight="600">${esc(title)}</text>`);
  for (let e = x0; e <= Math.floor(x1); e++) {
    const x = X(10 ** e);
    parts.push(`<line x1="${x}" y1="${m.top}" x2="${x}" y2="${m.top + ph}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${x}" y="${m.top + ph + 16}" font-size="11" text-anchor="middle">${(10 ** e).toLocaleString('en-US')}</text>`);
  }
  for (let e = y0; e <= y1; e++) {
    const y = Y(10 ** e);
    parts.push(`<line x1="${m.left}" y1="${y}" x2="${m.left + pw}" y2="${y}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${m.left - 6}" y="${y + 4}" font-size="11" text-anchor="end">${10 ** e >= 1 ? (10 ** e).toLocaleString('en-US') : (10 ** e).toString()}</text>`);
  }
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  parts.push(`<text x="${m.left + pw / 2}" y="${height - 12}" font-size="12" text-anchor="middle">${esc(xLabel)}</text>`);
  parts.push(
    `<text x="16" y="${m.top + ph / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 16 ${m.top + ph / 2})">${esc(yLabel)}</text>`,
  );
  series.forEach((s, k) => {
    const pts = s.points.map((p) => `${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const p of s.points) {
      parts.push(`<circle cx="${X(p.x).toFixed(1)}" cy="${Y(p.y).toFixed(1)}" r="3.5" fill="${s.color}"/>`);
      // Alternate label sides by series, so that close points of two series stay readable.
      const dy = k % 2 === 0 ? -6 : 14;
      parts.push(`<text x="${(X(p.x) + 6).toFixed(1)}" y="${(Y(p.y) + dy).toFixed(1)}" font-size="10" fill="${s.color}">${num(p.y)}</text>`);
    }
    const ly = m.top + 14 + k * 18;
    parts.push(`<line x1="${m.left + pw + 14}" y1="${ly - 4}" x2="${m.left + pw + 34}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"/>`);
    parts.push(`<text x="${m.left + pw + 40}" y="${ly}" font-size="12">${esc(s.label)}</text>`);
  });
  return svg(width, height, parts);
}

/** An interval of the x axis to shade, with its label (a load step). */
export interface Band {
  from: number;
  to: number;
  label: string;
}

/** A step (1, 2 or 5 × 10^k) that cuts `span` into about `count` intervals. */
function tickStep(span: number, count: number): number {
  const raw = span / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw)!;
}

/**
 * A line chart over time on linear axes, from y = 0. Each series is drawn as steps (a sample's
 * value holds until the next one, as a count of processes does); `dash` tells apart series
 * that run on top of each other. Bands shade intervals of x.
 */
export function timeChart(title: string, xLabel: string, yLabel: string, series: (Series & { dash?: string })[], bands: Band[] = []): string {
  const width = 760;
  const height = 360;
  const m = { left: 56, right: 120, top: 44, bottom: 50 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const ys = series.flatMap((s) => s.points.map((p) => p.y));
  const x0 = Math.min(0, ...xs);
  const x1 = Math.max(...xs, ...bands.map((b) => b.to));
  const yStep = tickStep(Math.max(1, ...ys), 6);
  const y1 = Math.ceil((Math.max(1, ...ys) * 1.1) / yStep) * yStep;
  const X = (x: number) => m.left + ((x - x0) / Math.max(1e-9, x1 - x0)) * pw;
  const Y = (y: number) => m.top + ph - (y / y1) * ph;
  const parts: string[] = [];
  parts.push(`<text x="16" y="24" font-size="16" font-weight="600">${esc(title)}</text>`);
  for (const b of bands) {
    parts.push(`<rect x="${X(b.from).toFixed(1)}" y="${m.top}" width="${(X(b.to) - X(b.from)).toFixed(1)}" height="${ph}" fill="#f3f0e0"/>`);
    parts.push(`<text x="${((X(b.from) + X(b.to)) / 2).toFixed(1)}" y="${m.top + 14}" font-size="11" fill="#7a6a20" text-anchor="middle">${esc(b.label)}</text>`);
  }
  const xStep = tickStep(x1 - x0, 10);
  for (let x = Math.ceil(x0 / xStep) * xStep; x <= x1 + 1e-9; x += xStep) {
    parts.push(`<line x1="${X(x).toFixed(1)}" y1="${m.top}" x2="${X(x).toFixed(1)}" y2="${m.top + ph}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${X(x).toFixed(1)}" y="${m.top + ph + 16}" font-size="11" text-anchor="middle">${+x.toFixed(6)}</text>`);
  }
  for (let y = 0; y <= y1 + 1e-9; y += yStep) {
    parts.push(`<line x1="${m.left}" y1="${Y(y).toFixed(1)}" x2="${m.left + pw}" y2="${Y(y).toFixed(1)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${m.left - 6}" y="${(Y(y) + 4).toFixed(1)}" font-size="11" text-anchor="end">${+y.toFixed(6)}</text>`);
  }
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  parts.push(`<text x="${m.left + pw / 2}" y="${height - 12}" font-size="12" text-anchor="middle">${esc(xLabel)}</text>`);
  parts.push(
    `<text x="16" y="${m.top + ph / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 16 ${m.top + ph / 2})">${esc(yLabel)}</text>`,
  );
  series.forEach((s, k) => {
    const pts: string[] = [];
    s.points.forEach((p, i) => {
      if (i > 0) pts.push(`${X(p.x).toFixed(1)},${Y(s.points[i - 1].y).toFixed(1)}`);
      pts.push(`${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`);
    });
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : '';
    parts.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${s.color}" stroke-width="2.5"${dash} stroke-linejoin="round"/>`);
    const ly = m.top + 14 + k * 18;
    parts.push(`<line x1="${m.left + pw + 14}" y1="${ly - 4}" x2="${m.left + pw + 38}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2.5"${dash}/>`);
    parts.push(`<text x="${m.left + pw + 44}" y="${ly}" font-size="12">${esc(s.label)}</text>`);
  });
  return svg(width, height, parts);
}

function svg(width: number, height: number, parts: string[]): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT}>\n` +
    `<rect width="100%" height="100%" fill="#fff"/>\n` +
    parts.join('\n') +
    '\n</svg>\n'
  );
}
