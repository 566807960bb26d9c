#!/usr/bin/env python3
"""The HTTP API (levee-gateway) against a private stack (standard library only).

    python3 tests/integration/test_gateway.py

Two counties, 620521 (A, towns 620521100 and 620521101) and 620522 (B),
are loaded through the API from small hand-written feeds: a registry of six
households and a month of medical settlements, so that cases open in both.
Tokens of every role are issued with `levee token`. Then:

1. protocol: health, metrics, 401 / 404 / 405 / 400 / 413 with JSON errors,
   hostile requests that must not hurt the server;
2. feeds: who may post which feed, GB18030, files touching another region
   refused before anything is queued, imports and their rejects (CSV, paged,
   masked for all but the uploader);
3. households, cases and tasks: every SPEC field, masking, filters, paging
   walks that return each item once;
4. a declaration (the one-row feed import is queued; the feed itself is not
   in ingest yet, so no case is expected to open);
5. a verification result and the review steps through the API up to 县级审定,
   with role and stage checks and an idempotent retry;
6. funds, payouts and stats (each breakdown sums to the total);
7. the region-scoping matrix: every role of county B against every endpoint
   with county A's objects answers 403 or 404, or a list without them;
8. token revocation; health 503 when a peer is down; the metrics counters.

Independent checks keep going after a failure; exit status 1 when any failed.
"""

import base64
import datetime
import http.client
import json
import os
import re
import socket
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from lvstack import Stack, free_port_base  # noqa: E402
from test_ops import parse_metrics  # noqa: E402

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
MAX_BODY = 65536
MAX_FEED = 65536

TOWN_A1, TOWN_A2, TOWN_B = "620521100", "620521101", "620522100"

# household: (region code, type, exit year, income 元, [(name, relation)], medical self-paid 元)
HOUSEHOLDS = {
    "HA1": ("620521100201", "脱贫户", "2019", "9000", [("王大山", "户主"), ("李秀英", "配偶"), ("王小明", "子女")], "2000.00"),
    "HA2": ("620521100202", "一般农户", "", "12000", [("张建国", "户主"), ("刘芳", "配偶"), ("张磊", "子女")], "1000.00"),
    "HA3": ("620521101201", "一般农户", "", "30000", [("赵平", "户主"), ("孙丽", "配偶")], None),
    "HA4": ("620521101202", "一般农户", "", "10000", [("陈刚", "户主"), ("周敏", "配偶")], "500.00"),
    "HB1": ("620522100201", "一般农户", "", "6000", [("吴勇", "户主"), ("郑娟", "配偶")], "800.00"),
    "HB2": ("620522100202", "一般农户", "", "30000", [("冯涛", "户主"), ("韩静", "配偶")], None),
}
A_HOUSEHOLDS = [h for h in HOUSEHOLDS if h.startswith("HA")]
B_HOUSEHOLDS = [h for h in HOUSEHOLDS if h.startswith("HB")]

REGISTRY_HEADER = ("household_id,region_code,household_type,exit_year,id_number,name,relation,"
                   "disability_grade,chronic_illness,labour,phone,annual_net_income\n")
MEDICAL_HEADER = "record_id,id_number,name,settle_date,total_cost,reimbursed,self_paid\n"


# ---- checks -------------------------------------------------------------------

class Report:
    def __init__(self):
        self.n = 0
        self.failed = []

    def __call__(self, cond, what, detail=None):
        self.n += 1
        print("  %s  %s" % ("ok  " if cond else "FAIL", what))
        if not cond:
            if detail is not None:
                print("        " + str(detail)[:1500].replace("\n", "\n        "))
            self.failed.append(what)
        sys.stdout.flush()
        return bool(cond)


CHECK = Report()


def section(title):
    print("\n== " + title)
    sys.stdout.flush()


# ---- fixtures ------------------------------------------------------------------

def id_number(region6, birth, seq):
    first17 = "%s%s%03d" % (region6, birth, seq)
    return first17 + ID_CHECK[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS)) % 11]


PEOPLE = {}   # household -> [(id, name, relation, phone)]
ALL_IDS, ALL_PHONES = [], []
for n, (hid, (region, _t, _y, _i, members, _m)) in enumerate(sorted(HOUSEHOLDS.items())):
    rows = []
    for k, (name, rel) in enumerate(members):
        pid = id_number(region[:6], "19%02d0%d1%d" % (50 + n, k + 1, k), n * 10 + k + 1)
        phone = "1380000%02d%02d" % (n, k)
        rows.append((pid, name, rel, phone))
        ALL_IDS.append(pid)
        ALL_PHONES.append(phone)
    PEOPLE[hid] = rows


def registry_csv(households):
    out = [REGISTRY_HEADER]
    for hid in households:
        region, htype, exit_year, income, _m, _s = HOUSEHOLDS[hid]
        for k, (pid, name, rel, phone) in enumerate(PEOPLE[hid]):
            out.append("%s,%s,%s,%s,%s,%s,%s,0,否,有,%s,%s\n" % (
                hid, region, htype, exit_year, pid, name, rel, phone, income if k == 0 else ""))
    return "".join(out)


SETTLE_DATE = (datetime.date.today() - datetime.timedelta(days=30)).isoformat()


def medical_csv(households, bad_rows=False):
    out = [MEDICAL_HEADER]
    for hid in households:
        self_paid = HOUSEHOLDS[hid][5]
        if self_paid:
            pid, name = PEOPLE[hid][0][:2]
            out.append("M-%s,%s,%s,%s,%s,0.00,%s\n" % (hid, pid, name, SETTLE_DATE, self_paid, self_paid))
    if bad_rows:
        pid, name = PEOPLE[households[0]][1][:2]
        wrong = pid[:17] + ("0" if pid[17] != "0" else "1")
        # No name either: a row with a name but a bad ID goes to identity
        # matching (test_identity.py) instead of the rejects.
        out.append("M-BAD1,%s,,%s,100.00,0.00,100.00\n" % (wrong, SETTLE_DATE))
        out.append("M-BAD2,%s,%s,%s,100.001,0.00,100.00\n" % (pid, name, SETTLE_DATE))
    return "".join(out)


# ---- HTTP -----------------------------------------------------------------------

class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None

    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "HTTP %d %s" % (self.status, self.text()[:400])


