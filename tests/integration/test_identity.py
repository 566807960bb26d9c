#!/usr/bin/env python3
"""Identity matching in the live pipeline, with the review queue (standard
library only).

    python3 tests/integration/test_identity.py

A registry of one county is loaded, then medical, disaster and declaration
feeds with corrupted identities:
1. links: a traditional-character name with no ID number, a swapped-digit ID
   (with a name, and in the disaster feed that has none), a namesake told
   apart by the birth date, a one-digit typo: each linked to the right
   person, with its score and basis stored and shown in the household's file.
2. review: a homophone with its birth date but no ID (0.79 at the default
   threshold), a namesake pair in one village and a person not in the
   registry wait in identity_review with their candidates (the right person
   first); nothing is linked to them, nothing is dropped (every row is linked, in review, or rejected
   with its row, column and reason).
3. resolving: `levee identity link` feeds the row on as the chosen person's
   (its settlement counted, a case opened) exactly once, even when resolved
   twice; a dismissal needs a note; both refuse a second decision.
4. a re-load of the same file adds nothing; a registry change in a village
   reaches the cached candidate set (a newcomer is linked afterwards), and
   the open review of her earlier row is matched again, linked by
   levee-matching and fed on; one it does not settle stays open.
5. the HTTP API: GET /api/v1/identity-reviews scoped to the caller's region
   with ID numbers masked, POST /api/v1/identity-reviews/{id} (link by
   candidate number, dismiss; 400, 403, 404, 409).
"""

import csv
import io
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from lvstack import Checks, Stack, free_port_base, wait_for  # noqa: E402

CK = Checks("identity")
COUNTY = "620521"
OTHER = "620522"
V1 = COUNTY + "101201"
V2 = COUNTY + "101202"
VB = OTHER + "101201"
W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"

os.environ.setdefault("LEVEE_SWEEP_CHECK_S", "0")
# Room for one village's or the county's candidate set at a time, so that
# sets are evicted and rebuilt as the rows move between scopes.
os.environ["LEVEE_IDENT_CACHE_PERSONS"] = "12"


def idn(region6, birth, seq):
    first = region6 + birth + "%03d" % seq
    return first + CHECK[sum(int(d) * w for d, w in zip(first, W)) % 11]


def valid(s):
    return len(s) == 18 and s[:17].isdigit() and CHECK[sum(int(d) * w for d, w in zip(s, W)) % 11] == s[17]


def swapped(s):
    """The ID with the first pair of different adjacent digits (after the
    region) swapped, such that the check fails."""
    for i in range(6, 16):
        t = s[:i] + s[i + 1] + s[i] + s[i + 2:]
        if s[i] != s[i + 1] and not valid(t):
            return t
    raise ValueError("no swap fails the check for %s" % s)


def typo(s):
    """One digit in the sequence part changed, failing the check."""
    for d in "0123456789":
        t = s[:15] + d + s[16:]
        if t != s and not valid(t):
            return t
    raise ValueError(s)


# The registry: household -> (village, income 元, [(key, name, birth, seq, relation)]).
PEOPLE = {
    "HA": (V1, 20000, [("A1", "陈国华", "19750302", 11, "户主"), ("A2", "陈小明", "20050611", 22, "子女")]),
    "HB": (V1, 20000, [("B1", "刘洋", "19800715", 31, "户主"), ("B2", "王丽", "19820101", 42, "配偶")]),
    "HC": (V1, 20000, [("C1", "赵敏", "19881123", 52, "户主"), ("C2", "孙磊", "19870304", 61, "配偶")]),
    "HD": (V1, 20000, [("D1", "李强", "19700105", 71, "户主")]),
    "HE": (V1, 20000, [("E1", "李强", "19920909", 81, "户主")]),
    "HF": (V2, 20000, [("F1", "王芳", "19650817", 92, "户主")]),
    "HX": (VB, 20000, [("X1", "马云", "19640910", 13, "户主")]),
}
ID = {}
HH = {}
for hid, (village, _, members) in PEOPLE.items():
    for key, name, birth, seq, _ in members:
        ID[key] = idn(village[:6], birth, seq)
        HH[key] = "H" + COUNTY + hid if village.startswith(COUNTY) else "H" + OTHER + hid


def csv_text(header, rows):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([r.get(h, "") for h in header])
    return out.getvalue()


REG_COLS = ["household_id", "region_code", "household_type", "id_number", "name", "relation",
            "annual_net_income"]
