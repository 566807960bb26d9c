// The overview (监测大屏) of one region: the caller's whole scope, or a town
// or village under it (drill-down). Every figure comes from the API, scoped
// by the token: a county token sees its county only.

import { all, get, scope } from './api.js';
import { categoryPie, loadCharts, riskBar, trendChart } from './charts.js';
import {
  CATEGORIES, RISK_FACTORS, card, count, date, dateTime, failure, gradeBadge, h, label, share,
  table, wan, yuan,
} from './format.js';
import { chain, learnName, loadNames, regionName } from './regions.js';

const MONTHS = 12;
const LIST_ROWS = 8;
const DAY_MS = 86400000;
const GRADES_SHOWN = [['red', 'tone-red'], ['orange', 'tone-orange'], ['yellow', 'tone-yellow']];
const LEVEL_NAMES = { city: '市', county: '县', town: '乡镇', village: '村' };

function regionLink(code, text = regionName(code)) {
  return h('a', { href: `#/?region=${code}` }, text);
}

function householdLink(id) {
  return h('a', { href: `#/household/${encodeURIComponent(id)}` }, id);
}

function breadcrumb(region) {
  const steps = chain(scope(), region);
  if (steps.length < 2) return h('span', { class: 'crumbs' }, '监测大屏');
  return h('nav', { class: 'crumbs', 'aria-label': '区划' },
    steps.map((code, i) => [
      i ? h('span', { class: 'sep', 'aria-hidden': 'true' }, '›') : null,
      i === steps.length - 1 ? h('strong', {}, regionName(code)) : regionLink(code),
    ]));
}

function searchForm() {
  const input = h('input', {
    type: 'search', name: 'household', placeholder: '输入户编号, 查看一户一档', 'aria-label': '户编号',
    autocomplete: 'off', spellcheck: 'false', maxlength: '128',
  });
  return h('form', {
    class: 'search',
    onsubmit: (e) => {
      e.preventDefault();
      const id = input.value.trim();
      if (id) window.location.hash = `#/household/${encodeURIComponent(id)}`;
    },
  }, input, h('button', { type: 'submit' }, '查询'));
}

function kpi(key, title, value, unit, tone = '') {
  return h('div', { class: `kpi ${tone}`, dataset: { kpi: key } },
    h('span', { class: 'kpi-label' }, title),
    h('span', {}, h('strong', { class: 'kpi-value' }, value), unit ? h('span', { class: 'kpi-unit' }, unit) : null));
}

function overdue(task, now) {
  return task.status === 'open' && task.due_at < now;
}

// Whole days past the due time.
function daysLate(task, now) {
  if (!overdue(task, now)) return '—';
  const days = Math.floor((now - task.due_at) / DAY_MS);
  return days ? `${days} 天` : '不足 1 天';
}

function kpis(stats, tasks, funds) {
  const g = (stats && stats.by_grade) || {};
  const now = Date.now();
  const open = tasks ? tasks.items : null;
  const special = funds ? funds.items.find((f) => f.fund_id === 'special') || funds.items[0] : null;
  return h('div', { class: 'kpis' },
    kpi('households', '监测户', stats ? count(stats.households) : '—', '户'),
    kpi('persons', '监测人口', stats ? count(stats.persons) : '—', '人'),
    GRADES_SHOWN.map(([grade, tone]) =>
      kpi(grade, label('grade', grade), stats ? count((g[grade] || {}).households || 0) : '—', '户', tone)),
    kpi('open-tasks', '待办核查任务', open ? count(open.length) : '—', '件'),
    kpi('overdue-tasks', '逾期核查任务', open ? count(open.filter((t) => overdue(t, now)).length) : '—', '件',
      'tone-warn'),
    kpi('fund-balance', special ? `${special.name}余额` : '保障资金余额', special ? wan(special.balance_fen) : '—',
      '万元'));
}

function categoryCard(stats) {
  const by = stats.by_category;
  const rows = CATEGORIES.map((c) => ({ name: c, ...(by[c] || { households: 0, persons: 0 }) }));
  return card('三类户占比分布图', [
    categoryPie(by),
    table([
      { title: '类别', cell: (r) => r.name },
      { title: '户数', num: true, cell: (r) => count(r.households) },
      { title: '人数', num: true, cell: (r) => count(r.persons) },
      { title: '占比', num: true, cell: (r) => share(r.households, stats.households) },
    ], rows, { testid: 'categories' }),
  ], { note: `监测户 ${count(stats.households)} 户` });
}