class Api:
    """Calls the gateway; remembers every body a non-investigator saw so that
    masking can be checked over all of them at the end."""

    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port
        self.port = port
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.seen = []  # (role, body)

    def call(self, method, path, token=None, body=None, headers=None, role=None, scan=True):
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        data = body
        if isinstance(body, (dict, list)):
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            data = body.encode("utf-8")
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with self.opener.open(req, timeout=60) as r:
                resp = Resp(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            resp = Resp(e.code, e.headers, e.read())
        if scan:
            self.seen.append((role, resp.body))
        return resp

    def get(self, path, token=None, **kw):
        return self.call("GET", path, token, **kw)

    def post(self, path, token=None, body=None, **kw):
        return self.call("POST", path, token, body, **kw)

    def raw(self, data, timeout=10):
        """Sends raw bytes on a fresh connection; returns what came back."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server answered and closed before reading it all (e.g. a 413)
            chunks = []
            while True:
                try:
                    b = s.recv(65536)
                except (socket.timeout, ConnectionResetError):
                    break
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks)
        finally:
            s.close()

    def chunked_post(self, path, token, payload):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("POST", path, body=iter([payload[i:i + 8192] for i in range(0, len(payload), 8192)]),
                     headers={"Authorization": "Bearer " + token}, encode_chunked=True)
        r = conn.getresponse()
        resp = Resp(r.status, r.headers, r.read())
        conn.close()
        return resp

    def walk(self, path, token, limit, key="items"):
        """Follows next_cursor to the end; returns (items, pages)."""
        items, cursor, pages = [], None, 0
        while pages < 1000:
            q = {"limit": limit}
            if cursor:
                q["cursor"] = cursor
            sep = "&" if "?" in path else "?"
            r = self.get(path + sep + urllib.parse.urlencode(q), token)
            doc = r.json()
            if r.status != 200 or not isinstance(doc, dict):
                raise AssertionError("walk %s: %r" % (path, r))
            items += doc[key]
            pages += 1
            cursor = doc["next_cursor"]
            if not cursor:
                return items, pages
        raise AssertionError("walk %s: no end" % path)


def raw_response(data):
    """(status, headers, body) of the first HTTP response in raw bytes."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ", lines[0] + " ")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", len(body)))
    return (int(m.group(1)) if m else None), headers, body[:n]


def is_raw_json_error(data, status):
    code, headers, body = raw_response(data)
    try:
        doc = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False
    return (code == status and headers.get("content-type", "").startswith("application/json")
            and isinstance(doc, dict) and isinstance(doc.get("error"), str) and "detail" in doc)


def is_json_error(r, status):
    d = r.json()
    return r.status == status and isinstance(d, dict) and isinstance(d.get("error"), str) and "detail" in d


# ---- the stack --------------------------------------------------------------------

def token(st, role, prefix, *extra):
    cp = st.levee("token", "issue", role, prefix, "--json", *extra)
    return json.loads(cp.stdout)["token"]


def wait_import(api, tok, import_id, timeout=60):
    def done():
        r = api.get("/api/v1/imports/%d" % import_id, tok)
        d = r.json()
        return d if r.status == 200 and d["status"] in ("done", "failed") else None
    return Stack.wait_for(done, timeout=timeout, what="import %d" % import_id)


def case_of(st, hid):
    return st.scalar("SELECT case_id FROM hcase WHERE household_id = :'h' ORDER BY episode DESC LIMIT 1",
                     {"h": hid})


def task_of(st, hid):
    return st.psql("SELECT task_id, assignee FROM task WHERE household_id = :'h' AND status = 'open' "
                   "ORDER BY created_ms DESC LIMIT 1", {"h": hid})[0]


def setup(st, api, T):
    section("fixtures: investigators, tokens, the registry and medical feeds through the API")
    st.levee("investigator-add", "INV-A", "核查员甲", "620521")
    st.levee("investigator-add", "INV-A2", "核查员乙", "620521")
    st.levee("investigator-add", "INV-B", "核查员丙", "620522")
    T["admin"] = st.admin_token()
    T["province"] = T["admin"]
    T["city"] = token(st, "city", "6205")
    T["county_a"] = token(st, "county", "620521", "--label", "县乡村振兴局")
    T["county_b"] = token(st, "county", "620522")
    T["town_a1"] = token(st, "town", TOWN_A1, "--label", "甲乡")
    T["town_a2"] = token(st, "town", TOWN_A2)
    T["town_b"] = token(st, "town", TOWN_B)
    T["inv_a"] = token(st, "investigator", "620521", "--investigator", "INV-A")
    T["inv_a2"] = token(st, "investigator", "620521", "--investigator", "INV-A2")
    T["inv_b"] = token(st, "investigator", "620522", "--investigator", "INV-B")
    T["dept_a"] = token(st, "department", "620521", "--label", "县医保局")
    T["dept_b"] = token(st, "department", "620522")
    T["fund_a"] = token(st, "fund", "620521")
    T["fund_b"] = token(st, "fund", "620522")

    r = api.post("/api/v1/feeds/registry", T["admin"], registry_csv(sorted(HOUSEHOLDS)),
                 headers={"Content-Type": "text/csv"})
    CHECK(r.status == 202 and isinstance(r.json().get("import_id"), int),
          "POST /feeds/registry: 202 {import_id}", r)
    reg = wait_import(api, T["admin"], r.json()["import_id"])
    CHECK(reg["status"] == "done" and reg["accepted"] == sum(len(p) for p in PEOPLE.values()),
          "registry import done, every person accepted", reg)

    r = api.post("/api/v1/feeds/medical", T["dept_a"], medical_csv(A_HOUSEHOLDS, bad_rows=True))
    CHECK(r.status == 202, "the county's 医保局 posts county A's medical feed: 202", r)
    T["import_a"] = r.json()["import_id"]
    med = wait_import(api, T["dept_a"], T["import_a"])
    CHECK(med["status"] == "done" and med["accepted"] == 3 and med["rejected"] == 2,
          "medical import A: 3 accepted, 2 rejected", med)
    r = api.post("/api/v1/feeds/medical", T["dept_b"], medical_csv(B_HOUSEHOLDS))
    CHECK(r.status == 202, "county B's 医保局 posts county B's medical feed: 202", r)
    wait_import(api, T["dept_b"], r.json()["import_id"])
    st.wait_for(lambda: st.scalar("SELECT count(*) FROM task WHERE assignee IS NOT NULL") == "4",
                timeout=60, what="four cases with assigned tasks")


# ---- 1. protocol --------------------------------------------------------------------