MED_COLS = ["record_id", "id_number", "name", "settle_date", "total_cost", "reimbursed", "self_paid",
            "region_code", "birth_date"]
DIS_COLS = ["record_id", "id_number", "event_date", "disaster_type", "loss_amount"]
DEC_COLS = ["record_id", "id_number", "name", "event_date", "reason", "amount"]


def registry_rows(extra=()):
    rows = []
    for hid, (village, income, members) in PEOPLE.items():
        for i, (key, name, _, _, rel) in enumerate(members):
            rows.append({"household_id": HH[key], "region_code": village, "household_type": "一般农户",
                         "id_number": ID[key], "name": name, "relation": rel,
                         "annual_net_income": str(income) if i == 0 else ""})
    rows.extend(extra)
    return rows


def medical(rid, id_number, name, self_paid, region="", birth=""):
    return {"record_id": rid, "id_number": id_number, "name": name, "settle_date": "2026-03-10",
            "total_cost": str(self_paid + 1000), "reimbursed": "1000", "self_paid": str(self_paid),
            "region_code": region, "birth_date": birth}


class Test:
    def __init__(self, st, tmp):
        self.st = st
        self.tmp = tmp
        self.n = 0

    def write(self, header, rows):
        self.n += 1
        path = os.path.join(self.tmp, "f%02d.csv" % self.n)
        with open(path, "w", encoding="utf-8") as f:
            f.write(csv_text(header, rows))
        return path

    def j(self, *args, check=True):
        cp = self.st.levee(*(list(args) + ["--json"]), check=check)
        return cp.returncode, json.loads(cp.stdout) if cp.stdout.strip() else None

    def load(self, source, path):
        _, r = self.j("load", source, path, check=False)
        self.idle()
        return r

    def idle(self):
        self.st.levee("wait-idle", "--timeout", "120", timeout=150)
        quiet, deadline = 0, time.monotonic() + 30
        while quiet < 2 and time.monotonic() < deadline:
            quiet = quiet + 1 if self.st.scalar("SELECT count(*) FROM outbox") == "0" else 0
            time.sleep(0.3)

    def link_of(self, source, rid):
        rows = self.st.psql("SELECT id_number, household_id, basis, score::text FROM identity_link "
                            "WHERE source = :'s' AND record_id = :'r'", {"s": source, "r": rid})
        return rows[0] if rows else None

    def review_of(self, source, rid):
        rows = self.st.psql("SELECT review_id, status, candidates::text, reason, fed_ms FROM identity_review "
                            "WHERE source = :'s' AND record_id = :'r'", {"s": source, "r": rid})
        return rows[0] if rows else None

    def cases(self, hh):
        return int(self.st.scalar("SELECT count(*) FROM hcase WHERE household_id = :'h'", {"h": hh}))

    # -- the steps ----------------------------------------------------------------

    def load_all(self):
        CK.log("== loading the registry and the corrupted feeds")
        r = self.load("registry", self.write(REG_COLS, registry_rows()))
        CK.eq((r["status"], r["rejected"]), ("done", 0), "registry loaded")
        self.med_rows = [
            medical("M-1", "", "陳國華", 30000, region=V1),                        # traditional, no ID
            medical("M-2", swapped(ID["B1"]), "刘洋", 500),                       # swapped digits
            medical("M-3", "", "赵闽", 500, region=V1, birth="1988-11-23"),       # homophone + birth
            medical("M-4", "", "李强", 30000, region=V1),                          # namesakes: review
            medical("M-5", "", "周杰伦", 30000, region=V1),                        # not in the registry
            medical("M-6", "", "", 100, region=V1),                                # nothing to match on
            medical("M-7", ID["F1"], "王芳", 200),                                 # a clean row
            medical("M-11", "", "李强", 500, region=V1, birth="1992/09/09"),      # namesake + birth
        ]
        self.med_path = self.write(MED_COLS, self.med_rows)
        self.med = self.load("medical", self.med_path)
        CK.eq((self.med["rows"], self.med["accepted"], self.med["rejected"]), (8, 7, 1),
              "medical: 7 rows accepted, the one with neither ID nor name rejected")
        rej = self.rejects(self.med["import_id"])
        CK.eq([(x["row"], x["column"]) for x in rej], [("7", "id_number")],
              "the reject names its row and the id_number column")
        CK.ok(rej and "必填项为空" in rej[0]["reason"], "with the reason", rej)
        dis = [{"record_id": "D-1", "id_number": swapped(ID["F1"]), "event_date": "2026-03-01",
                "disaster_type": "洪涝", "loss_amount": "20000"},
               {"record_id": "D-2", "id_number": "", "event_date": "2026-03-01", "disaster_type": "洪涝",
                "loss_amount": "100"},
               {"record_id": "D-3", "id_number": "62052", "event_date": "2026-03-01", "disaster_type": "洪涝",
                "loss_amount": "100"}]
        r = self.load("disaster", self.write(DIS_COLS, dis))
        CK.eq((r["accepted"], r["rejected"]), (1, 2),
              "disaster (no name column): the broken 18-digit ID accepted; empty and garbled IDs rejected")
        CK.eq(sorted((x["row"], x["column"]) for x in self.rejects(r["import_id"])),
              [("3", "id_number"), ("4", "id_number")], "both rejects name id_number")
        dec = [{"record_id": "S-1", "id_number": typo(ID["C2"]), "name": "孙磊", "event_date": "2026-03-02",
                "reason": "因病", "amount": "100"}]
        r = self.load("declaration", self.write(DEC_COLS, dec))
        CK.eq(r["accepted"], 1, "declaration with a one-digit typo accepted")

    def rejects(self, import_id):
        out = self.st.levee("rejects", str(import_id)).stdout.lstrip("\ufeff")
        return list(csv.DictReader(io.StringIO(out)))

    def links(self):
        CK.log("== 1. links with their score and basis")
        want = [("medical", "M-1", "A1", "name"), ("medical", "M-2", "B1", "id_swap"),
                ("medical", "M-11", "E1", "name_birth"), ("disaster", "D-1", "F1", "id_swap"),
                ("declaration", "S-1", "C2", "id_typo")]
        for source, rid, key, basis in want:
            got = self.link_of(source, rid)
            CK.ok(got and got[0] == ID[key] and got[1] == HH[key] and got[2] == basis and
                  0.8 <= float(got[3]) <= 1.0,
                  "%s %s linked to %s by %s with a score in 0.80..1" % (source, rid, key, basis), got)
        CK.eq(self.st.scalar("SELECT household_id FROM medical_expense WHERE record_id = 'M-1'"), HH["A1"],
              "M-1's settlement counts for 陈国华's household")
        CK.eq(self.st.psql("SELECT household_id, id_number FROM disaster_record WHERE record_id = 'D-1'"),
              [(HH["F1"], ID["F1"])], "the disaster row carries the person's ID and household")
        CK.eq(self.st.scalar("SELECT household_id FROM declaration_record WHERE record_id = 'S-1'"), HH["C2"],
              "the declaration is linked")
        CK.eq(self.st.scalar("SELECT household_id FROM medical_expense WHERE record_id = 'M-7'"), HH["F1"],
              "a clean row links by its ID as before")
        CK.eq(self.link_of("medical", "M-7"), None, "and leaves no identity_link row")
        tl = self.st.psql("SELECT detail FROM timeline WHERE household_id = :'h' AND action = 'identity_link'",
                          {"h": HH["E1"]})
        CK.ok(any("按姓名+出生日期关联" in d[0] for d in tl), "the household file shows 按姓名+出生日期关联", tl)
        _, h = self.j("household", HH["A1"])
        CK.ok("按姓名关联" in json.dumps(h, ensure_ascii=False), "levee household shows how M-1 was linked")
        wait_for(lambda: self.cases(HH["A1"]) == 1, 60, what="a case for 陈国华's household")
        CK.eq(self.cases(HH["A1"]), 1, "the linked 30,000 元 settlement opened a case")

    def reviews(self):
        CK.log("== 2. review queue, nothing dropped, never a wrong link")
        r4 = self.review_of("medical", "M-4")
        cands = json.loads(r4[2]) if r4 else []
        CK.ok(r4 and r4[1] == "open" and sorted(c["id_number"] for c in cands) == sorted([ID["D1"], ID["E1"]]),
              "namesakes 李强: in review with both as candidates", r4)
        CK.ok(all(0 <= c["score"] <= 1 and c["basis"] == "name" and c["household_id"] for c in cands),
              "each candidate with its score, basis and household", cands)
        r3 = self.review_of("medical", "M-3")
        c3 = json.loads(r3[2]) if r3 else []
        CK.ok(r3 and r3[1] == "open" and c3 and c3[0]["id_number"] == ID["C1"] and c3[0]["score"] < 0.8,
              "homophone 赵闽 with 赵敏's birth date, no ID: in review, 赵敏 first, below the threshold", r3)
        r5 = self.review_of("medical", "M-5")
        CK.ok(r5 and r5[1] == "open", "周杰伦 (not in the registry): in review", r5)
        for rid in ("M-3", "M-4", "M-5"):
            CK.eq(self.link_of("medical", rid), None, "%s: no link" % rid)
            CK.eq(self.st.scalar("SELECT count(*) FROM medical_expense WHERE record_id = :'r'", {"r": rid}), "0",
                  "%s: no settlement counted" % rid)
        for hh in (HH["D1"], HH["E1"]):
            CK.eq(self.cases(hh), 0, "no case for a namesake's household before review")
        lost = self.st.psql(
            "SELECT r.source, r.record_id FROM record r WHERE r.source <> 'registry' AND NOT ("
            " EXISTS (SELECT 1 FROM medical_expense m WHERE m.record_id = r.record_id AND r.source = 'medical')"
            " OR EXISTS (SELECT 1 FROM disaster_record d WHERE d.record_id = r.record_id AND d.household_id IS NOT NULL)"
            " OR EXISTS (SELECT 1 FROM declaration_record d WHERE d.record_id = r.record_id AND d.household_id IS NOT NULL)"
            " OR EXISTS (SELECT 1 FROM identity_review v WHERE v.source = r.source AND v.record_id = r.record_id)"
            " OR EXISTS (SELECT 1 FROM unmatched_record u WHERE u.source = r.source AND u.record_id = r.record_id))")
        CK.eq(lost, [], "every accepted row is linked, in review or waiting for the registry")
        rc, lst = self.j("identity", "list")
        ids = {x["record_id"]: x for x in lst or []}
        CK.ok(rc == 0 and set(ids) == {"M-3", "M-4", "M-5"}, "levee identity list: the three open items", lst)
        c = ids.get("M-4", {}).get("candidates", [])
        CK.ok(len(c) == 2 and all("*" in x["id_number"] and x["no"] in (1, 2) for x in c),
              "candidates numbered, ID numbers masked", c)
        rc, lst = self.j("identity", "list", "--region", OTHER)
        CK.eq((rc, lst), (0, []), "--region of another county: none")

    def resolve(self):
        CK.log("== 3. resolving: fed on once")
        rid4 = self.review_of("medical", "M-4")[0]
        rc, out = self.j("identity", "link", rid4, ID["D1"], "--note", "村委会核实")
        CK.eq((rc, out and out.get("status")), (0, "linked"), "levee identity link: done")
        wait_for(lambda: self.review_of("medical", "M-4")[4] != "", 60, what="the review fed on")
        CK.eq(self.st.scalar("SELECT household_id FROM medical_expense WHERE record_id = 'M-4'"), HH["D1"],
              "M-4 counts for the chosen person's household")
        got = self.link_of("medical", "M-4")
        CK.ok(got and got[0] == ID["D1"] and got[2] == "review", "identity_link says a person chose", got)
        wait_for(lambda: self.cases(HH["D1"]) == 1, 60, what="a case for the chosen household")
        rc, out = self.j("identity", "link", rid4, ID["E1"], check=False)
        CK.ok(rc == 1 and "已处理" in (out or {}).get("error", ""), "a second link is refused", out)
        rc, out = self.j("identity", "dismiss", rid4, "--note", "重复", check=False)
        CK.eq(rc, 1, "so is a dismissal of a linked item")
        time.sleep(3)
        self.idle()
        CK.eq((self.cases(HH["D1"]), self.cases(HH["E1"])), (1, 0), "one case, for the chosen household only")
        CK.eq(self.st.scalar("SELECT count(*) FROM alert WHERE trigger_record_id = 'M-4'"), "1",
              "one alert from the resolved row")
        rid5 = self.review_of("medical", "M-5")[0]
        cp = self.st.levee("identity", "dismiss", rid5, check=False)
        CK.eq(cp.returncode, 2, "a dismissal without --note: usage error")
        rc, out = self.j("identity", "link", rid5, "123", check=False)
        CK.eq(rc, 2, "a link to a malformed ID number: usage error")
        rc, out = self.j("identity", "link", rid5, idn(COUNTY, "19500101", 999), check=False)
        CK.ok(rc == 1 and "无此人员" in (out or {}).get("error", ""), "a link to someone not in the registry: refused",
              out)
        rc, out = self.j("identity", "dismiss", rid5, "--note", "非本县人员")
        CK.eq((rc, out.get("status")), (0, "dismissed"), "levee identity dismiss with a note")
        CK.eq(self.review_of("medical", "M-5")[1], "dismissed", "M-5 dismissed")
        time.sleep(2)
        CK.eq(self.link_of("medical", "M-5"), None, "no link for the dismissed row")
        CK.eq(self.st.scalar("SELECT count(*) FROM medical_expense WHERE record_id = 'M-5'"), "0",
              "and no settlement")
        rc, out = self.j("identity", "link", "999999", ID["D1"], check=False)
        CK.eq(rc, 1, "an unknown review: refused")

    def reload(self):
        CK.log("== 4. reload adds nothing; a registry change reaches the cache")
        before = self.st.psql("SELECT (SELECT count(*) FROM identity_review), (SELECT count(*) FROM identity_link), "
                              "(SELECT count(*) FROM medical_expense), (SELECT count(*) FROM hcase)")
        r = self.load("medical", self.med_path)
        CK.eq((r["accepted"], r["duplicates"], r["rejected"]), (0, 7, 1), "the same file again: all duplicates")
        after = self.st.psql("SELECT (SELECT count(*) FROM identity_review), (SELECT count(*) FROM identity_link), "
                             "(SELECT count(*) FROM medical_expense), (SELECT count(*) FROM hcase)")
        CK.eq(after, before, "no new review, link, settlement or case")
        newcomer = {"household_id": "H" + COUNTY + "HG", "region_code": V1, "household_type": "一般农户",
                    "id_number": idn(COUNTY, "19990101", 17), "name": "钱多多", "relation": "户主",
                    "annual_net_income": "20000"}
        r = self.load("medical", self.write(MED_COLS, [medical("M-8", "", "钱多多", 100, region=V1)]))
        CK.ok(self.review_of("medical", "M-8") is not None, "钱多多 before the registry has her: review")
        r = self.load("registry", self.write(REG_COLS, [newcomer]))
        r = self.load("medical", self.write(MED_COLS, [medical("M-9", "", "钱多多", 100, region=V1)]))
        got = self.link_of("medical", "M-9")
        CK.ok(got and got[0] == newcomer["id_number"], "after the registry brings her, she is linked", got)
        # The row that came before her is matched again once the registry
        # changed its village: now a clear link, fed on once.
        try:
            wait_for(lambda: (self.review_of("medical", "M-8") or [None, ""])[1] == "linked"
                     and self.review_of("medical", "M-8")[4] != "", 60, what="M-8 matched again")
        except TimeoutError as ex:
            CK.ok(False, "M-8's review matched again after the registry update", ex)
        who = self.st.psql("SELECT resolved_by, note FROM identity_review WHERE record_id = 'M-8'")
        CK.ok(who and who[0][0] == "levee-matching" and "户籍底册更新后自动关联" in who[0][1],
              "M-8: resolved by levee-matching after the registry update, and says so", who)
        got = self.link_of("medical", "M-8")
        CK.ok(got and got[0] == newcomer["id_number"], "M-8 linked to her and fed on", got)
        CK.eq(self.st.scalar("SELECT household_id FROM medical_expense WHERE record_id = 'M-8'"),
              newcomer["household_id"], "M-8's settlement counts for her household")
        CK.eq(self.st.scalar("SELECT count(*) FROM identity_review WHERE status = 'open' AND record_id = 'M-3'"),
              "1", "a review the registry update does not settle (赵闽) stays open")


