#!/usr/bin/env python3
"""The dashboard (监测大屏) end to end, on a private stack (standard library only).

    python3 tests/integration/test_dashboard.py

0. Two sample counties (gen-sample: 清水县 620521, larger, and 秦安县 620522)
   are loaded; cases are walked with the CLI: most of 620521's to 县级审定
   with varied primary risk factors, two excluded, two left in 公示; one of
   620522's approved; some payouts paid. A county token for 620521 is issued.
1. The gateway serves web/: content types, ETag and 304, security headers,
   HEAD; nothing outside web/app and web/vendor (no traversal, no hidden
   file, no symbolic link out, no package files); a web root that is not a
   folder stops the gateway at start.
2. The statistics the dashboard reads: /stats/regions (by town, by
   village, scoped) and /stats/trend (cases per month), the region filter of
   /tasks and /payouts; each figure against the database.
3. Chromium (playwright-core, web/test/dashboard.mjs) logs in with the
   county token and the test compares what the pages show with the API's
   JSON: the cards (households, persons, 红/橙/黄), the two charts of the
   seed report, the trend, the town table and a drill-down, tasks, funds
   and payouts, a household's file with every timeline row; nothing of
   620522 appears; logout forgets the token.

Screenshots and what the browser saw go to <build>/test-artifacts/dashboard/.
The exit status is 1 when any check failed.
"""

import datetime
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from lvstack import ROOT, Checks, Stack, free_port_base  # noqa: E402

COUNTY, OTHER = "620521", "620522"
MONTH = "2026-10"
APPROVE_FACTORS = ["因病"] * 7 + ["因残", "因学", "大额刚性支出"]  # primary factor per approved case
EXCLUDE, IN_PUBLICITY = 2, 2
PAY = 4  # payouts of COUNTY paid; the others stay reserved
CATEGORIES = ["脱贫不稳定户", "边缘易致贫户", "突发严重困难户"]
RISK_FACTORS = ["因病", "因残", "因学", "因灾", "因意外事故", "因务工就业不稳", "因产业项目失败", "大额刚性支出", "其他"]
ACTION_LABELS = {"county_approve": "县级审定", "town_review": "乡镇审核", "deliberate": "村级评议",
                 "publicize": "公示", "verified": "入户核查结果", "case_opened": "立案识别"}
FULL_ID_RE = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")
NODE_TIMEOUT = 150
BROWSER = os.environ.get("LEVEE_CHROMIUM", "/usr/bin/chromium")

CK = Checks("dashboard")


# ---- HTTP ---------------------------------------------------------------------

class Http:
    """Raw requests (paths are sent exactly as given, never normalised)."""

    def __init__(self, port):
        self.port = port

    def request(self, method, path, token=None, headers=None):
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, headers=h)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def json(self, path, token, **query):
        q = urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        status, _, body = self.request("GET", path + ("?" + q if q else ""), token)
        if status != 200:
            raise AssertionError("GET %s?%s: %d %s" % (path, q, status, body[:300]))
        return json.loads(body)

    def status(self, path, token, **query):
        q = urllib.parse.urlencode(query)
        return self.request("GET", path + ("?" + q if q else ""), token)[0]

    def walk(self, path, token, **query):
        items, cursor = [], None
        while True:
            doc = self.json(path, token, limit=500, cursor=cursor, **query)
            items += doc["items"]
            cursor = doc["next_cursor"]
            if not cursor:
                return items


# ---- formats the page must use ----------------------------------------------------

def grouped(n):
    return format(n, ",")


