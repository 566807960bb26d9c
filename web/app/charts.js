// The charts, drawn with ECharts (web/vendor, put there by scripts/web-deps).
// Without it the dashboard still shows every figure in its tables.

import { CATEGORIES, count, h } from './format.js';

const ECHARTS_URL = '/web/vendor/echarts.esm.min.mjs';
const COLORS = {
  category: ['#c0392b', '#e67e22', '#8e44ad'],
  factor: '#2a6f97',
  opened: '#5b8ff9',
  approved: '#2e9d5b',
  rejected: '#a0a7b4',
};
const FONT = '"Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", sans-serif';

let lib = null;
let loadError = null;
const live = new Set();

export async function loadCharts() {
  if (lib || loadError) return lib;
  try {
    lib = await import(ECHARTS_URL);
  } catch (e) {
    loadError = e;
  }
  return lib;
}

// Shown instead of a chart when ECharts could not be loaded.
export function missingNote() {
  return h('p', { class: 'error' }, '图表组件未安装 (ECharts): 请运行 scripts/web-deps。下表数据不受影响。');
}

function reducedMotion() {
  return window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches;
}

const pending = [];

// Queues option for el; the chart is drawn by mountCharts once el is in the
// page (ECharts needs its size). Returns the element to place.
function draw(el, option) {
  if (!lib) return missingNote();
  pending.push([el, option]);
  return el;
}

// Draws the queued charts; call after the view is in the document.
export function mountCharts() {
  for (const [el, option] of pending.splice(0)) {
    if (!el.isConnected) continue;
    const chart = lib.init(el, null, { renderer: 'canvas' });
    chart.setOption({ animation: !reducedMotion(), textStyle: { fontFamily: FONT }, ...option });
    live.add(chart);
  }
}

// Disposes the charts of the page being left.
export function disposeAll() {
  pending.length = 0;
  for (const c of live) c.dispose();
  live.clear();
}

window.addEventListener('resize', () => {
  for (const c of live) c.resize();
});

// 三类户占比分布图: the share of each category among monitored households.
export function categoryPie(byCategory) {
  const data = CATEGORIES.map((name) => ({ name, value: (byCategory[name] || {}).households || 0 }));
  for (const [name, v] of Object.entries(byCategory)) {
    if (!CATEGORIES.includes(name)) data.push({ name, value: v.households || 0 });
  }
  // ECharts draws a zero sum as equal slices: say it instead.
  if (!data.some((d) => d.value > 0)) return h('div', { class: 'chart chart-empty', id: 'chart-category' }, '暂无监测户');
  const el = h('div', { class: 'chart', id: 'chart-category', role: 'img', 'aria-label': '三类户占比分布图' });
  return draw(el, {
    color: COLORS.category,
    tooltip: { trigger: 'item', formatter: '{b}<br/>{c} 户 ({d}%)' },
    legend: { bottom: 0, icon: 'circle' },
    series: [{
      name: '三类户', type: 'pie', radius: ['42%', '68%'], center: ['50%', '45%'],
      label: { formatter: '{b}\n{c} 户  {d}%', lineHeight: 18 },
      data,
    }],
  });
}

// 返贫风险因素统计图: monitored households by their primary risk factor.
export function riskBar(byFactor, factors) {
  const names = [...factors, ...Object.keys(byFactor).filter((f) => !factors.includes(f))];
  const values = names.map((f) => (byFactor[f] || {}).households || 0);
  const el = h('div', { class: 'chart', id: 'chart-risk', role: 'img', 'aria-label': '返贫风险因素统计图' });
  return draw(el, {
    color: [COLORS.factor],
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
    grid: { left: 8, right: 48, top: 8, bottom: 8, containLabel: true },
    xAxis: { type: 'value', minInterval: 1 },
    yAxis: { type: 'category', data: names, inverse: true },
    series: [{ name: '监测户数', type: 'bar', data: values, barMaxWidth: 18,
      label: { show: true, position: 'right', formatter: (p) => count(p.value) } }],
  });
}

// 月度趋势: cases opened, approved into monitoring and rejected per month.
export function trendChart(months) {
  const el = h('div', { class: 'chart', id: 'chart-trend', role: 'img', 'aria-label': '月度趋势图' });
  const x = months.map((m) => m.month);
  return draw(el, {
    color: [COLORS.opened, COLORS.approved, COLORS.rejected],
    tooltip: { trigger: 'axis' },
    legend: { bottom: 0 },
    grid: { left: 8, right: 16, top: 16, bottom: 36, containLabel: true },
    xAxis: { type: 'category', data: x },
    yAxis: { type: 'value', minInterval: 1 },
    series: [
      { name: '新立案', type: 'bar', data: months.map((m) => m.opened), barMaxWidth: 24 },
      { name: '县级审定纳入监测', type: 'line', data: months.map((m) => m.approved), symbolSize: 6 },
      { name: '终止识别', type: 'line', data: months.map((m) => m.rejected), symbolSize: 6 },
    ],
  });
}