# ---- the HTTP API ------------------------------------------------------------------

class Api:
    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port

    def call(self, method, path, token, body=None, raw=None):
        data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + token)
        if data is not None:
            req.add_header("Content-Type", "text/csv" if raw is not None else "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw


def api_checks(t, st):
    CK.log("== 5. the HTTP API")
    api = Api(st.http_port)
    tok = {}
    st.levee("investigator-add", "INV-1", "调查员甲", COUNTY)
    for role, prefix in (("county", COUNTY), ("other", OTHER), ("town", V1[:9]), ("inv", COUNTY)):
        args = ["token", "issue", "investigator" if role == "inv" else ("county" if role == "other" else role),
                prefix, "--json"]
        if role == "inv":
            args += ["--investigator", "INV-1"]
        tok[role] = json.loads(st.levee(*args).stdout)["token"]
    # A fresh namesake review to resolve through the API.
    t.load("medical", t.write(MED_COLS, [medical("M-10", "", "李强", 100, region=V1)]))
    rv = t.review_of("medical", "M-10")
    CK.ok(rv and rv[1] == "open", "M-10 in review", rv)
    s, d = api.call("GET", "/api/v1/identity-reviews", tok["county"])
    items = (d or {}).get("items", []) if s == 200 else []
    CK.ok(s == 200 and "M-10" in [x["record_id"] for x in items] and "next_cursor" in d,
          "GET identity-reviews: the county's open items, paged", (s, d))
    m10 = next((x for x in items if x["record_id"] == "M-10"), {})
    CK.ok(m10.get("candidates") and all("*" in c["id_number"] for c in m10["candidates"]),
          "candidates' ID numbers masked", m10)
    s, d = api.call("GET", "/api/v1/identity-reviews", tok["other"])
    CK.eq((s, d.get("items") if s == 200 else d), (200, []), "another county's token sees none")
    s, d = api.call("GET", "/api/v1/identity-reviews?status=all&region=" + COUNTY, tok["other"])
    CK.eq(s, 403, "a region outside the token: 403")
    s, _ = api.call("GET", "/api/v1/identity-reviews", tok["inv"])
    CK.eq(s, 403, "an investigator may not list reviews")
    path = "/api/v1/identity-reviews/%s" % rv[0]
    s, _ = api.call("POST", path, tok["other"], {"action": "dismiss", "note": "x"})
    CK.eq(s, 404, "another county's token: 404")
    s, _ = api.call("POST", path, tok["county"], {"action": "merge"})
    CK.eq(s, 400, "an unknown action: 400")
    s, _ = api.call("POST", path, tok["county"], {"action": "dismiss"})
    CK.eq(s, 400, "a dismissal without a note: 400")
    s, _ = api.call("POST", path, tok["county"], {"action": "link", "id_number": "12345"})
    CK.eq(s, 400, "a malformed ID number: 400")
    s, _ = api.call("POST", path, tok["county"], {"action": "link", "id_number": ID["X1"]})
    CK.eq(s, 400, "a person of another county: 400")
    e1 = next((c["no"] for c in m10.get("candidates", []) if c["household_id"] == HH["E1"]), None)
    s, d = api.call("POST", path, tok["town"], {"action": "link", "candidate": e1})
    CK.ok(s == 200 and d.get("status") == "linked", "a town links by candidate number", (s, d))
    s, d = api.call("POST", path, tok["county"], {"action": "link", "candidate": e1})
    CK.eq(s, 409, "a second decision: 409")
    wait_for(lambda: t.review_of("medical", "M-10")[4] != "", 60, what="M-10 fed on")
    CK.eq(st.scalar("SELECT household_id FROM medical_expense WHERE record_id = 'M-10'"), HH["E1"],
          "M-10 counts for the household chosen through the API")
    s, _ = api.call("POST", "/api/v1/identity-reviews/999999", tok["county"], {"action": "dismiss", "note": "x"})
    CK.eq(s, 404, "an unknown review: 404")
    # A posted file may not send identity matching into another county.
    for what, row in (("a region_code of another county", medical("M-20", "", "马云", 100, region=VB)),
                      ("a broken ID of another county", medical("M-21", swapped(ID["X1"]), "马云", 100))):
        s, d = api.call("POST", "/api/v1/feeds/medical", tok["county"], raw=csv_text(MED_COLS, [row]).encode())
        CK.eq(s, 403, "a posted medical file with %s: 403" % what)
    s, d = api.call("POST", "/api/v1/feeds/medical", tok["county"],
                    raw=csv_text(MED_COLS, [medical("M-22", swapped(ID["B1"]), "刘洋", 100, region=V1)]).encode())
    CK.eq(s, 202, "one with a broken ID and a village of the county: 202")


def main():
    with tempfile.TemporaryDirectory(prefix="levee-identity-") as tmp:
        st = Stack(free_port_base())
        try:
            st.up()
            t = Test(st, tmp)

            def body():
                t.load_all()
                t.links()
                t.reviews()
                t.resolve()
                t.reload()
                api_checks(t, st)
            CK.run(body, st)
        finally:
            st.down()
    return CK.report()


if __name__ == "__main__":
    sys.exit(main())