def test_protocol(st, api, T):
    section("protocol: health, metrics, errors, hostile input")
    r = api.get("/healthz")
    d = r.json() or {}
    CHECK(r.status == 200 and d.get("postgres") == "ok" and d.get("redis") == "ok" and
          all(v == "ok" for v in d.get("peers", {}).values()) and len(d.get("peers", {})) == 4,
          "GET /healthz: 200 with Postgres, Redis and the four peers ok", r)
    r = api.get("/metrics")
    CHECK(r.status == 200 and "levee_http_requests_total" in r.text() and
          r.headers.get("Content-Type", "").startswith("text/plain"),
          "GET /metrics: 200 Prometheus text", r)
    try:
        types, before = parse_metrics(r.text())
        CHECK(types.get("levee_http_requests_total") == "counter" and
              types.get("levee_http_request_duration_seconds") == "histogram",
              "/metrics parses as the Prometheus text format (HELP, TYPE, name{labels} value)", types)
    except ValueError as e:
        before = {}
        CHECK(False, "/metrics parses as the Prometheus text format", e)
    key = ("levee_http_requests_total", '{route="/api/v1/funds",method="GET",status="200"}')
    hkey = ("levee_http_request_duration_seconds_count", '{route="/api/v1/funds",method="GET"}')
    for _ in range(3):
        api.get("/api/v1/funds", T["admin"])
    _, after = parse_metrics(api.get("/metrics").text())
    CHECK(after.get(key, 0) - before.get(key, 0) == 3 and after.get(hkey, 0) - before.get(hkey, 0) == 3,
          "three calls of GET /funds move its counter and its latency count by 3",
          (before.get(key), after.get(key), before.get(hkey), after.get(hkey)))
    CHECK(after.get(("levee_http_requests_in_flight", ""), -1) >= 1, "in-flight gauge counts the scrape itself")

    r = api.get("/api/v1/cases")
    CHECK(is_json_error(r, 401) and r.headers.get("WWW-Authenticate") == "Bearer",
          "no token: 401 JSON error with WWW-Authenticate", r)
    CHECK(is_json_error(api.get("/api/v1/cases", "lvt_not_a_token"), 401), "unknown token: 401")
    CHECK(is_json_error(api.get("/api/v1/cases", headers={"Authorization": "Basic YTpi"}), 401),
          "Basic credentials: 401")
    CHECK(is_json_error(api.get("/api/v1/cases", "x" * 10000), 401), "a 10 kB token: 401")
    CHECK(is_json_error(api.get("/api/v1/nothing-here", T["admin"]), 404), "unknown path: 404 JSON")
    CHECK(is_json_error(api.get("/api/v1/cases/extra/segments", T["admin"]), 404), "extra segments: 404")
    r = api.call("DELETE", "/api/v1/cases", T["admin"])
    CHECK(is_json_error(r, 405) and r.headers.get("Allow") == "GET", "wrong method: 405 with Allow", r)
    r = api.get("/api/v1/declarations", T["county_a"])
    CHECK(is_json_error(r, 405) and r.headers.get("Allow") == "POST", "GET on a POST path: 405", r)

    case = case_of(st, "HA2")
    path = "/api/v1/cases/%s/steps" % case
    for body, what in ((b"{not json", "bad JSON"), (b"[1, 2]", "a JSON array"), (b"", "an empty body"),
                       (b'{"step": "deliberate\\u0000x", "decision": "pass"}', "a NUL inside a string"),
                       (b'{"step": "\xff\xfe", "decision": "pass"}', "invalid UTF-8"),
                       (b"[" * 30000 + b"]" * 30000, "nesting 30,000 deep"),
                       (b'{"step": "deliberate", "decision": "pass", "decision": "fail"}',
                        "a duplicated key")):
        CHECK(is_json_error(api.post(path, T["town_a1"], body), 400), "%s: 400 JSON error" % what)
    r = api.post(path, T["town_a1"], b"x" * (MAX_BODY + 10))
    CHECK(is_json_error(r, 413), "a JSON body over LEVEE_HTTP_MAX_BODY_BYTES: 413", r)
    r = api.chunked_post(path, T["town_a1"], b"x" * (MAX_BODY * 3))
    CHECK(is_json_error(r, 413), "the same, chunked without a length: 413", r)
    r = api.post("/api/v1/feeds/medical", T["county_a"], b"record_id\n" + b"x" * MAX_FEED)
    CHECK(is_json_error(r, 413), "a feed over LEVEE_HTTP_MAX_FEED_BYTES: 413", r)

    CHECK(is_json_error(api.get("/api/v1/cases?cursor=%21%21%21", T["admin"]), 400), "a garbage cursor: 400")
    forged = base64.urlsafe_b64encode(b'["x","y"]').decode().rstrip("=")
    CHECK(is_json_error(api.get("/api/v1/cases?cursor=" + forged, T["admin"]), 400),
          "a cursor of the wrong shape: 400")
    for q in ("limit=0", "limit=501", "limit=abc", "status=nope", "grade=pink", "region=62x"):
        CHECK(is_json_error(api.get("/api/v1/cases?" + q, T["admin"]), 400), "cases?%s: 400" % q)
    CHECK(is_json_error(api.get("/api/v1/tasks?assignee=%FF", T["admin"]), 400), "invalid UTF-8 in a query: 400")
    CHECK(is_json_error(api.get("/api/v1/households/%FF%FE", T["admin"]), 404), "invalid UTF-8 in a path: 404")
    CHECK(is_json_error(api.get("/api/v1/imports/1%2527%3B", T["admin"]), 404), "a non-numeric import id: 404")
    CHECK(is_json_error(api.get("/api/v1/households/HA1'%20OR%20'1'='1", T["admin"]), 404),
          "SQL in a path parameter is just a name: 404")

    # Errors that libmicrohttpd would otherwise answer itself, with a page of HTML.
    r = api.raw(b"GET /" + b"a" * 200000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    CHECK(is_raw_json_error(r, 414), "a 200 kB URI: 414 JSON error", r[:300])
    r = api.raw(b"GET /api/v1/cases?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    CHECK(is_raw_json_error(r, 414), "a 9 kB query: 414 JSON error", r[:300])
    r = api.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"y" * 100000 + b"\r\n\r\n")
    CHECK(is_raw_json_error(r, 431), "100 kB of headers: 431 JSON error", r[:300])
    r = api.raw(b"BREW /api/v1/cases HTTP/1.1\r\nHost: x\r\n\r\n")
    CHECK(is_raw_json_error(r, 405), "an unknown method on a known path: 405 JSON error", r[:300])
    r = api.raw(b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n")
    CHECK(is_raw_json_error(r, 404), "an unknown method on an unknown path: 404 JSON error", r[:300])
    r = api.raw(b"POST /api/v1/cases/%s/steps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                b"Content-Length: %d\r\n\r\n" % (case.encode(), T["town_a1"].encode(), MAX_BODY * 2)
                + b"x" * (MAX_BODY * 2))
    CHECK(is_raw_json_error(r, 413), "an oversize body declared by Content-Length: 413 JSON error", r[:300])

    for junk in (b"GARBAGE\r\n\r\n", b"\x00\x01\x02\xff" * 100, b"GET /" + b"a" * 200000 + b" HTTP/1.1\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"y" * 100000 + b"\r\n\r\n",
                 b"POST /api/v1/declarations HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"):
        try:
            api.raw(junk)
        except OSError:
            pass
    CHECK(api.get("/healthz").status == 200, "the server still answers after garbage on the socket")


# ---- 2. feeds and imports --------------------------------------------------------------

def test_feeds(st, api, T):
    section("feeds: roles, GB18030, region checks; imports and rejects")
    small = medical_csv(["HA4"])
    for tok, source, want, what in (
            ("inv_a", "medical", 403, "an investigator posts a feed"),
            ("fund_a", "medical", 403, "a fund manager posts a feed"),
            ("town_a1", "medical", 403, "a town posts a department's feed"),
            ("dept_a", "registry", 403, "a department posts the registry"),
            ("county_a", "nosuch", 404, "an unknown feed")):
        r = api.post("/api/v1/feeds/" + source, T[tok], small)
        CHECK(is_json_error(r, want), "%s: %d" % (what, want), r)
    CHECK(is_json_error(api.post("/api/v1/feeds/medical", T["county_a"], b""), 400), "an empty feed: 400")
    CHECK(is_json_error(api.post("/api/v1/feeds/medical?encoding=latin1", T["county_a"], small), 400),
          "an unknown encoding: 400")
    CHECK(is_json_error(api.post("/api/v1/feeds/medical?encoding=gb18030", T["county_a"],
                                 MEDICAL_HEADER.encode("gb18030") + b"\x81\x30\xff\xff\n"), 400),
          "bytes that are not GB18030: 400")

    imports_before = st.scalar("SELECT count(*) FROM import")
    reg_b = REGISTRY_HEADER + "HB9,620521101209,一般农户,,%s,钱多,户主,0,否,有,,20000\n" % id_number("620522", "19800101", 901)
    r = api.post("/api/v1/feeds/registry", T["county_b"], reg_b)
    d = (r.json() or {}).get("detail") or {}
    CHECK(is_json_error(r, 403) and d.get("rows") == [2] and d.get("rows_outside") == 1,
          "county B posts a registry row with county A's region code: 403 naming row 2", r)
    pid = PEOPLE["HB2"][0][0]
    reg_move = REGISTRY_HEADER + "HB2,620521101209,一般农户,,%s,冯涛,户主,0,否,有,,30000\n" % pid
    r = api.post("/api/v1/feeds/registry", T["county_a"], reg_move)
    CHECK(is_json_error(r, 403) and (r.json()["detail"] or {}).get("rows") == [2],
          "county A posts a registry row taking county B's household: 403", r)
    med_cross = medical_csv(["HB1", "HA1"])
    r = api.post("/api/v1/feeds/medical", T["dept_b"], med_cross)
    CHECK(is_json_error(r, 403) and (r.json()["detail"] or {}).get("rows") == [3],
          "county B's department posts a settlement of a county A person: 403 naming row 3", r)
    CHECK(st.scalar("SELECT count(*) FROM import") == imports_before, "nothing was queued by the refused uploads")

    # GB18030: a new household in county A with Chinese names.
    pid5 = id_number("620521", "19900303", 501)
    gb = (REGISTRY_HEADER + "HA5,620521101203,一般农户,,%s,欧阳娜,户主,0,否,有,,40000\n" % pid5).encode("gb18030")
    r = api.post("/api/v1/feeds/registry?encoding=gb18030", T["county_a"], gb)
    CHECK(r.status == 202, "a GB18030 registry file from county A: 202", r)
    imp = wait_import(api, T["county_a"], r.json()["import_id"])
    h = api.get("/api/v1/households/HA5", T["county_a"]).json() or {}
    CHECK(imp["accepted"] == 1 and [m.get("name") for m in h.get("members", [])] == ["欧阳娜"],
          "GB18030 names arrive as UTF-8", (imp, h))
    CHECK(h.get("status") == "normal" and h.get("cases") == [] and h.get("category") is None,
          "a household without a case: status normal, no cases, category null", h)

    # Imports: the SPEC fields, and who sees them.
    ia = T["import_a"]
    d = api.get("/api/v1/imports/%d" % ia, T["dept_a"]).json() or {}
    CHECK(all(k in d for k in ("status", "rows", "accepted", "duplicates", "rejected")) and
          d["status"] == "done" and d["rows"] == 5, "GET /imports/{id}: status, rows, accepted, duplicates, rejected", d)
    for tok, want in (("dept_a", 200), ("county_a", 200), ("city", 200), ("province", 200),
                      ("dept_b", 404), ("county_b", 404), ("town_a1", 404), ("inv_a", 403), ("fund_a", 403)):
        CHECK(api.get("/api/v1/imports/%d" % ia, T[tok]).status == want,
              "import of county A's department seen by %s: %d" % (tok, want))
    CHECK(is_json_error(api.get("/api/v1/imports/99999999", T["admin"]), 404), "an import that does not exist: 404")

    r = api.get("/api/v1/imports/%d/rejects" % ia, T["dept_a"], scan=False)
    lines = r.text().lstrip("\ufeff").splitlines()
    bad_id = [ln for ln in lines if ln.startswith("2,") or ln.startswith("5,")]
    CHECK(r.status == 200 and r.headers.get("Content-Type", "").startswith("text/csv") and
          lines[0] == "row,column,reason,raw" and [ln.split(",")[0] for ln in lines[1:]] == ["5", "6"],
          "rejects: CSV row,column,reason,raw with rows 5 and 6", r.text())
    wrong = medical_csv(A_HOUSEHOLDS, bad_rows=True).splitlines()[4].split(",")[1]
    CHECK(wrong in r.text(), "the uploader sees its rejected rows as sent", bad_id)
    r2 = api.get("/api/v1/imports/%d/rejects" % ia, T["county_a"])
    CHECK(r2.status == 200 and wrong not in r2.text() and (wrong[:6] + "********" + wrong[14:]) in r2.text(),
          "the county sees the same rows with ID numbers masked", r2.text())
    r3 = api.get("/api/v1/imports/%d/rejects?limit=1" % ia, T["dept_a"], scan=False)
    cur = r3.headers.get("X-Next-Cursor")
    r4 = api.get("/api/v1/imports/%d/rejects?limit=1&cursor=%s" % (ia, cur), T["dept_a"], scan=False)
    rows3 = r3.text().lstrip("\ufeff").splitlines()[1:]
    rows4 = r4.text().lstrip("\ufeff").splitlines()[1:]
    CHECK(len(rows3) == 1 and len(rows4) == 1 and rows3[0][0] == "5" and rows4[0][0] == "6" and
          not r4.headers.get("X-Next-Cursor"), "rejects paged with limit and X-Next-Cursor", (rows3, rows4))


# ---- 3. households, cases, tasks ----------------------------------------------------------

MASKED_ID = re.compile(r"^[0-9]{6}\*{8}[0-9X]{4}$")


def test_region_names(st, api, T):
    section("region names: data/regions at levee up, villages by levee regions load")
    r = api.get("/api/v1/stats/regions?region=620521", T["admin"])
    names = {i["region_code"]: i.get("region_name") for i in (r.json() or {}).get("items", [])}
    CHECK(names.get(TOWN_A1) == "永清镇" and names.get(TOWN_A2) == "红堡镇",
          "/stats/regions by town: the towns' names from data/regions (loaded by levee up)", names)
    CHECK(api.get("/api/v1/households/HA1", T["admin"]).json().get("region_name") is None,
          "a village without a known name: region_name null")
    path = os.path.join(st.home, "villages.csv")
    with open(path, "w", encoding="utf-8") as f:
        f.write("village_code,village_name,town_code\n620521100201,王家庄村,620521100\n"
                "620521100202,柳树湾村,620521100\n62052110020X,坏代码村,620521100\n620521101201,,620521101\n")
    out = st.levee("regions", "load", path).stdout
    CHECK("villages.csv: 2 names, 2 rows skipped" in out, "levee regions load: 2 names, bad code and empty name skipped", out)
    h = api.get("/api/v1/households/HA1", T["admin"]).json()
    CHECK(h.get("region_code") == "620521100201" and h.get("region_name") == "王家庄村",
          "GET /households/HA1: region_name of its village", h.get("region_name"))
    CHECK(api.get("/api/v1/households/HA3", T["admin"]).json().get("region_name") is None,
          "HA3's village has no name: region_name null, the code stays")
    r = api.get("/api/v1/stats/regions?region=" + TOWN_A1, T["county_a"])
    names = {i["region_code"]: i.get("region_name") for i in (r.json() or {}).get("items", [])}
    CHECK(names.get("620521100201") == "王家庄村" and names.get("620521100202") == "柳树湾村",
          "/stats/regions by village: the villages' names", names)
    again = st.levee("regions", "load", path).stdout
    CHECK(st.scalar("SELECT count(*) FROM region_name WHERE length(code) = 12") == "2",
          "loading again adds nothing", again)


def test_reads(st, api, T):
    section("households, cases and tasks")
    r = api.get("/api/v1/households/HA1", T["county_a"])
    h = r.json() or {}
    spec = ("household_id", "region_code", "household_type", "members", "status", "category", "grade",
            "risk_factors", "primary_risk_factor", "income_per_capita_fen", "rigid_expense_12m_fen",
            "cases", "payouts", "timeline")
    CHECK(r.status == 200 and all(k in h for k in spec), "GET /households/{id}: every SPEC field", h)
    CHECK(h.get("status") == "candidate" and h.get("grade") == "red" and h.get("category") == "脱贫不稳定户"
          and h.get("risk_factors") == ["因病"] and h.get("primary_risk_factor") == "因病" and
          h.get("income_per_capita_fen") == 300000 and h.get("rigid_expense_12m_fen") == 200000,
          "HA1: candidate (its 入户核查 already out), red, 脱贫不稳定户, 因病, 3,000 元 per person, 2,000 元 rigid", h)
    CHECK(len(h.get("members", [])) == 3 and all(MASKED_ID.match(m["id_number"]) for m in h["members"]) and
          all(m["phone"] is None or "****" in m["phone"] for m in h["members"]),
          "members' ID numbers and phones masked for the county", h.get("members"))
    tl = h.get("timeline", [])
    CHECK(tl and all(all(k in e for k in ("time", "actor", "action", "detail")) for e in tl) and
          tl[0]["action"] == "case_opened", "timeline: time, actor, action, detail, from case_opened", tl)
    CHECK(api.get("/api/v1/households/HA1", T["town_a1"]).status == 200, "town A1 sees its household")
    CHECK(is_json_error(api.get("/api/v1/households/HA3", T["town_a1"]), 404), "town A1 does not see town A2's: 404")
    CHECK(is_json_error(api.get("/api/v1/households/HA1", T["county_b"]), 404), "county B does not see county A's: 404")
    CHECK(is_json_error(api.get("/api/v1/households/NOPE", T["county_a"]), 404), "an unknown household: 404")
    CHECK(is_json_error(api.get("/api/v1/households/HA1", T["dept_a"]), 403), "a department: 403")
    CHECK(is_json_error(api.get("/api/v1/households/HA1", T["fund_a"]), 403), "a fund manager: 403")

    task, assignee = task_of(st, "HA1")
    mine, other = ("inv_a", "inv_a2") if assignee == "INV-A" else ("inv_a2", "inv_a")
    r = api.get("/api/v1/households/HA1", T[mine], role="investigator")
    ids = [m["id_number"] for m in (r.json() or {}).get("members", [])]
    CHECK(r.status == 200 and sorted(ids) == sorted(p[0] for p in PEOPLE["HA1"]),
          "the investigator of HA1's task sees ID numbers unmasked", r)
    CHECK(is_json_error(api.get("/api/v1/households/HA1", T[other]), 404),
          "another investigator of the same county: 404")

    # Cases: filters, scope, paging.
    everyone = {c["household_id"] for c in api.walk("/api/v1/cases", T["province"], 50)[0]}
    CHECK(everyone == {"HA1", "HA2", "HA4", "HB1"}, "the province sees the four cases", everyone)
    a = api.get("/api/v1/cases", T["county_a"]).json()
    CHECK({c["household_id"] for c in a["items"]} == {"HA1", "HA2", "HA4"}, "county A sees its three", a)
    item = a["items"][0]
    CHECK(all(k in item for k in ("case_id", "household_id", "status", "grade", "category", "risk_factors",
                                  "opened_at", "deadline")), "a case has every SPEC field", item)
    red = api.get("/api/v1/cases?grade=red", T["province"]).json()["items"]
    CHECK({c["household_id"] for c in red} == {"HA1", "HB1"}, "grade=red", red)
    CHECK(api.get("/api/v1/cases?status=monitoring", T["province"]).json()["items"] == [], "status=monitoring: none yet")
    town2 = api.get("/api/v1/cases?region=" + TOWN_A2, T["county_a"]).json()["items"]
    CHECK({c["household_id"] for c in town2} == {"HA4"}, "region=town A2 narrows county A's list", town2)
    wide = api.get("/api/v1/cases?region=62", T["county_a"]).json()["items"]
    CHECK({c["household_id"] for c in wide} == {"HA1", "HA2", "HA4"}, "a wider region is narrowed to the token's")
    CHECK(is_json_error(api.get("/api/v1/cases?region=620522", T["county_a"]), 403), "another county's region: 403")
    items, pages = api.walk("/api/v1/cases", T["province"], 1)
    ids = [c["case_id"] for c in items]
    CHECK(len(ids) == 4 and len(set(ids)) == 4 and pages == 4, "cases walked one per page: each once", ids)
    CHECK(is_json_error(api.get("/api/v1/cases", T["inv_a"]), 403), "an investigator lists cases: 403")

    # Tasks.
    t = api.get("/api/v1/tasks", T[mine]).json()["items"]
    CHECK(t and all(x["assignee"] == assignee for x in t) and task in [x["task_id"] for x in t],
          "an investigator sees only their own tasks", t)
    t2 = api.get("/api/v1/tasks?assignee=INV-B", T[mine]).json()["items"]
    CHECK(all(x["assignee"] == assignee for x in t2), "an investigator cannot ask for another's tasks", t2)
    ta = api.get("/api/v1/tasks", T["county_a"]).json()["items"]
    CHECK({x["household_id"] for x in ta} == {"HA1", "HA2", "HA4"} and
          all(all(k in x for k in ("task_id", "case_id", "household_id", "assignee", "status", "due_at", "kind"))
              for x in ta), "county A's tasks with every SPEC field", ta)
    items, pages = api.walk("/api/v1/tasks", T["province"], 3)
    CHECK(len(items) == 4 and len({x["task_id"] for x in items}) == 4 and pages == 2,
          "tasks walked three per page: each once", items)
    CHECK(api.get("/api/v1/tasks?status=done", T["province"]).json()["items"] == [], "status=done: none yet")


# ---- 4. declarations ---------------------------------------------------------------------

def test_declaration(st, api, T):
    section("declarations")
    pid, name = PEOPLE["HA3"][0][:2]
    good = {"record_id": "SB-0001", "id_number": pid, "name": name, "event_date": "2026/10/08",
            "reason": "因意外事故", "amount": 8000.5, "description": "摔伤住院, 电话 13912345678"}
    for tok in ("province", "inv_a", "dept_a", "fund_a"):
        CHECK(is_json_error(api.post("/api/v1/declarations", T[tok], good), 403), "declaration by %s: 403" % tok)
    for change, what in ((("record_id", None), "no record_id"), (("id_number", pid[:17] + "0"), "a bad ID number"),
                         (("event_date", "2026-02-30"), "an impossible date"), (("reason", "因懒"), "an unknown reason"),
                         (("amount", "12.345"), "three decimals"), (("amount", -5), "a negative amount"),
                         (("name", 12), "a name that is not text")):
        body = dict(good)
        body[change[0]] = change[1]
        if change[1] is None:
            del body[change[0]]
        CHECK(is_json_error(api.post("/api/v1/declarations", T["county_a"], body), 400), "%s: 400" % what)
    other = dict(good, id_number=PEOPLE["HB1"][0][0], name=PEOPLE["HB1"][0][1])
    CHECK(is_json_error(api.post("/api/v1/declarations", T["county_a"], other), 404),
          "a person registered in county B: 404 for county A")
    r = api.post("/api/v1/declarations", T["town_a2"], good)
    d = r.json() or {}
    CHECK((r.status == 202 and d.get("case") is None and isinstance(d.get("import_id"), int)) or
          (r.status == 201 and isinstance(d.get("case"), dict)),
          "a valid declaration: 201 with its case, or 202 with the import id", r)
    row = st.psql("SELECT source, path, region_prefix, token_id IS NOT NULL FROM import WHERE import_id = :'i'",
                  {"i": d.get("import_id", 0)})
    CHECK(row and row[0][0] == "declaration" and row[0][2] == TOWN_A2 and row[0][3] == "t",
          "it is queued as a one-row declaration feed import with the caller's region", row)
    if row:
        with open(row[0][1], encoding="utf-8", newline="") as f:
            text = f.read()
        want = ("record_id,id_number,name,event_date,reason,amount,description\r\n"
                '"SB-0001","%s","%s","2026-10-08","因意外事故","8000.50","摔伤住院, 电话 13912345678"\r\n' % (pid, name))
        CHECK(text == want, "the spooled file: the feed's header and the row, date and amount normalized", text)


# ---- 5. results and steps -------------------------------------------------------------------

def wait_case(st, case, status, timeout=30):
    return st.wait_for(lambda: st.scalar("SELECT status FROM hcase WHERE case_id = :'c'", {"c": case}) == status,
                       timeout=timeout, what="case %s %s" % (case, status))


def test_workflow(st, api, T):
    section("a verification result and the review steps")
    task, assignee = task_of(st, "HA1")
    mine = "inv_a" if assignee == "INV-A" else "inv_a2"
    case = case_of(st, "HA1")
    other_task, other_assignee = task_of(st, "HA2")
    other_tok = "inv_a" if other_assignee == "INV-A" else "inv_a2"
    path2 = "/api/v1/tasks/%s/result" % other_task
    base = {"annual_net_income": 12000, "members": 3, "rigid_expense": 1000}
    for change, what in ((("annual_net_income", "3000.555"), "three decimals"), (("annual_net_income", 12.345), "a float with three decimals"),
                         (("rigid_expense", -1), "a negative amount"), (("members", 0), "no members"),
                         (("members", "3"), "members as text"), (("rigid_expense", None), "no rigid expense"),
                         (("excluded", True), "an exclusion without a reason"), (("risk_factor", "因懒"), "an unknown risk"),
                         (("excluded", "yes"), "excluded that is not a boolean"),
                         (("declared_accepted", "no"), "declared_accepted that is not a boolean"),
                         (("risk_remains", 1), "risk_remains that is not a boolean")):
        body = dict(base)
        if change[1] is None:
            del body[change[0]]
        else:
            body[change[0]] = change[1]
        CHECK(is_json_error(api.post(path2, T[other_tok], body), 400), "result with %s: 400" % what)
    CHECK(st.scalar("SELECT status FROM task WHERE task_id = :'t'", {"t": other_task}) == "open",
          "the refused results changed nothing")

    path = "/api/v1/tasks/%s/result" % task
    body = {"annual_net_income": 9000.5, "members": 3, "rigid_expense": "2000.00", "risk_factor": "因病",
            "findings": "住院自付费用属实", "declared_accepted": False}
    not_mine = "inv_a2" if mine == "inv_a" else "inv_a"
    CHECK(is_json_error(api.post(path, T[not_mine], body), 404), "another investigator's task: 404")
    CHECK(is_json_error(api.post(path, T["inv_b"], body), 404), "county B's investigator: 404")
    CHECK(is_json_error(api.post(path, T["county_a"], body), 403), "the county posts a result: 403")
    r = api.post(path, T[mine], body, role="investigator")
    d = r.json() or {}
    CHECK(r.status == 200 and d.get("task", {}).get("status") == "done" and
          d.get("case", {}).get("status") == "reviewing" and d.get("case", {}).get("stage") == "deliberate",
          "the assigned investigator's result: 200, task done, case to 村级评议", r)
    res = st.scalar("SELECT result->>'annual_net_income_fen' FROM task WHERE task_id = :'t'", {"t": task})
    CHECK(res == "900050", "9000.5 元 arrives as 900050 fen", res)
    res = st.scalar("SELECT result->>'declared_accepted' FROM task WHERE task_id = :'t'", {"t": task})
    CHECK(res == "false", "declared_accepted: false is recorded (the declared amounts do not count)", res)
    CHECK(is_json_error(api.post(path, T[mine], body), 409), "a second result for a done task: 409 refused")

    steps = "/api/v1/cases/%s/steps" % case
    CHECK(is_json_error(api.post(steps, T["town_a1"], {"step": "fly", "decision": "pass"}), 400), "an unknown step: 400")
    CHECK(is_json_error(api.post(steps, T["town_a1"], {"step": "deliberate", "decision": "maybe"}), 400), "a bad decision: 400")
    CHECK(is_json_error(api.post(steps, T["town_a1"], {"step": "county_approve", "decision": "pass"}), 403),
          "a town takes 县级审定: 403")
    CHECK(is_json_error(api.post(steps, T["town_a2"], {"step": "deliberate", "decision": "pass"}), 404),
          "another town: 404")
    CHECK(is_json_error(api.post(steps, T["town_a1"], {"step": "town_review", "decision": "pass"}), 409),
          "a step out of order: 409 refused")
    key = {"Idempotency-Key": "deliberate-HA1-1"}
    r1 = api.post(steps, T["town_a1"], {"step": "deliberate", "decision": "pass", "note": "村民代表会议评议通过"}, headers=key)
    r2 = api.post(steps, T["town_a1"], {"step": "deliberate", "decision": "pass", "note": "村民代表会议评议通过"}, headers=key)
    n = st.scalar("SELECT count(*) FROM timeline WHERE case_id = :'c' AND action = 'deliberate'", {"c": case})
    CHECK(r1.status == 200 and r2.status == 200 and n == "1" and
          (r1.json() or {}).get("case", {}).get("stage") == "publicize",
          "deliberate twice with one Idempotency-Key: 200 both, recorded once", (r1, r2, n))
    actor = st.scalar("SELECT actor || '/' || role FROM timeline WHERE case_id = :'c' AND action = 'deliberate'",
                      {"c": case})
    CHECK(actor == "甲乡/town", "the timeline names the token's label and role", actor)
    r = api.post(steps, T["town_a1"], {"step": "publicize", "decision": "pass"})
    CHECK(r.status == 200 and r.json()["case"]["status"] == "publicizing", "publicize: 200, 公示 starts", r)
    st.psql("UPDATE hcase SET publicity_end_ms = (extract(epoch FROM now()) * 1000)::bigint - 1 "
            "WHERE case_id = :'c'", {"c": case})
    wait_case(st, case, "reviewing")
    r = api.post(steps, T["town_a1"], {"step": "town_review", "decision": "pass"})
    CHECK(r.status == 200 and r.json()["case"]["stage"] == "county_approve", "乡镇审核: 200", r)
    CHECK(is_json_error(api.post(steps, T["county_b"], {"step": "county_approve", "decision": "pass"}), 404),
          "county B approves county A's case: 404")
    r = api.post(steps, T["county_a"], {"step": "county_approve", "decision": "pass", "note": "县级审定"})
    CHECK(r.status == 200 and r.json()["case"]["status"] == "monitoring", "县级审定 by county A: 200, monitoring", r)
    st.wait_for(lambda: st.scalar("SELECT count(*) FROM payout WHERE household_id = 'HA1'") == "1",
                timeout=30, what="HA1's payout")
    h = api.get("/api/v1/households/HA1", T["county_a"]).json()
    actions = [e["action"] for e in h["timeline"]]
    CHECK(h["status"] == "monitoring" and len(h["payouts"]) == 1 and
          all(a in actions for a in ("verified", "deliberate", "publicize", "town_review", "county_approve")),
          "HA1's file: monitoring, one payout, every step in the timeline", actions)


# ---- 6. funds, payouts, stats ------------------------------------------------------------------

def test_money(st, api, T):
    section("funds, payouts, stats")
    st.levee("donate", "620521100201", "爱心企业", "1000")
    st.levee("donate", "620522100201", "乡贤", "500")
    st.wait_for(lambda: st.scalar("SELECT count(*) FROM account WHERE account_id LIKE 'fund:village:%'") == "2",
                timeout=30, what="two village funds")
    funds, pages = api.walk("/api/v1/funds", T["province"], 1)
    ids = [f["fund_id"] for f in funds]
    CHECK(len(ids) == 3 and len(set(ids)) == 3 and pages == 3 and
          all(all(k in f for k in ("fund_id", "name", "balance_fen", "paid_fen", "pending_fen")) for f in funds),
          "funds walked one per page: each once, every SPEC field", funds)
    fa = {f["fund_id"] for f in api.get("/api/v1/funds", T["fund_a"]).json()["items"]}
    CHECK(fa == {"special", "village:620521100201"}, "fund manager A: the special fund and A's village fund", fa)
    fb = {f["fund_id"] for f in api.get("/api/v1/funds", T["fund_b"]).json()["items"]}
    CHECK(fb == {"special", "village:620522100201"}, "fund manager B: never A's village fund", fb)
    village = [f for f in funds if f["fund_id"] == "village:620521100201"]
    CHECK(village and village[0]["balance_fen"] == 100000, "a donation of 1,000 元 is 100000 fen", village)
    for tok in ("inv_a", "dept_a"):
        CHECK(is_json_error(api.get("/api/v1/funds", T[tok]), 403), "funds for %s: 403" % tok)

    p = api.get("/api/v1/payouts", T["fund_a"]).json()["items"]
    CHECK(len(p) == 1 and p[0]["household_id"] == "HA1" and p[0]["kind"] == "illness" and
          all(k in p[0] for k in ("payout_id", "household_id", "kind", "amount_fen", "status")),
          "payouts: HA1's illness payout with every SPEC field", p)
    CHECK(len(api.get("/api/v1/payouts?household_id=HA1&kind=illness", T["county_a"]).json()["items"]) == 1,
          "payouts filtered by household_id and kind")
    CHECK(api.get("/api/v1/payouts?kind=relief", T["county_a"]).json()["items"] == [], "kind=relief: none")
    CHECK(is_json_error(api.get("/api/v1/payouts?kind=bonus", T["county_a"]), 400), "an unknown kind: 400")
    CHECK(api.get("/api/v1/payouts?household_id=HA1", T["fund_b"]).json()["items"] == [],
          "fund manager B asks for HA1's payouts: none")
    CHECK(is_json_error(api.get("/api/v1/payouts", T["inv_a"]), 403), "payouts for an investigator: 403")

    s = api.get("/api/v1/stats", T["county_a"]).json() or {}
    CHECK(s.get("households") == 1 and s.get("persons") == 3, "stats of county A: 1 household, 3 persons", s)
    sums = {k: (sum(v["households"] for v in s.get(k, {}).values()), sum(v["persons"] for v in s.get(k, {}).values()))
            for k in ("by_category", "by_risk_factor", "by_grade")}
    CHECK(all(v == (1, 3) for v in sums.values()), "every breakdown sums to the total", sums)
    CHECK(s["by_category"]["脱贫不稳定户"] == {"households": 1, "persons": 3} and
          s["by_risk_factor"]["因病"]["households"] == 1 and s["by_grade"]["red"]["persons"] == 3,
          "脱贫不稳定户, 因病, red", s)
    CHECK(api.get("/api/v1/stats?region=" + TOWN_A2, T["county_a"]).json()["households"] == 0, "stats of town A2: 0")
    CHECK(api.get("/api/v1/stats", T["town_a1"]).json()["households"] == 1, "town A1's own stats: 1")
    CHECK(api.get("/api/v1/stats", T["province"]).json()["households"] == 1, "the province: 1")
    CHECK(api.get("/api/v1/stats", T["county_b"]).json()["households"] == 0, "county B: 0")
    CHECK(is_json_error(api.get("/api/v1/stats?region=620521", T["county_b"]), 403), "county B asks for A's stats: 403")
    CHECK(is_json_error(api.get("/api/v1/stats", T["fund_a"]), 403), "stats for a fund manager: 403")


# ---- 7. the region-scoping matrix ------------------------------------------------------------

def test_matrix(st, api, T):
    section("region scoping: every county B role against county A's objects")
    a_case = case_of(st, "HA2")
    a_task = task_of(st, "HA2")[0]
    pid, name = PEOPLE["HA3"][0][:2]
    decl = {"record_id": "X-1", "id_number": pid, "name": name, "event_date": "2026-10-01", "reason": "因病"}
    calls = [
        ("GET", "/api/v1/households/HA1", None),
        ("GET", "/api/v1/imports/%d" % T["import_a"], None),
        ("GET", "/api/v1/imports/%d/rejects" % T["import_a"], None),
        ("POST", "/api/v1/cases/%s/steps" % a_case, {"step": "deliberate", "decision": "pass"}),
        ("POST", "/api/v1/cases/%s/steps" % a_case, {"step": "reject", "decision": "fail", "note": "x"}),
        ("POST", "/api/v1/tasks/%s/result" % a_task, {"annual_net_income": 1, "members": 1, "rigid_expense": 0}),
        ("POST", "/api/v1/declarations", decl),
        ("POST", "/api/v1/feeds/medical", medical_csv(["HA2"])),
        ("POST", "/api/v1/feeds/declaration", "record_id,id_number,name,event_date,reason\nX-2,%s,%s,2026-10-01,因病\n" % (pid, name)),
        ("GET", "/api/v1/cases?region=620521", None),
        ("GET", "/api/v1/stats?region=620521", None),
    ]
    lists = ["/api/v1/cases", "/api/v1/tasks", "/api/v1/funds", "/api/v1/payouts", "/api/v1/payouts?household_id=HA1",
             "/api/v1/stats", "/api/v1/tasks?assignee=INV-A"]
    a_names = set(A_HOUSEHOLDS) | {"620521100201", "620521101201"} | {p[0] for h in A_HOUSEHOLDS for p in PEOPLE[h]}
    imports_before = st.scalar("SELECT count(*) FROM import")
    for role in ("county_b", "town_b", "inv_b", "dept_b", "fund_b"):
        for method, path, body in calls:
            r = api.call(method, path, T[role], body)
            CHECK(r.status in (403, 404) and is_json_error(r, r.status),
                  "%s %s %s: %d" % (role, method, path.split("?")[0][:60], r.status), r)
        for path in lists:
            r = api.get(path, T[role])
            leaked = [n for n in a_names if n in r.text()]
            CHECK(r.status in (200, 403) and not leaked,
                  "%s GET %s: %d, nothing of county A" % (role, path, r.status), leaked or r)
    CHECK(st.scalar("SELECT count(*) FROM import") == imports_before, "no import was queued by county B's callers")
    CHECK(st.scalar("SELECT status || '/' || stage FROM hcase WHERE case_id = :'c'", {"c": a_case}) == "candidate/screen",
          "county A's case is untouched")

    section("roles: calls a role may not make answer 403")
    forbidden = {
        "inv_a": [("GET", "/api/v1/cases"), ("GET", "/api/v1/stats"), ("GET", "/api/v1/funds"),
                  ("GET", "/api/v1/payouts"), ("POST", "/api/v1/declarations"), ("POST", "/api/v1/cases/%s/steps" % a_case),
                  ("GET", "/api/v1/imports/%d" % T["import_a"])],
        "dept_a": [("GET", "/api/v1/cases"), ("GET", "/api/v1/tasks"), ("GET", "/api/v1/stats"),
                   ("GET", "/api/v1/payouts"), ("POST", "/api/v1/tasks/%s/result" % a_task)],
        "fund_a": [("GET", "/api/v1/cases"), ("GET", "/api/v1/tasks"), ("GET", "/api/v1/households/HA1"),
                   ("POST", "/api/v1/feeds/medical"), ("GET", "/api/v1/imports/%d" % T["import_a"])],
        "province": [("POST", "/api/v1/cases/%s/steps" % a_case), ("POST", "/api/v1/tasks/%s/result" % a_task)],
        "county_a": [("POST", "/api/v1/tasks/%s/result" % a_task)],
    }
    for role, pairs in forbidden.items():
        for method, path in pairs:
            r = api.call(method, path, T[role], {} if method == "POST" else None)
            CHECK(is_json_error(r, 403), "%s %s %s: 403" % (role, method, path), r)


# ---- 8. masking, revocation, health, metrics ---------------------------------------------------

def test_end(st, api, T):
    section("masking over every response; revocation; health; metrics")
    leaks = []
    for role, body in api.seen:
        if role == "investigator":
            continue
        text = body.decode("utf-8", "replace")
        leaks += [x for x in ALL_IDS + ALL_PHONES if x in text]
    CHECK(not leaks, "no full ID number or phone in any of %d responses to roles that do not need them"
          % sum(1 for r, _ in api.seen if r != "investigator"), sorted(set(leaks))[:5])

    t = token(st, "county", "620521", "--label", "temporary")
    CHECK(api.get("/api/v1/cases", t).status == 200, "a new county token works")
    tid = [row for row in json.loads(st.levee("token", "list", "--json").stdout) if row["label"] == "temporary"][0]["token_id"]
    st.levee("token", "revoke", tid)
    CHECK(is_json_error(api.get("/api/v1/cases", t), 401), "after levee token revoke: 401")
    cp = st.levee("token", "revoke", tid, check=False)
    CHECK(cp.returncode == 1, "revoking twice fails", cp.stderr)
    hashes = st.psql("SELECT token_hash FROM api_token")
    CHECK(all(len(h[0]) == 64 for h in hashes) and not any(t in h[0] for h in hashes),
          "only hashes are stored")

    st.stop("notify")
    r = api.get("/healthz")
    d = (r.json() or {}).get("detail") or {}
    CHECK(is_json_error(r, 503) and d.get("peers", {}).get("notify") != "ok" and d.get("postgres") == "ok",
          "notify stopped: /healthz 503 naming the peer", r)
    st.start("notify")
    st.wait_for(lambda: api.get("/healthz").status == 200, timeout=30, what="healthz 200 again")
    CHECK(True, "notify back: /healthz 200")

    text = api.get("/metrics").text()
    def metric(pattern):
        m = re.search(pattern, text)
        return int(m.group(1)) if m else 0
    CHECK(metric(r'levee_http_requests_total\{route="/api/v1/cases",method="GET",status="200"\} (\d+)') >= 5,
          "requests counted by route template and status")
    CHECK(metric(r'levee_http_requests_total\{route="unmatched",method="",status="404"\} (\d+)') >= 1,
          "unmatched paths counted under one label")
    CHECK(metric(r'levee_http_requests_total\{route="/api/v1/cases/\{case_id\}/steps",method="POST",status="403"\} (\d+)') >= 1,
          "refusals counted with their status")
    inf = metric(r'levee_http_request_duration_seconds_bucket\{route="/api/v1/cases",method="GET",le="\+Inf"\} (\d+)')
    cnt = metric(r'levee_http_request_duration_seconds_count\{route="/api/v1/cases",method="GET"\} (\d+)')
    CHECK(inf > 0 and inf == cnt, "latency histogram: +Inf bucket equals the count", (inf, cnt))
    CHECK(metric(r"(?m)^levee_http_requests_in_flight (\d+)$") >= 1, "in-flight gauge (this request at least)")


def main():
    t0 = time.monotonic()
    st = Stack(free_port_base())
    st.env["LEVEE_HTTP_MAX_FEED_BYTES"] = str(MAX_FEED)
    st.env["LEVEE_HTTP_MAX_BODY_BYTES"] = str(MAX_BODY)
    try:
        st.up()
        api = Api(st.http_port)
        st.wait_for(lambda: api.get("/healthz", scan=False).status == 200, timeout=30, what="gateway up")
        T = {}
        setup(st, api, T)
        for test in (test_protocol, test_feeds, test_region_names, test_reads, test_declaration, test_workflow, test_money,
                     test_matrix, test_end):
            try:
                test(st, api, T)
            except Exception:
                traceback.print_exc()
                CHECK(False, "%s ran to the end" % test.__name__)
    except Exception:
        traceback.print_exc()
        CHECK(False, "the test ran to the end")
        print(st.log("gateway")[-3000:])
    finally:
        st.down()
    print("\n%d checks, %d failed, %.1f s" % (CHECK.n, len(CHECK.failed), time.monotonic() - t0))
    for f in CHECK.failed:
        print("  FAILED: " + f)
    return 1 if CHECK.failed else 0


if __name__ == "__main__":
    sys.exit(main())