function riskCard(stats) {
  return card('返贫风险因素统计图', riskBar(stats.by_risk_factor, RISK_FACTORS),
    { note: '按主要风险因素, 合计即监测户数' });
}

function trendCard(trend) {
  if (trend.status === 'rejected') return card('月度趋势', failure(trend.reason));
  const months = trend.value.months;
  const total = months.reduce((a, m) => a + m.opened, 0);
  return card('月度趋势', trendChart(months), { note: `近 ${months.length} 个月新立案 ${count(total)} 件 (按月, UTC)` });
}

function tasksCard(tasks) {
  if (tasks.status === 'rejected') return card('核查任务', failure(tasks.reason));
  const now = Date.now();
  const open = tasks.value.items;
  const late = open.filter((t) => overdue(t, now));
  const shown = (late.length ? late : open).slice(0, LIST_ROWS);
  return card('核查任务', [
    h('p', { class: 'summary' },
      `待办 ${count(open.length)} 件, 其中逾期 `, h('strong', { class: 'warn' }, count(late.length)), ' 件; ',
      `抽样复核 ${count(open.filter((t) => t.kind === 'recheck').length)} 件。`),
    table([
      { title: '任务', cell: (t) => t.task_id },
      { title: '户编号', cell: (t) => householdLink(t.household_id) },
      { title: '类型', cell: (t) => label('taskKind', t.kind) },
      { title: '核查员', cell: (t) => t.assignee || '未分派' },
      { title: '期限', nowrap: true, cell: (t) => dateTime(t.due_at) },
      { title: '逾期', num: true, cell: (t) => daysLate(t, now) },
    ], shown, { empty: '没有待办任务', testid: 'tasks' }),
  ], { note: late.length ? '逾期任务 (最早到期在前)' : '即将到期' });
}

function regionsCard(breakdown, stats) {
  if (breakdown.status === 'rejected') return card('区域分布', failure(breakdown.reason), { wide: true });
  const b = breakdown.value;
  const leaf = b.level === 'village' && b.region.length === 12;
  const hh = (o, k) => ((o || {})[k] || {}).households || 0;
  const columns = [
    { title: LEVEL_NAMES[b.level] || '区划',
      cell: (r) => (leaf ? regionName(r.region_code) : regionLink(r.region_code)) },
    { title: '区划代码', cell: (r) => h('code', {}, r.region_code) },
    { title: '监测户', num: true, cell: (r) => count(r.households) },
    { title: '人口', num: true, cell: (r) => count(r.persons) },
    CATEGORIES.map((c) => ({ title: c, num: true, cell: (r) => count(hh(r.by_category, c)) })),
    { title: '红色', num: true, cell: (r) => count(hh(r.by_grade, 'red')) },
    { title: '橙色', num: true, cell: (r) => count(hh(r.by_grade, 'orange')) },
    { title: '在办案件', num: true, cell: (r) => count(r.open_cases) },
  ].flat();
  const note = leaf ? '本村' : `按${LEVEL_NAMES[b.level] || '区划'}统计, 点击名称下钻`;
  const total = stats ? `合计监测户 ${count(stats.households)} 户` : '';
  return card('区域分布', table(columns, b.items, { empty: '此区划暂无监测对象或在办案件', testid: 'regions' }),
    { wide: true, note: `${note}${total ? ` · ${total}` : ''}` });
}

