// A household's whole file (一户一档): who lives there (ID numbers and phones
// masked as the API returns them), its cases, every recorded step with who,
// when and why (痕迹), and the payouts.

import { get } from './api.js';
import {
  card, count, date, dateTime, gradeBadge, h, label, table, yuan,
} from './format.js';
import { chain, learnName, loadNames, regionName } from './regions.js';

const DISABILITY = ['无', '一级', '二级', '三级', '四级'];

function field(title, value) {
  return [h('dt', {}, title), h('dd', {}, value)];
}

function riskList(hh) {
  const factors = hh.risk_factors || [];
  if (!factors.length) return '—';
  return factors.map((f) => h('span', { class: f === hh.primary_risk_factor ? 'tag primary' : 'tag' }, f));
}

function summary(hh) {
  return h('dl', { class: 'facts' },
    field('区划', chain(hh.region_code.slice(0, 6), hh.region_code).map(regionName).join(' › ')),
    field('户类型', hh.household_type ? `${hh.household_type}${hh.exit_year ? ` (${hh.exit_year} 年脱贫)` : ''}` : '—'),
    field('监测状态', h('span', { class: `status status-${hh.status}` }, label('status', hh.status))),
    field('监测类别', hh.category || '—'),
    field('预警等级', gradeBadge(hh.grade)),
    field('主要风险 (核查认定)', hh.primary_risk_factor || '—'),
    field('风险因素 (数据证据)', riskList(hh)),
    field('人均纯收入', hh.income_per_capita_fen === null ? '—' : `${yuan(hh.income_per_capita_fen)} / 人·年`),
    field('近12个月刚性支出', yuan(hh.rigid_expense_12m_fen)),
    field('家庭年纯收入 (底册)', yuan(hh.annual_income_fen)),
    field('户主电话', hh.phone || '—'));
}

function members(list) {
  return table([
    { title: '姓名', cell: (m) => m.name },
    { title: '与户主关系', cell: (m) => m.relation || '—' },
    { title: '身份证号', cell: (m) => h('code', {}, m.id_number) },
    { title: '残疾等级', cell: (m) => DISABILITY[m.disability_grade] || String(m.disability_grade) },
    { title: '大病慢病', cell: (m) => (m.chronic_illness ? '是' : '否') },
    { title: '劳动能力', cell: (m) => m.labour || '—' },
    { title: '联系电话', cell: (m) => m.phone || '—' },
  ], list, { empty: '没有成员记录', testid: 'members' });
}

function cases(list) {
  return table([
    { title: '案件', cell: (c) => c.case_id },
    { title: '状态', cell: (c) => label('status', c.status) },
    { title: '下一环节', cell: (c) => label('stage', c.stage) },
    { title: '等级', cell: (c) => gradeBadge(c.grade) },
    { title: '类别', cell: (c) => c.category || '—' },
    { title: '主要风险', cell: (c) => c.primary_risk_factor || '—' },
    { title: '立案时间', nowrap: true, cell: (c) => dateTime(c.opened_at) },
    { title: '办结期限', nowrap: true, cell: (c) => dateTime(c.deadline) },
    { title: '审定/结案', nowrap: true, cell: (c) => dateTime(c.closed_at) },
  ], list, { empty: '从未立案', testid: 'cases' });
}

function timeline(list) {
  return table([
    { title: '时间', nowrap: true, cell: (t) => dateTime(t.time) },
    { title: '环节', nowrap: true, cell: (t) => label('action', t.action) },
    { title: '经办人', nowrap: true, cell: (t) => t.actor },
    { title: '角色', nowrap: true, cell: (t) => label('role', t.role) },
    { title: '说明', cell: (t) => h('span', { class: 'detail' }, t.detail || '—') },
    { title: '案件', nowrap: true, cell: (t) => t.case_id || '—' },
  ], list, { empty: '没有记录', testid: 'timeline' });
}

function payouts(list) {
  return table([
    { title: '发放单', cell: (p) => h('code', {}, p.payout_id) },
    { title: '类型', cell: (p) => label('payoutKind', p.kind) },
    { title: '年度', cell: (p) => p.year },
    { title: '金额', num: true, cell: (p) => yuan(p.amount_fen) },
    { title: '状态', cell: (p) => label('payoutStatus', p.status) },
    { title: '时间', nowrap: true, cell: (p) => dateTime(p.created_at) },
  ], list, { empty: '没有发放记录', testid: 'household-payouts' });
}

// Renders the file of household id into view.
export async function household(view, id) {
  const [hh] = await Promise.all([get(`/api/v1/households/${encodeURIComponent(id)}`), loadNames()]);
  learnName(hh.region_code, hh.region_name);
  view.replaceChildren(h('div', { class: 'page household', dataset: { household: hh.household_id } },
    h('div', { class: 'page-head' },
      h('div', {},
        h('nav', { class: 'crumbs' }, h('a', { href: '#/' }, '‹ 返回监测大屏'), h('span', { class: 'sep' }, '·'),
          h('a', { href: `#/?region=${hh.region_code}` }, `本村 (${regionName(hh.region_code)})`)),
        h('h1', {}, `一户一档 · ${hh.household_id}`))),
    card('基本情况', summary(hh), { wide: true }),
    card('家庭成员', members(hh.members), { wide: true, note: `${count(hh.members.length)} 人` }),
    card('案件', cases(hh.cases), { wide: true }),
    card('全过程记录 (痕迹)', timeline(hh.timeline),
      { wide: true, note: `${count(hh.timeline.length)} 条, 谁、何时、为何` }),
    card('帮扶资金发放', payouts(hh.payouts), { wide: true })));
}
