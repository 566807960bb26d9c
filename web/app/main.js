// The dashboard's entry: the login screen and the routes.
//   #/                  the overview of the token's region
//   #/?region=CODE      the overview of a region under it (drill-down)
//   #/household/ID      a household's file (一户一档)

import { get, scope, signIn, signOut, token } from './api.js';
import { disposeAll, mountCharts } from './charts.js';
import { failure, h } from './format.js';
import { household } from './household.js';
import { overview } from './overview.js';
import { isRegionCode, loadNames, regionName } from './regions.js';

const view = document.getElementById('view');
const nav = document.getElementById('top-nav');
const who = document.getElementById('who');

function busy(name) {
  view.setAttribute('aria-busy', name ? 'false' : 'true');
  if (name) view.dataset.view = name;
  else delete view.dataset.view;
}

function loginError(err) {
  if (err.status === 401) return '令牌无效或已被撤销, 请检查后重新粘贴。';
  if (err.status === 403) return '此令牌的角色不能查看监测大屏, 请使用省、市、县或乡镇级令牌。';
  return `无法连接接口: ${err.message}`;
}

function showLogin(message = '') {
  disposeAll();
  nav.hidden = true;
  const input = h('textarea', {
    id: 'token', name: 'token', rows: '3', required: true, autocomplete: 'off', spellcheck: 'false',
    placeholder: '例如 lvt_…',
  });
  const note = h('p', { class: 'error', role: 'alert' }, message);
  const button = h('button', { type: 'submit' }, '登录');
  const form = h('form', {
    class: 'login',
    onsubmit: async (e) => {
      e.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      button.disabled = true;
      note.textContent = '';
      try {
        const stats = await get('/api/v1/stats', {}, value);
        signIn(value, stats.region);
        await route(); // where the address points: the overview, or a household linked to
      } catch (err) {
        note.textContent = loginError(err);
      } finally {
        button.disabled = false;
      }
    },
  },
  h('h1', {}, '监测大屏登录'),
  h('label', { for: 'token' }, '访问令牌 (Bearer token)'),
  input,
  h('p', { class: 'hint' }, '令牌由管理员用 levee token issue 签发, 按角色和区划限定可见范围。令牌只保存在本浏览器标签页, 关闭后需重新登录。'),
  note,
  button);
  view.replaceChildren(form);
  busy('login');
  input.focus();
}

function regionParam(hash) {
  const q = hash.indexOf('?');
  const region = q < 0 ? null : new URLSearchParams(hash.slice(q + 1)).get('region');
  return isRegionCode(region) ? region : null;
}

let generation = 0;

// Renders the page the address names. Each page is built off-screen and
// shown only if no later navigation started meanwhile.
async function route() {
  const mine = ++generation;
  disposeAll();
  if (!token()) {
    showLogin();
    return;
  }
  nav.hidden = false;
  await loadNames();
  who.textContent = `管辖区划: ${regionName(scope())} (${scope()})`;
  busy(null);
  const hash = window.location.hash || '#/';
  const m = hash.match(/^#\/household\/(.+)$/);
  const page = h('div');
  try {
    if (m) await household(page, decodeURIComponent(m[1]));
    else await overview(page, regionParam(hash));
  } catch (err) {
    if (mine !== generation) return;
    if (err.status === 401) {
      signOut();
      showLogin('令牌无效或已被撤销, 请重新登录。');
      return;
    }
    page.replaceChildren(h('div', { class: 'page' }, failure(err), h('p', {}, h('a', { href: '#/' }, '返回监测大屏'))));
    view.replaceChildren(...page.childNodes);
    busy('error');
    return;
  }
  if (mine !== generation) return;
  view.replaceChildren(...page.childNodes);
  mountCharts();
  busy(m ? 'household' : 'overview');
  window.scrollTo(0, 0);
}

document.getElementById('logout').addEventListener('click', () => {
  signOut();
  window.location.hash = '#/';
  showLogin('已退出登录。');
});
window.addEventListener('hashchange', route);
route();
