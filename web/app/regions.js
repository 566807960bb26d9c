// Region codes (统计用区划代码: 省2 市2 县2 乡3 村3) and their names. Names come
// from web/vendor/regions (copied from data/regions by scripts/web-deps) and,
// for villages (the files stop at towns), from the `region_name` the API
// gives with a household or a row of /stats/regions; where neither knows a
// name, the code is shown.

const LEVELS = [
  { len: 2, name: '省' }, { len: 4, name: '市' }, { len: 6, name: '县' },
  { len: 9, name: '乡镇' }, { len: 12, name: '村' },
];

let names = null;
const learned = new Map(); // code -> name, from the API's region_name

// The files are plain: no quoted fields, no commas inside names.
function parseCsv(text) {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/).filter((l) => l.length);
  const header = lines.shift().split(',');
  return lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [header[i], v])));
}

async function fetchCsv(url) {
  try {
    const res = await fetch(url);
    return res.ok ? parseCsv(await res.text()) : [];
  } catch {
    return [];
  }
}

// Loads the names once; never fails (an empty table shows codes).
export async function loadNames() {
  if (names) return names;
  const [counties, towns] = await Promise.all([
    fetchCsv('/web/vendor/regions/counties.csv'),
    fetchCsv('/web/vendor/regions/towns.csv'),
  ]);
  names = new Map();
  for (const r of counties) {
    names.set(r.city_code, r.city_name);
    names.set(r.county_code, r.county_name);
  }
  for (const r of towns) names.set(r.town_code, r.town_name);
  return names;
}

// Keeps a name the API gave (null or empty: nothing known).
export function learnName(code, name) {
  if (typeof code === 'string' && typeof name === 'string' && name) learned.set(code, name);
}

export function levelName(code) {
  const level = LEVELS.find((l) => l.len >= code.length);
  return level ? level.name : '';
}

// 清水县, or 村 620521100203 when the name is not known.
export function regionName(code) {
  const known = learned.get(code) || (names && names.get(code));
  return known || `${levelName(code)} ${code}`;
}

// The chain of regions from the token's scope down to code, e.g. for a
// county token looking at a village: county, town, village.
export function chain(scope, code) {
  const out = [scope];
  for (const l of LEVELS) {
    if (l.len > scope.length && l.len <= code.length) out.push(code.slice(0, l.len));
  }
  if (out[out.length - 1] !== code) out.push(code);
  return out;
}

export function isRegionCode(s) {
  return typeof s === 'string' && /^[0-9]{1,12}$/.test(s);
}