def yuan(fen):
    sign = "-" if fen < 0 else ""
    return "%s%s.%02d 元" % (sign, grouped(abs(fen) // 100), abs(fen) % 100)


def wan(fen):
    hundredths = (fen + 5000) // 10000
    return "%s.%02d" % (grouped(hundredths // 100), hundredths % 100)


def beijing(ms):
    t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone(datetime.timedelta(hours=8)))
    return t.strftime("%Y-%m-%d %H:%M")


def num(text):
    return int(text.replace(",", "")) if text and re.fullmatch(r"[0-9,]+", text) else text


# ---- the sample ---------------------------------------------------------------------

def gen_sample(out, county, households, medical, seed):
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "gen-sample"), "--households", str(households),
           "--medical", str(medical), "--county", county, "--seed", str(seed), "--month", MONTH,
           "--dirty", "0.01", "--out", out]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return os.path.join(out, "registry.csv"), os.path.join(out, "medical.csv")


class Sample:
    """Loads the two counties and walks cases with the CLI, as a county's
    staff would over some weeks (the 公示 wait is cut short in the database,
    as scripts/demo does)."""

    def __init__(self, st, tmp):
        self.st = st
        self.tmp = tmp

    def j(self, *args, timeout=180):
        return json.loads(self.st.levee(*(list(args) + ["--json"]), timeout=timeout).stdout)

    def load(self):
        for county, households, medical, seed in ((COUNTY, 1200, 12000, 7), (OTHER, 150, 1500, 8)):
            reg, med = gen_sample(os.path.join(self.tmp, county), county, households, medical, seed)
            for source, path in (("registry", reg), ("medical", med)):
                r = self.j("load", source, path)
                CK.eq(r["status"], "done", "%s %s loaded" % (county, source))
        self.j("wait-idle", "--timeout", "180")
        self.st.levee("investigator-add", "INV-%s-01" % COUNTY, "保险公司核查员王明", COUNTY)
        self.st.levee("investigator-add", "INV-%s-01" % OTHER, "保险公司核查员李强", OTHER)
        # 抽样复核 goes to a second investigator of the county.
        self.st.levee("investigator-add", "INV-%s-02" % COUNTY, "县级复核员赵敏", COUNTY)
        self.st.levee("investigator-add", "INV-%s-02" % OTHER, "县级复核员孙丽", OTHER)

        def assigned():
            rows = self.st.psql("SELECT count(*) FILTER (WHERE assignee IS NULL), count(*) FROM task "
                                "WHERE status = 'open'")
            return rows and rows[0][0] == "0" and int(rows[0][1]) > 0
        self.st.wait_for(assigned, timeout=60, what="every open task assigned")

    def candidates(self, county, n):
        """n cases waiting for 筛查 and 入户核查 in county, taken in turn from each
        category and grade, so that the charts show the mix a county has."""
        rows = self.st.psql(
            "SELECT case_id FROM (SELECT case_id, category, grade, row_number() OVER "
            "  (PARTITION BY category, grade ORDER BY case_id) AS turn FROM hcase "
            "  WHERE status = 'candidate' AND county = :'c') x "
            "ORDER BY turn, category, grade, case_id LIMIT :n", {"c": county, "n": n})
        return [r[0] for r in rows]

    def verify(self, case_id, risk=None, excluded=None):
        hid = case_id.rsplit("-", 1)[0]
        income, members, rigid = self.st.psql(
            "SELECT round(income_fen / 100.0, 2), members, round(rigid_fen / 100.0, 2) "
            "FROM household_state WHERE household_id = :'h'", {"h": hid})[0]
        county = case_id[1:7]
        args = ["task-result", case_id + "-V1", "--income", income, "--members", members, "--rigid", rigid,
                "--actor", "INV-%s-01" % county, "--findings", "入户核实: 住院自付费用属实"]
        if risk:
            args += ["--risk", risk]
        if excluded:
            args += ["--excluded", excluded]
        self.st.levee(*args)
        recheck = self.st.psql("SELECT task_id, assignee FROM task WHERE case_id = :'c' AND kind = 'recheck' "
                               "AND status = 'open'", {"c": case_id})
        if recheck:
            # Drawn for 抽样复核: the second investigator finds the same.
            task, who = recheck[0]
            self.st.levee("task-result", task, "--income", income, "--members", members, "--rigid", rigid,
                          "--actor", who or "县级复核员")

    def step(self, case_id, name, note, actor):
        self.st.levee("step", case_id, name, "pass", "--note", note, "--actor", actor)

    def overdue(self):
        """Three open tasks of COUNTY 1, 2 and 3 days past their due time, as
        if the investigator had not gone; then waits until the task table
        stays put (dispatch may escalate overdue tasks)."""
        self.st.psql("UPDATE task t SET due_ms = (extract(epoch FROM now()) * 1000)::bigint - o.days * 86400000 "
                     "FROM (SELECT task_id, row_number() OVER (ORDER BY task_id) AS days FROM task "
                     "  WHERE status = 'open' AND county = :'c' ORDER BY task_id LIMIT 3) o "
                     "WHERE t.task_id = o.task_id", {"c": COUNTY})
        state = lambda: self.st.psql("SELECT task_id, status, assignee, due_ms FROM task ORDER BY task_id")
        last, same_since = state(), time.monotonic()
        deadline = time.monotonic() + 30
        while time.monotonic() - same_since < 2.0 and time.monotonic() < deadline:
            time.sleep(0.5)
            now = state()
            if now != last:
                last, same_since = now, time.monotonic()

    def walk(self):
        cases = self.candidates(COUNTY, len(APPROVE_FACTORS) + EXCLUDE + IN_PUBLICITY)
        if len(cases) < len(APPROVE_FACTORS) + EXCLUDE + IN_PUBLICITY:
            raise AssertionError("the sample has too few cases: %d" % len(cases))
        other = self.candidates(OTHER, 1)
        approve = cases[:len(APPROVE_FACTORS)] + other
        factors = APPROVE_FACTORS + ["因病"]
        excluded = cases[len(APPROVE_FACTORS):len(APPROVE_FACTORS) + EXCLUDE]
        publicity = cases[len(APPROVE_FACTORS) + EXCLUDE:]
        for case_id, risk in zip(approve + publicity, factors + ["因病"] * IN_PUBLICITY):
            self.verify(case_id, risk)
            self.step(case_id, "deliberate", "村民代表会议评议通过", "村委会")
            self.step(case_id, "publicize", "在村务公开栏公示", "村委会")
        for case_id in excluded:
            self.verify(case_id, excluded="家庭成员有登记在册的小汽车")
        self.st.psql("UPDATE hcase SET publicity_end_ms = 0 WHERE case_id = ANY (string_to_array(:'ids', ','))",
                     {"ids": ",".join(approve)})
        self.st.wait_for(lambda: self.st.scalar(
            "SELECT count(*) FROM hcase WHERE stage = 'town_review' AND status = 'reviewing' "
            "AND case_id = ANY (string_to_array(:'ids', ','))", {"ids": ",".join(approve)}) == str(len(approve)),
            timeout=60, what="公示 over")
        for case_id in approve:
            self.step(case_id, "town_review", "乡镇审核通过", "乡镇民政办")
            self.step(case_id, "county_approve", "县级审定纳入监测", "县乡村振兴局")
        self.j("wait-idle", "--timeout", "120")
        self.st.wait_for(lambda: self.st.scalar("SELECT count(*) FROM payout") == str(len(approve)),
                         timeout=60, what="a payout per approved case")
        for (pid,) in self.st.psql("SELECT payout_id FROM payout WHERE county = :'c' AND status = 'pending' "
                                   "ORDER BY payout_id LIMIT :n", {"c": COUNTY, "n": PAY}):
            self.st.levee("pay", pid, "--actor", "县防贫基金管理员")
        self.j("wait-idle", "--timeout", "120")
        self.overdue()
        self.approved, self.excluded, self.publicity = approve[:-1], excluded, publicity
        self.other_household = other[0].rsplit("-", 1)[0]
        CK.eq(int(self.st.scalar("SELECT count(*) FROM hcase WHERE status = 'monitoring' AND county = :'c'",
                                 {"c": COUNTY})), len(APPROVE_FACTORS), "%s: cases walked to 县级审定" % COUNTY)


def issue(st, role, prefix, *extra):
    return json.loads(st.levee("token", "issue", role, prefix, "--json", *extra).stdout)["token"]


# ---- 1. static files -------------------------------------------------------------

def web_copy(tmp):
    """The web root the stack serves: a copy of web/ (index.html, app,
    vendor) plus traps the gateway must not serve: a symbolic link out of
    the root, a hidden file, a file of an unknown type."""
    src = os.path.join(ROOT, "web")
    root = os.path.join(tmp, "web")
    os.makedirs(root)
    shutil.copy(os.path.join(src, "index.html"), root)
    shutil.copy(os.path.join(src, "package.json"), root)
    for d in ("app", "vendor"):
        shutil.copytree(os.path.join(src, d), os.path.join(root, d))
    with open(os.path.join(tmp, "outside.js"), "w") as f:
        f.write("SECRET-OUTSIDE\n")
    os.symlink(os.path.join(tmp, "outside.js"), os.path.join(root, "app", "leak.js"))
    with open(os.path.join(root, "app", ".hidden.js"), "w") as f:
        f.write("SECRET-HIDDEN\n")
    with open(os.path.join(root, "app", "run.sh"), "w") as f:
        f.write("SECRET-SCRIPT\n")
    return root


def test_static(st, web, root):
    CK.log("== 1. the gateway serves web/")
    status, h, body = web.request("GET", "/")
    with open(os.path.join(root, "index.html"), "rb") as f:
        index = f.read()
    CK.eq((status, h.get("content-type")), (200, "text/html; charset=utf-8"), "GET /: the dashboard's page")
    CK.eq(body, index, "GET /: web/index.html as it is on disk")
    CK.eq(h.get("cache-control"), "no-cache", "GET /: revalidated on every use (Cache-Control: no-cache)")
    etag = h.get("etag", "")
    CK.ok(re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+\.[0-9a-f]+"', etag), "GET /: a strong ETag", etag)
    CK.ok("default-src 'self'" in h.get("content-security-policy", "") and h.get("x-frame-options") == "DENY"
          and h.get("x-content-type-options") == "nosniff" and h.get("referrer-policy") == "no-referrer",
          "GET /: CSP, X-Frame-Options, nosniff, Referrer-Policy", h)
    status, h304, body = web.request("GET", "/", headers={"If-None-Match": etag})
    CK.eq((status, body, h304.get("etag")), (304, b"", etag), "GET / with its ETag: 304 Not Modified, no body")
    CK.eq(web.request("GET", "/", headers={"If-None-Match": '"0-0.0"'})[0], 200, "GET / with another ETag: 200")
    status, hh, body = web.request("HEAD", "/")
    CK.eq((status, body, hh.get("content-length")), (200, b"", str(len(index))), "HEAD /: headers, no body")
    CK.eq(web.request("POST", "/")[0], 405, "POST /: 405")

    files = {
        "/web/app/main.js": ("app/main.js", "text/javascript; charset=utf-8"),
        "/web/app/app.css": ("app/app.css", "text/css; charset=utf-8"),
        "/web/vendor/echarts.esm.min.mjs": ("vendor/echarts.esm.min.mjs", "text/javascript; charset=utf-8"),
        "/web/vendor/regions/towns.csv": ("vendor/regions/towns.csv", "text/csv; charset=utf-8"),
    }
    for path, (rel, ctype) in files.items():
        status, h, body = web.request("GET", path)
        with open(os.path.join(root, rel), "rb") as f:
            want = f.read()
        CK.ok(status == 200 and h.get("content-type") == ctype and body == want,
              "GET %s: %s, the file's %d bytes" % (path, ctype, len(want)), (status, h.get("content-type"), len(body)))

    secrets = (b"SECRET", b"root:", b"#!/usr/bin/env", b'"name": "levee-dashboard"', b"playwright")
    refused = [
        "/web/app/../../scripts/levee", "/web/app/..%2f..%2fpackage.json", "/web/%2e%2e/package.json",
        "/web/app/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/web/../README.md", "/web/vendor/../../../../etc/passwd",
        "/web/app/leak.js", "/web/app/.hidden.js", "/web/app/%2ehidden.js", "/web/app/run.sh",
        "/web/package.json", "/web/index.html", "/web/node_modules/echarts/package.json",
        "/web/test/dashboard.mjs", "/web/app/", "/web/app//main.js", "/web/vendor/regions",
        "/web/app/main.js%00.css", "/web/app/main.js/", "/web/app/nope.js", "/web/", "/web",
        "/web/app/main.js?x=../../package.json",
    ]
    for path in refused:
        status, h, body = web.request("GET", path)
        ok = status == 404 and h.get("content-type", "").startswith("application/json") and \
            not any(s in body for s in secrets)
        if path.endswith("?x=../../package.json"):  # the query is not part of the path: the file itself
            ok = status == 200 and body == open(os.path.join(root, "app", "main.js"), "rb").read()
        CK.ok(ok, "GET %s: %s" % (path, "200, the query ignored" if "?" in path else "404, nothing leaks"),
              (status, body[:120]))

    metrics = web.request("GET", "/metrics")[2].decode()
    CK.ok('route="/web/*",method="GET",status="200"' in metrics and 'route="/",method="GET",status="304"' in metrics,
          "metrics label the dashboard's files by route (/, /web/*), 304 counted")

    # A web root that is not a folder: the gateway does not start.
    env = dict(st.env, LEVEE_WEB_ROOT=os.path.join(root, "index.html"), LEVEE_HTTP_PORT=str(st.port_base + 19))
    cp = subprocess.run([os.path.join(st.env["LEVEE_BIN"], "levee-gateway")], env=env, capture_output=True,
                        text=True, timeout=30)
    CK.ok(cp.returncode == 1 and "LEVEE_WEB_ROOT is not a folder" in cp.stderr + cp.stdout,
          "LEVEE_WEB_ROOT naming a file: the gateway exits 1 saying why", (cp.returncode, cp.stderr[-300:]))


# ---- 2. the statistics endpoints -----------------------------------------------------

def sql_by_child(st, prefix, length):
    """{child code: (monitored households, persons, open cases)} from the tables."""
    rows = st.psql(
        "SELECT left(c.region_code, :len), count(*) FILTER (WHERE c.status = 'monitoring'), "
        "coalesce(sum((SELECT count(*) FROM person p WHERE p.household_id = c.household_id)) "
        "  FILTER (WHERE c.status = 'monitoring'), 0), count(*) FILTER (WHERE c.status <> 'monitoring') "
        "FROM hcase c WHERE c.region_code LIKE :'p' || '%' AND c.status NOT IN ('eliminated', 'rejected') "
        "GROUP BY 1 ORDER BY 1", {"len": length, "p": prefix})
    return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}


def test_stats(st, web, T):
    CK.log("== 2. /stats/regions, /stats/trend, region filters")
    county, admin = T["county"], T["admin"]
    stats = web.json("/api/v1/stats", county)
    CK.eq((stats["region"], stats["households"]), (COUNTY, len(APPROVE_FACTORS)),
          "county token: /stats covers %s, its approved households" % COUNTY)
    CK.eq(web.json("/api/v1/stats", admin)["households"], len(APPROVE_FACTORS) + 1,
          "province token: both counties")

    regions = web.json("/api/v1/stats/regions", county)
    CK.eq((regions["region"], regions["level"]), (COUNTY, "town"), "/stats/regions of a county: by town")
    got = {i["region_code"]: (i["households"], i["persons"], i["open_cases"]) for i in regions["items"]}
    CK.eq(got, sql_by_child(st, COUNTY, 9), "/stats/regions: households, persons, open cases per town = the tables")
    CK.eq((sum(i["households"] for i in regions["items"]), sum(i["persons"] for i in regions["items"])),
          (stats["households"], stats["persons"]), "/stats/regions adds up to /stats")
    cats = {c: sum(i["by_category"][c]["households"] for i in regions["items"]) for c in CATEGORIES}
    CK.eq(cats, {c: stats["by_category"][c]["households"] for c in CATEGORIES},
          "/stats/regions: categories add up to /stats")
    CK.ok(all(set(CATEGORIES) <= set(i["by_category"]) and {"red", "orange", "yellow"} <= set(i["by_grade"])
              for i in regions["items"]), "/stats/regions: every category and grade present (zero when none)")
    town = max(regions["items"], key=lambda i: (i["households"], i["region_code"]))["region_code"]
    villages = web.json("/api/v1/stats/regions", county, region=town)
    CK.eq((villages["region"], villages["level"]), (town, "village"), "/stats/regions of a town: by village")
    CK.eq({i["region_code"]: (i["households"], i["persons"], i["open_cases"]) for i in villages["items"]},
          sql_by_child(st, town, 12), "/stats/regions of %s = the tables" % town)
    village = villages["items"][0]["region_code"]
    one = web.json("/api/v1/stats/regions", county, region=village)
    CK.eq([i["region_code"] for i in one["items"]], [village], "/stats/regions of a village: the village itself")
    CK.eq(web.status("/api/v1/stats/regions", county, region=OTHER), 403, "/stats/regions of another county: 403")
    CK.eq(web.status("/api/v1/stats/regions", county, region="62x"), 400, "/stats/regions?region=62x: 400")
    wide = web.json("/api/v1/stats/regions", county, region="62")
    CK.eq(wide["region"], COUNTY, "/stats/regions?region=62 with a county token: narrowed to the county")
    prov = web.json("/api/v1/stats/regions", admin)
    CK.eq(({i["region_code"] for i in prov["items"]}, prov["level"]), ({"6205"}, "city"),
          "province token: by city")

    trend = web.json("/api/v1/stats/trend", county)
    months = trend["months"]
    now = datetime.datetime.now(datetime.timezone.utc)
    CK.eq((trend["region"], len(months), months[-1]["month"]), (COUNTY, 12, now.strftime("%Y-%m")),
          "/stats/trend: the last 12 months, this one last")
    CK.eq(sorted({m["month"] for m in months}) == [m["month"] for m in months], True, "/stats/trend: months in order")
    opened = int(st.scalar("SELECT count(*) FROM hcase WHERE county = :'c'", {"c": COUNTY}))
    rejected = int(st.scalar("SELECT count(*) FROM hcase WHERE county = :'c' AND status = 'rejected'",
                             {"c": COUNTY}))
    CK.ok(rejected >= EXCLUDE, "the excluded cases are rejected (%d)" % rejected)
    CK.eq((sum(m["opened"] for m in months), sum(m["approved"] for m in months),
           sum(m["rejected"] for m in months)), (opened, len(APPROVE_FACTORS), rejected),
          "/stats/trend: opened = the county's cases, approved = 县级审定, rejected = closed as rejected")
    CK.eq(len(web.json("/api/v1/stats/trend", county, months=3)["months"]), 3, "/stats/trend?months=3")
    for bad in ("0", "61", "x", ""):
        CK.eq(web.status("/api/v1/stats/trend", county, months=bad), 400, "/stats/trend?months=%r: 400" % bad)
    CK.eq(web.status("/api/v1/stats/trend", county, region=OTHER), 403, "/stats/trend of another county: 403")
    CK.eq(web.json("/api/v1/stats/trend", admin, region=OTHER)["months"][-1]["approved"], 1,
          "/stats/trend of %s for the province: its one approval" % OTHER)
    CK.eq(web.status("/api/v1/stats/trend", None), 401, "/stats/trend without a token: 401")

    tasks = web.walk("/api/v1/tasks", county, region=town, status="open")
    homes = {r[0] for r in st.psql("SELECT household_id FROM household WHERE region_code LIKE :'t' || '%'",
                                   {"t": town})}
    want = int(st.scalar("SELECT count(*) FROM task t JOIN hcase c USING (case_id) WHERE t.status = 'open' "
                         "AND c.region_code LIKE :'t' || '%'", {"t": town}))
    CK.ok(len(tasks) == want and all(t["household_id"] in homes for t in tasks),
          "/tasks?region=%s: that town's %d open tasks only" % (town, want), len(tasks))
    CK.eq(web.status("/api/v1/tasks", county, region=OTHER), 403, "/tasks of another county: 403")
    pays = web.walk("/api/v1/payouts", admin, region=COUNTY)
    CK.ok(len(pays) == len(APPROVE_FACTORS) and all(p["household_id"].startswith("H" + COUNTY) for p in pays),
          "/payouts?region=%s (province token): that county's payouts only" % COUNTY, len(pays))
    CK.eq(len(web.walk("/api/v1/payouts", admin)), len(APPROVE_FACTORS) + 1, "/payouts without region: both counties")
    CK.eq(web.status("/api/v1/payouts", county, region=OTHER), 403, "/payouts of another county: 403")


# ---- 3. the browser ------------------------------------------------------------------

def expected(web, T):
    """What the county token's API says: the figures the pages must show."""
    t = T["county"]
    e = {
        "stats": web.json("/api/v1/stats", t),
        "regions": web.json("/api/v1/stats/regions", t),
        "trend": web.json("/api/v1/stats/trend", t, months=12),
        "tasks": web.walk("/api/v1/tasks", t, status="open"),
        "funds": web.walk("/api/v1/funds", t),
        "payouts": web.walk("/api/v1/payouts", t),
        "monitored": web.json("/api/v1/cases", t, status="monitoring", limit=20)["items"],
    }
    e["household"] = web.json("/api/v1/households/" + e["monitored"][0]["household_id"], t)
    return e


def run_browser(st, T, household, foreign, out):
    env = dict(os.environ, LEVEE_DASHBOARD_URL="http://127.0.0.1:%d" % st.http_port,
               LEVEE_DASHBOARD_TOKEN=T["county"], LEVEE_DASHBOARD_FUND_TOKEN=T["fund"],
               LEVEE_DASHBOARD_HOUSEHOLD=household,
               LEVEE_DASHBOARD_FOREIGN=foreign, LEVEE_DASHBOARD_OUT=out, LEVEE_CHROMIUM=BROWSER)
    script = os.path.join(ROOT, "web", "test", "dashboard.mjs")
    cp = subprocess.run(["node", script], env=env, capture_output=True, text=True, timeout=NODE_TIMEOUT)
    for line in (cp.stdout + cp.stderr).splitlines():
        CK.log("  | " + line)
    try:
        with open(os.path.join(out, "observed.json"), encoding="utf-8") as f:
            seen = json.load(f)
    except (OSError, ValueError):
        seen = {"ok": False}
    CK.ok(cp.returncode == 0 and seen.get("ok"), "the browser ran every step (%s)" % seen.get("browser"),
          seen.get("failure"))
    return seen


def town_names():
    names = {}
    with open(os.path.join(ROOT, "data", "regions", "gansu_62_towns.csv"), encoding="utf-8") as f:
        for line in f.read().splitlines()[1:]:
            code, name, _ = line.split(",")
            names[code] = name
    return names


def check_overview(e, seen):
    o = seen.get("overview") or {}
    s = e["stats"]
    CK.eq((o.get("view"), o.get("region")), ("overview", COUNTY), "the overview of %s after login" % COUNTY)
    CK.ok(COUNTY in (o.get("who") or "") and "清水县" in (o.get("who") or ""), "the header names the token's county",
          o.get("who"))
    k = {key: num(v["value"]) for key, v in (o.get("kpis") or {}).items()}
    grades = {g: s["by_grade"][g]["households"] for g in ("red", "orange", "yellow")}
    CK.eq({key: k.get(key) for key in ("households", "persons", "red", "orange", "yellow")},
          dict(households=s["households"], persons=s["persons"], **grades),
          "cards: households, persons, 红/橙/黄 = /stats")
    now = int(time.time() * 1000)
    CK.eq((k.get("open-tasks"), k.get("overdue-tasks")),
          (len(e["tasks"]), sum(1 for t in e["tasks"] if t["due_at"] < now)), "cards: open and overdue tasks = /tasks")
    special = next((f for f in e["funds"] if f["fund_id"] == "special"), None)
    CK.eq(k.get("fund-balance"), wan(special["balance_fen"]) if special else None,
          "card: the special fund's balance in 万元 = /funds")

    tables = o.get("tables") or {}
    rows = [(r[0], num(r[1]), num(r[2])) for r in tables.get("categories", {}).get("rows", [])]
    CK.eq(rows, [(c, s["by_category"][c]["households"], s["by_category"][c]["persons"]) for c in CATEGORIES],
          "三类户 table: households and persons per category = /stats by_category")
    charts = o.get("charts") or {}
    pie = (charts.get("chart-category") or {}).get("series") or [{}]
    CK.eq(pie[0].get("data"), [{"name": c, "value": s["by_category"][c]["households"]} for c in CATEGORIES],
          "三类户占比分布图: the pie's data = /stats by_category")
    bar = charts.get("chart-risk") or {}
    factors = RISK_FACTORS + [f for f in s["by_risk_factor"] if f not in RISK_FACTORS]
    CK.eq((bar.get("y"), (bar.get("series") or [{}])[0].get("data")),
          (factors, [s["by_risk_factor"][f]["households"] for f in factors]),
          "返贫风险因素统计图: households per primary factor = /stats by_risk_factor")
    CK.eq(sum((bar.get("series") or [{}])[0].get("data") or []), s["households"],
          "返贫风险因素统计图 sums to the monitored households")
    trend = charts.get("chart-trend") or {}
    months = e["trend"]["months"]
    CK.eq((trend.get("x"), [x.get("data") for x in trend.get("series", [])]),
          ([m["month"] for m in months], [[m[k] for m in months] for k in ("opened", "approved", "rejected")]),
          "月度趋势: opened, approved, rejected per month = /stats/trend")

    names = town_names()
    reg = [(r[0], r[1], num(r[2]), num(r[3]), num(r[-1])) for r in tables.get("regions", {}).get("rows", [])]
    CK.eq(reg, [(names.get(i["region_code"], "乡镇 " + i["region_code"]), i["region_code"], i["households"], i["persons"],
                 i["open_cases"]) for i in e["regions"]["items"]],
          "town table: name, code, households, persons, open cases = /stats/regions")
    late = [t for t in e["tasks"] if t["due_at"] < now]
    CK.log("  %d overdue tasks" % len(late))

    def days_late(t):
        days = (now - t["due_at"]) // 86400000
        return "—" if t["due_at"] >= now else "%d 天" % days if days else "不足 1 天"
    CK.eq([(r[1], r[-1]) for r in tables.get("tasks", {}).get("rows", [])],
          [(t["household_id"], days_late(t)) for t in (late or e["tasks"])[:8]],
          "task table: the overdue tasks first, with days overdue = /tasks")
    CK.eq([(r[0], r[1]) for r in tables.get("funds", {}).get("rows", [])],
          [(f["name"], yuan(f["balance_fen"])) for f in e["funds"]], "funds table: names and balances = /funds")
    kinds = {}
    for p in e["payouts"]:
        c = kinds.setdefault(p["kind"], [0, 0, 0])
        c[0] += 1
        c[1] += p["amount_fen"] if p["status"] == "posted" else 0
        c[2] += p["amount_fen"] if p["status"] == "pending" else 0
    CK.eq([(num(r[1]), r[2], r[3]) for r in tables.get("payout-kinds", {}).get("rows", [])],
          [(n, yuan(a), yuan(b)) for n, a, b in kinds.values()], "payouts by kind: count, paid, reserved = /payouts")
    CK.eq([(r[0], r[2]) for r in tables.get("payouts", {}).get("rows", [])],
          [(p["household_id"], yuan(p["amount_fen"])) for p in e["payouts"][:8]], "recent payouts = /payouts")
    CK.eq([r[0] for r in tables.get("monitored", {}).get("rows", [])],
          [c["household_id"] for c in e["monitored"]], "monitored households = /cases?status=monitoring")

    text = o.get("text") or ""
    CK.ok(OTHER not in text and "秦安" not in text, "nothing of %s on the county's dashboard" % OTHER)
    CK.ok(not FULL_ID_RE.search(text), "no full ID number on the overview")
    CK.eq(seen.get("console", {}).get("overview"), None, "no script error or failed load on the overview")
    CK.eq([r for r in seen.get("requests_failed", []) if r["phase"] in ("overview", "drill", "household")], [],
          "every request of the overview, drill-down and household page answered")
    CK.log("  the overview was shown %.1f s after login" % (seen.get("overview_ms", 0) / 1000))


def check_pages(web, T, e, seen):
    bad = seen.get("bad_login") or {}
    CK.ok(bad.get("view") == "login" and any("令牌无效" in x for x in bad.get("errors", [])),
          "a wrong token: the login screen says so", bad.get("errors"))
    fund = seen.get("fund_login") or {}
    CK.ok(fund.get("view") == "login" and any("角色" in x for x in fund.get("errors", [])),
          "a fund manager's token: told the dashboard needs a province, city, county or town token",
          fund.get("errors"))

    d = seen.get("drill") or {}
    first = e["regions"]["items"][0]["region_code"]
    sub = web.json("/api/v1/stats", T["county"], region=first)
    k = {key: num(v["value"]) for key, v in (d.get("kpis") or {}).items()}
    CK.eq((d.get("region"), k.get("households"), k.get("persons")), (first, sub["households"], sub["persons"]),
          "drill-down to town %s: its figures = /stats?region=%s" % (first, first))
    villages = web.json("/api/v1/stats/regions", T["county"], region=first)["items"]
    CK.eq([r[1] for r in (d.get("tables") or {}).get("regions", {}).get("rows", [])],
          [i["region_code"] for i in villages], "drill-down: the town's villages = /stats/regions")

    h = seen.get("household") or {}
    hh = e["household"]
    tables = h.get("tables") or {}
    CK.eq(h.get("household"), hh["household_id"], "the household page opens from the overview's list")
    rows = tables.get("timeline", {}).get("rows", [])
    CK.eq(len(rows), len(hh["timeline"]), "timeline: one row per recorded step (%d)" % len(hh["timeline"]))
    # Steps without a label in ACTION_LABELS are compared on the other columns.
    want = [(beijing(t["time"]), ACTION_LABELS.get(t["action"], r[1]), t["actor"], t["detail"], t["case_id"] or "—")
            for r, t in zip(rows, hh["timeline"])]
    got = [(r[0], r[1], r[2], r[4], r[5]) for r in rows]
    CK.eq(got, want, "timeline rows: when (北京时间), step, who, why, case = the API's timeline")
    CK.ok("county_approve" in [t["action"] for t in hh["timeline"]] and any(r[1] == "县级审定" for r in rows),
          "timeline shows the 县级审定 step")
    CK.eq([(r[0], r[2]) for r in tables.get("members", {}).get("rows", [])],
          [(m["name"], m["id_number"]) for m in hh["members"]], "members: names and masked ID numbers as the API gives")
    CK.eq([(r[0], r[1]) for r in tables.get("cases", {}).get("rows", [])],
          [(c["case_id"], "监测帮扶中" if c["status"] == "monitoring" else c["status"]) for c in hh["cases"]],
          "cases of the household = the API's")
    CK.eq([(r[0], r[3]) for r in tables.get("household-payouts", {}).get("rows", [])],
          [(p["payout_id"], yuan(p["amount_fen"])) for p in hh["payouts"]], "the household's payouts = the API's")
    CK.ok(not FULL_ID_RE.search(h.get("text") or ""), "no full ID number on the household page")

    f = seen.get("foreign") or {}
    CK.ok(f.get("view") == "error" and any("没有找到" in x for x in f.get("errors", [])),
          "a household of %s: not found for the county token" % OTHER, f.get("errors"))
    out = seen.get("logout") or {}
    CK.eq((out.get("view"), out.get("token_stored"), out.get("logout_visible")), ("login", False, False),
          "logout: back to login, token forgotten, no logout button")
    CK.eq((bad.get("logout_visible"), (seen.get("overview") or {}).get("logout_visible")), (False, True),
          "the logout button shows only when logged in")


def check_screens(out):
    for name in ("login", "dashboard", "drill-down", "household"):
        path = os.path.join(out, name + ".png")
        try:
            with open(path, "rb") as f:
                head = f.read(8)
            size = os.path.getsize(path)
        except OSError:
            head, size = b"", 0
        CK.ok(head == b"\x89PNG\r\n\x1a\n" and size > 10000, "screenshot %s.png (%d bytes)" % (name, size))


def main():
    tmp = tempfile.mkdtemp(prefix="levee-dashboard-")
    build = os.path.dirname(os.environ.get("LEVEE_BIN", os.path.join(ROOT, "build", "bin")))
    out = os.path.join(build, "test-artifacts", "dashboard")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    missing = [p for p in (os.path.join(ROOT, "web", "vendor", "echarts.esm.min.mjs"),
                           os.path.join(ROOT, "web", "node_modules", "playwright-core"), BROWSER)
               if not os.path.exists(p)]
    if missing or not shutil.which("node"):
        CK.ok(False, "the browser test's tools are installed (run scripts/setup and scripts/web-deps)",
              missing or "node not found")
        return CK.report()
    root = web_copy(tmp)
    os.environ["LEVEE_WEB_ROOT"] = root
    try:
        with Stack(free_port_base()) as st:
            def body():
                web = Http(st.http_port)
                sample = Sample(st, tmp)
                sample.load()
                sample.walk()
                T = {"admin": st.admin_token(),
                     "county": issue(st, "county", COUNTY, "--label", "清水县乡村振兴局"),
                     "fund": issue(st, "fund", COUNTY, "--label", "县防贫基金管理员")}
                test_static(st, web, root)
                test_stats(st, web, T)
                CK.log("== 3. the dashboard in Chromium, county token %s" % COUNTY)
                e = expected(web, T)
                with open(os.path.join(out, "expected.json"), "w", encoding="utf-8") as f:
                    json.dump(e, f, ensure_ascii=False, indent=1)
                seen = run_browser(st, T, e["household"]["household_id"], sample.other_household, out)
                check_overview(e, seen)
                check_pages(web, T, e, seen)
                check_screens(out)
            CK.run(body, st)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    CK.log("artifacts: %s" % out)
    return CK.report()


if __name__ == "__main__":
    sys.exit(main())