function fundsCard(funds, payouts) {
  const parts = [];
  if (funds.status === 'rejected') parts.push(failure(funds.reason));
  else {
    parts.push(table([
      { title: '资金', cell: (f) => f.name },
      { title: '余额', num: true, cell: (f) => yuan(f.balance_fen) },
      { title: '已支付', num: true, cell: (f) => yuan(f.paid_fen) },
      { title: '预留待付', num: true, cell: (f) => yuan(f.pending_fen) },
    ], funds.value.items, { empty: '没有可见的资金账户', testid: 'funds' }));
  }
  if (payouts.status === 'rejected') parts.push(failure(payouts.reason));
  else {
    const list = payouts.value.items;
    const kinds = [...new Set(list.map((p) => p.kind))];
    const sum = (kind, status) => list.filter((p) => p.kind === kind && p.status === status)
      .reduce((a, p) => a + p.amount_fen, 0);
    parts.push(h('h3', {}, '保障金发放'));
    parts.push(table([
      { title: '类型', cell: (k) => label('payoutKind', k) },
      { title: '笔数', num: true, cell: (k) => count(list.filter((p) => p.kind === k).length) },
      { title: '已支付', num: true, cell: (k) => yuan(sum(k, 'posted')) },
      { title: '预留待付', num: true, cell: (k) => yuan(sum(k, 'pending')) },
    ], kinds, { empty: '尚无发放记录', testid: 'payout-kinds' }));
    parts.push(table([
      { title: '户编号', cell: (p) => householdLink(p.household_id) },
      { title: '类型', cell: (p) => label('payoutKind', p.kind) },
      { title: '金额', num: true, cell: (p) => yuan(p.amount_fen) },
      { title: '状态', cell: (p) => label('payoutStatus', p.status) },
      { title: '时间', cell: (p) => date(p.created_at) },
    ], list.slice(0, LIST_ROWS), { caption: '最近发放', empty: '尚无发放记录', testid: 'payouts' }));
    if (!payouts.value.complete) parts.push(h('p', { class: 'note' }, '发放记录较多, 仅统计最近的部分。'));
  }
  return card('资金与发放', parts, { note: '账户余额为账户全额 (保障资金全省共用); 发放仅统计本区划' });
}

function monitoredCard(cases) {
  if (cases.status === 'rejected') return card('最近纳入监测的户', failure(cases.reason));
  return card('最近纳入监测的户', table([
    { title: '户编号', cell: (c) => householdLink(c.household_id) },
    { title: '区划', cell: (c) => regionName(c.region_code) },
    { title: '类别', cell: (c) => c.category || '—' },
    { title: '等级', cell: (c) => gradeBadge(c.grade) },
    { title: '主要风险', cell: (c) => c.primary_risk_factor || (c.risk_factors || [])[0] || '—' },
    { title: '审定日期', cell: (c) => date(c.closed_at) },
  ], cases.value.items, { empty: '暂无监测户', testid: 'monitored' }), { note: '点击户编号查看一户一档' });
}

// Renders the overview of region (the token's scope when null) into view.
export async function overview(view, region) {
  const r = region || scope();
  const [stats, breakdown, trend, tasks, funds, payouts, monitored] = await Promise.allSettled([
    get('/api/v1/stats', { region: r }),
    get('/api/v1/stats/regions', { region: r }),
    get('/api/v1/stats/trend', { region: r, months: MONTHS }),
    all('/api/v1/tasks', { region: r, status: 'open' }),
    all('/api/v1/funds'),
    all('/api/v1/payouts', { region: r }),
    get('/api/v1/cases', { region: r, status: 'monitoring', limit: 20 }),
    loadNames(),
    loadCharts(),
  ]);
  // Without the statistics there is no dashboard: the caller shows why.
  if (stats.status === 'rejected') throw stats.reason;
  const s = stats.value;
  if (breakdown.status === 'fulfilled') {
    for (const row of breakdown.value.items) learnName(row.region_code, row.region_name);
  }
  view.replaceChildren(h('div', { class: 'page', dataset: { region: s.region } },
    h('div', { class: 'page-head' },
      h('div', {}, breadcrumb(s.region), h('h1', {}, `${regionName(s.region)} 防返贫动态监测`)),
      searchForm()),
    kpis(s, tasks.status === 'fulfilled' ? tasks.value : null, funds.status === 'fulfilled' ? funds.value : null),
    h('div', { class: 'grid' }, categoryCard(s), riskCard(s)),
    h('div', { class: 'grid' }, trendCard(trend), tasksCard(tasks)),
    regionsCard(breakdown, s),
    h('div', { class: 'grid' }, fundsCard(funds, payouts), monitoredCard(monitored))));
}
