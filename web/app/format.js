// How figures, times and codes read in Chinese, and a small DOM builder
// (text is always set as text, never parsed as HTML).

export const CATEGORIES = ['脱贫不稳定户', '边缘易致贫户', '突发严重困难户'];
export const RISK_FACTORS = ['因病', '因残', '因学', '因灾', '因意外事故', '因务工就业不稳',
  '因产业项目失败', '大额刚性支出', '其他'];
export const GRADES = ['red', 'orange', 'yellow'];

const LABELS = {
  grade: { red: '红色报警', orange: '橙色预警', yellow: '黄色提醒' },
  status: {
    normal: '正常', candidate: '待筛查', verifying: '入户核查中', reviewing: '审核中',
    publicizing: '公示中', monitoring: '监测帮扶中', eliminated: '风险已消除', rejected: '未纳入 (终止)',
  },
  stage: {
    verify: '入户核查', screen: '筛查', deliberate: '村级评议', publicize: '公示',
    town_review: '乡镇审核', county_approve: '县级审定', assist: '落实帮扶', closed: '已结束',
  },
  action: {
    alert_raised: '触发预警', case_opened: '立案识别', task_created: '生成核查任务',
    task_assigned: '分派核查员', verified: '入户核查结果', screen: '筛查', deliberate: '村级评议',
    publicize: '公示', publicity_ended: '公示期满', object: '公示异议', town_review: '乡镇审核',
    county_approve: '县级审定', reject: '终止识别', case_rejected: '终止识别', eliminate: '风险消除',
  },
  role: {
    system: '系统', province: '省级', city: '市级', county: '县级', town: '乡镇', village: '村级',
    investigator: '核查员', department: '部门', fund: '资金管理',
  },
  payoutKind: { illness: '因病防贫', disaster: '因灾防贫', education: '因学防贫', relief: '临时救助' },
  payoutStatus: {
    pending: '预留待付', posted: '已支付', voided: '已撤销', none: '无应付金额', refused: '不予支付',
  },
  taskStatus: { open: '待办', done: '已完成', cancelled: '已取消' },
  taskKind: { verify: '入户核查', recheck: '抽样复核' },
  householdType: { 脱贫户: '脱贫户', 一般农户: '一般农户' },
};

// The Chinese label of a code, or the code itself when it has none.
export function label(kind, code) {
  if (code === null || code === undefined || code === '') return '—';
  return (LABELS[kind] && LABELS[kind][code]) || String(code);
}

const INT = new Intl.NumberFormat('zh-CN');

export function count(n) {
  return n === null || n === undefined ? '—' : INT.format(n);
}

// Fen as 元 with two decimals, from integers only (no floating point).
export function yuan(fen) {
  if (fen === null || fen === undefined) return '—';
  const neg = fen < 0;
  const abs = Math.abs(fen);
  const whole = INT.format(Math.trunc(abs / 100));
  const cents = String(abs % 100).padStart(2, '0');
  return `${neg ? '-' : ''}${whole}.${cents} 元`;
}

// Fen as 万元 with two decimals, for large sums on the cards.
export function wan(fen) {
  if (fen === null || fen === undefined) return '—';
  const hundredths = Math.round(fen / 10000); // 1/100 of a 万元 is 100 元 = 10,000 fen
  const neg = hundredths < 0;
  const abs = Math.abs(hundredths);
  return `${neg ? '-' : ''}${INT.format(Math.trunc(abs / 100))}.${String(abs % 100).padStart(2, '0')}`;
}

export function share(part, whole) {
  if (!whole) return '—';
  return `${((part * 100) / whole).toFixed(1)}%`;
}

const BEIJING = new Intl.DateTimeFormat('zh-CN', {
  timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit', day: '2-digit',
  hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
});

function parts(ms) {
  const p = {};
  for (const { type, value } of BEIJING.formatToParts(new Date(ms))) p[type] = value;
  return p;
}

// UTC milliseconds as Beijing time, 2026-10-05 14:30.
export function dateTime(ms) {
  if (ms === null || ms === undefined) return '—';
  const p = parts(ms);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
}

export function date(ms) {
  if (ms === null || ms === undefined) return '—';
  const p = parts(ms);
  return `${p.year}-${p.month}-${p.day}`;
}

// An element: h('td', {class: 'num'}, '12'). Children may be nodes, text,
// arrays, or null (left out).
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function cellClass(c) {
  return [c.num ? 'num' : '', c.nowrap ? 'nowrap' : ''].join(' ').trim() || null;
}

// A table: columns are {title, cell(row) -> node or text, num (right-aligned),
// nowrap (kept on one line)}.
export function table(columns, rows, { empty = '暂无数据', caption = null, testid = null } = {}) {
  const head = h('tr', {}, columns.map((c) => h('th', { class: cellClass(c), scope: 'col' }, c.title)));
  const body = rows.length
    ? rows.map((r) => h('tr', {}, columns.map((c) => h('td', { class: cellClass(c) }, c.cell(r)))))
    : [h('tr', {}, h('td', { class: 'empty', colspan: columns.length }, empty))];
  return h('table', { class: 'data', dataset: testid ? { testid } : {} },
    caption ? h('caption', {}, caption) : null, h('thead', {}, head), h('tbody', {}, body));
}

export function gradeBadge(grade) {
  if (!grade) return '—';
  return h('span', { class: `badge grade-${grade}` }, label('grade', grade));
}

// A card of the dashboard: a title, an optional note, the content.
export function card(title, content, { note = null, id = null, wide = false } = {}) {
  return h('section', { class: wide ? 'card wide' : 'card', id },
    h('header', { class: 'card-head' }, h('h2', {}, title), note ? h('span', { class: 'note' }, note) : null),
    content);
}

// What a failed call says in a card.
export function failure(err) {
  const status = err && err.status;
  const why = status === 403 ? '您的令牌无权查看此项' : status === 404 ? '没有找到, 或不在您的管辖范围内'
    : '加载失败';
  const detail = err && typeof err.detail === 'string' ? err.detail : err && err.message;
  return h('p', { class: 'error' }, `${why}${detail ? `: ${detail}` : ''}`);
}
