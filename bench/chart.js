'use strict';
// The bench's ratios as a horizontal bar chart in SVG (no dependencies): one bar per native
// variant and workload, its length the ratio to the store's JavaScript peer, with a line at
// 1.0x where the two are even.

const escape = (text) =>
  String(text).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

/**
 * @param {string} title
 * @param {{label: string, bars: {name: string, ratio: number}[]}[]} groups
 * @returns {string} an SVG document
 */
function ratioChart(title, groups) {
  const COLORS = ['#3b6ea8', '#e08a2c', '#5a9e4b', '#9b59b6'];
  const names = [...new Set(groups.flatMap((g) => g.bars.map((b) => b.name)))];
  const max = Math.max(2, ...groups.flatMap((g) => g.bars.map((b) => b.ratio)).filter(Number.isFinite));
  const scale = Math.ceil(max);
  const [left, width, barHeight, gap, top, labelHeight] = [120, 560, 14, 10, 44, 18];
  const rows = groups.reduce((n, g) => n + g.bars.length, 0);
  const height = top + rows * barHeight + groups.length * (gap + labelHeight) + 50;
  const x = (ratio) => left + (Math.max(0, ratio) / scale) * width;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${left + width + 80}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="22" font-size="15" font-weight="bold">${escape(title)}</text>`,
  ];
  for (let t = 0; t <= scale; t++) {
    out.push(
      `<line x1="${x(t)}" y1="${top - 6}" x2="${x(t)}" y2="${height - 40}" stroke="${t === 1 ? '#c0392b' : '#ddd'}" stroke-width="${t === 1 ? 2 : 1}"/>`,
    );
    out.push(`<text x="${x(t)}" y="${height - 26}" text-anchor="middle" fill="#555">${t}.0x</text>`);
  }
  let y = top;
  for (const group of groups) {
    out.push(`<text x="10" y="${y + labelHeight - 5}" font-weight="bold">${escape(group.label)}</text>`);
    y += labelHeight;
    for (const bar of group.bars) {
      const color = COLORS[names.indexOf(bar.name) % COLORS.length];
      const ratio = Number.isFinite(bar.ratio) ? bar.ratio : 0;
      out.push(`<text x="${left - 8}" y="${y + barHeight - 3}" text-anchor="end">${escape(bar.name)}</text>`);
      out.push(`<rect x="${left}" y="${y}" width="${x(ratio) - left}" height="${barHeight - 2}" fill="${color}"/>`);
      out.push(`<text x="${x(ratio) + 4}" y="${y + barHeight - 3}">${ratio.toFixed(2)}x</text>`);
      y += barHeight;
    }
    y += gap;
  }
  out.push(
    `<text x="${left}" y="${height - 8}" fill="#555">requests/s through a ThinkJS app, native / JavaScript peer (red line: even)</text>`,
  );
  out.push('</svg>');
  return out.join('\n') + '\n';
}

module.exports = { ratioChart };
