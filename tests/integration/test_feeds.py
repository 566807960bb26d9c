#!/usr/bin/env python3
"""The eight department feeds through ingest and matching, on a private stack
(standard library only).

    python3 tests/integration/test_feeds.py

1. parsing: every feed with English headers, and with Chinese headers in a
   shuffled order plus an unknown column; the typed tables hold exactly the
   values of the files.
2. encodings: a GB18030 file (detected, and named with --encoding), a bad
   GB18030 byte sequence rejected alone, a UTF-8 file with a BOM, CRLF and
   Excel quoting (embedded comma, quote and newline).
3. rejects: for every feed, each required column left empty and each bad
   value is rejected alone with its row, column, reason and raw line; the
   record length, field count and file size limits; a missing header.
4. reloads: the same file and an overlapping file add nothing but the new row.
5. matching: each risk factor from each feed reaches household_state and an
   alert at the edges of the default policy (rigid putting a household just
   under / exactly at the line, education cost - aid clamped at 0, a
   collapsed house red), the primary factor, records of unknown people and
   households linked when the registry brings them.
6. income by order of trust: income feed < registry < visit < verification.
7. the monthly sweep: a wage drop of exactly 30% is found, 29.99% is not;
   visit reminders for the yellow watch list; a second sweep changes
   nothing; the timer sweeps a county not yet swept.
"""

import csv
import datetime
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from lvstack import Stack, StackError, free_port_base  # noqa: E402
from test_pipeline import CK, evaluate, id_check_char, run_steps, section, summary  # noqa: E402

COUNTY = "620521"
REGION = COUNTY + "101201"
OTHER_COUNTY = "620522"
DAY_MS = 86400000
MAX_RECORD_BYTES = 4096
MAX_FIELDS = 32
MAX_FILE_BYTES = 400000

# Limits small enough to test; the timer off until the timer's own check.
os.environ.update({"LEVEE_MAX_RECORD_BYTES": str(MAX_RECORD_BYTES), "LEVEE_MAX_FIELDS": str(MAX_FIELDS),
                   "LEVEE_MAX_FILE_BYTES": str(MAX_FILE_BYTES), "LEVEE_SWEEP_CHECK_S": "0"})

# Each feed's columns: (English, Chinese, required), as SPEC.md names them
# (record_id's Chinese name is 记录编号 except medical's 结算单号).
FEEDS = {
    "registry": [("household_id", "户编号", 1), ("region_code", "行政区划代码", 1), ("household_type", "户类型", 1),
                 ("exit_year", "脱贫年度", 0), ("id_number", "身份证号", 1), ("name", "姓名", 1),
                 ("relation", "与户主关系", 1), ("disability_grade", "残疾等级", 0), ("chronic_illness", "大病慢病", 0),
                 ("labour", "劳动能力", 0), ("phone", "联系电话", 0), ("annual_net_income", "家庭年纯收入", 0)],
    "medical": [("record_id", "结算单号", 1), ("id_number", "身份证号", 1), ("name", "姓名", 1),
                ("settle_date", "结算日期", 1), ("total_cost", "总费用", 1), ("compliant_cost", "合规费用", 0),
                ("reimbursed", "报销金额", 1), ("self_paid", "个人自付", 1)],
    "civil": [("record_id", "记录编号", 1), ("id_number", "身份证号", 1), ("name", "姓名", 1),
              ("event_date", "日期", 1), ("kind", "类别", 1), ("amount", "金额", 0),
              ("disability_grade", "残疾等级", 0)],
    "disaster": [("record_id", "记录编号", 1), ("id_number", "户主身份证号", 1), ("event_date", "日期", 1),
                 ("disaster_type", "灾害类型", 1), ("loss_amount", "损失金额", 1), ("house_damage", "房屋损毁", 0)],
    "education": [("record_id", "记录编号", 1), ("id_number", "学生身份证号", 1), ("name", "姓名", 1),
                  ("event_date", "日期", 1), ("stage", "学段", 1), ("cost", "应缴费用", 1), ("aid", "已获资助", 0),
                  ("school", "学校", 0)],
    "income": [("record_id", "记录编号", 1), ("id_number", "身份证号", 1), ("period", "所属期", 1),
               ("amount", "收入", 1), ("kind", "收入类型", 0)],
    "declaration": [("record_id", "记录编号", 1), ("id_number", "身份证号", 1), ("name", "姓名", 1),
                    ("event_date", "日期", 1), ("reason", "风险类型", 1), ("amount", "金额", 0),
                    ("description", "情况说明", 0)],
    "visit": [("record_id", "记录编号", 1), ("household_id", "户编号", 1), ("visit_date", "走访日期", 1),
              ("visitor", "走访人", 1), ("risk_factor", "风险类型", 0), ("income_estimate", "家庭年纯收入估算", 0),
              ("note", "备注", 0)],
}
TYPED = {  # the typed table of each feed, as the test reads it back
    "civil": "SELECT record_id, household_id, county, id_number, name, event_ms, kind, amount_fen, "
             "disability_grade FROM civil_record",
    "disaster": "SELECT record_id, household_id, county, id_number, event_ms, disaster_type, loss_amount_fen, "
                "house_damage FROM disaster_record",
    "education": "SELECT record_id, household_id, county, id_number, name, event_ms, stage, cost_fen, aid_fen, "
                 "school FROM education_record",
    "income": "SELECT record_id, household_id, county, id_number, period, event_ms, amount_fen, kind "
              "FROM income_record",
    "declaration": "SELECT record_id, household_id, county, id_number, name, event_ms, reason, amount_fen, "
                   "description FROM declaration_record",
    "visit": "SELECT record_id, household_id, county, event_ms, visitor, risk_factor, income_estimate_fen, "
             "note FROM visit_record",
}


# ---- data helpers -------------------------------------------------------------

_ids = set()


def new_id(year=1980, county=COUNTY):
    """A valid, unused 18-character ID number."""
    rng = random.Random(len(_ids) * 7919 + year)
    while True:
        d = datetime.date(year, 1, 1) + datetime.timedelta(days=rng.randrange(365))
        first17 = county + d.strftime("%Y%m%d") + "%03d" % rng.randrange(1, 999)
        idn = first17 + id_check_char(first17)
        if idn not in _ids:
            _ids.add(idn)
            return idn


def date_ms(s):
    s = s.replace("/", "-")
    if len(s) == 8:
        s = "%s-%s-%s" % (s[:4], s[4:6], s[6:])
    return str((datetime.date.fromisoformat(s) - datetime.date(1970, 1, 1)).days * DAY_MS)


def fen(s):
    """元 text as a fen string, '' for an empty value."""
    if s == "":
        return ""
    y, _, d = s.partition(".")
    return str(int(y) * 100 + int((d + "00")[:2]))


def mask(line):
    """A line as levee rejects shows it: ID numbers keep the first 6 and last 4."""
    return re.sub(r"(?<![0-9])([0-9]{6})[0-9]{8}([0-9]{3}[0-9Xx])(?![0-9])", r"\1********\2", line)


def csv_text(header, rows, crlf=False, quote_all=False):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n" if crlf else "\n",
                   quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


class Files:
    def __init__(self, tmp):
        self.tmp = tmp
        self.n = 0

    def write(self, text, encoding="utf-8", bom=False, raw=None):
        self.n += 1
        path = os.path.join(self.tmp, "f%03d.csv" % self.n)
        data = raw if raw is not None else text.encode(encoding)
        with open(path, "wb") as f:
            f.write((b"\xef\xbb\xbf" if bom else b"") + data)
        return path

    def feed(self, source, rows, chinese=False, shuffle=False, extra=False, **kw):
        """A feed file from dicts keyed by English column names."""
        cols = list(FEEDS[source])
        if shuffle:
            random.Random(len(source) + self.n).shuffle(cols)
        header = [zh if chinese else en for en, zh, _ in cols]
        keys = [en for en, _, _ in cols]
        if extra:
            header.insert(1, "备用字段" if chinese else "spare_column")
            keys.insert(1, None)
        body = [[("未知内容" if k is None else r.get(k, "")) for k in keys] for r in rows]
        return self.write(csv_text(header, body, crlf=kw.pop("crlf", False), quote_all=kw.pop("quote_all", False)),
                          **kw)


# ---- the test -------------------------------------------------------------------

class FeedsTest:
    def __init__(self, st, tmp):
        self.st = st
        self.f = Files(tmp)
        self.households = {}  # hid -> (region, [ids])

    def j(self, *args, timeout=120, check=True):
        return json.loads(self.st.levee(*(list(args) + ["--json"]), timeout=timeout, check=check).stdout)

    def load(self, source, path, *extra):
        r = self.j("load", source, path, *extra, check=False)  # a failed import exits 1
        if r.get("status") != "done":
            print("  load %s %s: %s" % (source, path, r))
        return r

    def idle(self):
        self.st.levee("wait-idle", "--timeout", "120", timeout=150)
        # wait-idle can see an empty outbox between a consumer's commit and
        # the relay of its own outbox rows: two quiet readings.
        quiet = 0
        deadline = time.monotonic() + 30
        while quiet < 2 and time.monotonic() < deadline:
            quiet = quiet + 1 if self.st.scalar("SELECT count(*) FROM outbox") == "0" else 0
            time.sleep(0.3)

    def rejects(self, import_id):
        out = self.st.levee("rejects", str(import_id)).stdout.lstrip("\ufeff")
        return [(int(r["row"]), r["column"], r["reason"], r["raw"]) for r in csv.DictReader(io.StringIO(out))]

    def state(self, hid):
        rows = self.st.psql("SELECT in_scope, coalesce(grade, ''), coalesce(category, ''), risk_factors::text, "
                            "coalesce(primary_risk, ''), income_fen, coalesce(income_source, ''), rigid_fen, "
                            "house_collapsed FROM household_state WHERE household_id = :'h'", {"h": hid})
        if not rows:
            return None
        keys = ("in_scope", "grade", "category", "factors", "primary", "income", "income_source", "rigid",
                "collapsed")
        return dict(zip(keys, rows[0]))

    def alerts(self, hid):
        return self.st.psql("SELECT grade, risk_factors::text, primary_risk, trigger_source, trigger_record_id "
                            "FROM alert WHERE household_id = :'h' ORDER BY created_ms, alert_id", {"h": hid})

    def registry(self, households):
        """households: [(hid, type, income 元 or '', [(id, name)])] with region REGION unless given."""
        rows = []
        for h in households:
            hid, htype, income, members = h[:4]
            region = h[4] if len(h) > 4 else REGION
            self.households[hid] = (region, [m[0] for m in members])
            for i, (idn, name) in enumerate(members):
                rows.append({"household_id": hid, "region_code": region, "household_type": htype,
                             "id_number": idn, "name": name, "relation": "户主" if i == 0 else "子女",
                             "annual_net_income": income if i == 0 else "", "labour": "有"})
        r = self.load("registry", self.f.feed("registry", rows))
        CK.eq((r["status"], r["accepted"], r["rejected"]), ("done", len(rows), 0),
              "registry of %d people accepted" % len(rows))

    # -- 1. parsing ------------------------------------------------------------

    def parse_rows(self, source, tag, a, b):
        """Two rows of a feed for people a and b of household HP."""
        ida, idb = a, b
        return {
            "civil": [{"record_id": tag + "1", "id_number": ida, "name": "张三", "event_date": "2026-09-01",
                       "kind": "低保", "amount": "350.5", "disability_grade": ""},
                      {"record_id": tag + "2", "id_number": idb, "name": "李四", "event_date": "20260902",
                       "kind": "残疾认定", "amount": "", "disability_grade": "二级"}],
            "disaster": [{"record_id": tag + "1", "id_number": ida, "event_date": "2026/09/03",
                          "disaster_type": "洪涝", "loss_amount": "1200.07", "house_damage": "轻微"},
                         {"record_id": tag + "2", "id_number": idb, "event_date": "2026-09-04",
                          "disaster_type": "冰雹", "loss_amount": "0", "house_damage": ""}],
            "education": [{"record_id": tag + "1", "id_number": ida, "name": "张三", "event_date": "2026-09-01",
                           "stage": "高中", "cost": "2500", "aid": "500.25", "school": "县第一中学"},
                          {"record_id": tag + "2", "id_number": idb, "name": "李四", "event_date": "2026-09-01",
                           "stage": "小学", "cost": "300", "aid": "", "school": ""}],
            "income": [{"record_id": tag + "1", "id_number": ida, "period": "2026-03", "amount": "3000",
                        "kind": "工资性"},
                       {"record_id": tag + "2", "id_number": idb, "period": "202608", "amount": "120.5",
                        "kind": ""}],
            "declaration": [{"record_id": tag + "1", "id_number": ida, "name": "张三", "event_date": "2026-09-05",
                             "reason": "因意外事故", "amount": "800", "description": "车祸, 住院"},
                            {"record_id": tag + "2", "id_number": idb, "name": "李四", "event_date": "2026-09-06",
                             "reason": "其他", "amount": "", "description": ""}],
            "visit": [{"record_id": tag + "1", "household_id": "HP", "visit_date": "2026-09-07",
                       "visitor": "村支书", "risk_factor": "因病", "income_estimate": "95000", "note": "一月一摸排"},
                      {"record_id": tag + "2", "household_id": "HP", "visit_date": "2026-09-08",
                       "visitor": "驻村工作队", "risk_factor": "", "income_estimate": "", "note": ""}],
        }[source]

    @staticmethod
    def typed(source, r, hid="HP"):
        """The typed-table row (as psql prints it) a feed row must become."""
        c = COUNTY
        if source == "civil":
            grade = {"": "", "二级": "2"}.get(r["disability_grade"], r["disability_grade"])
            return (r["record_id"], hid, c, r["id_number"], r["name"], date_ms(r["event_date"]), r["kind"],
                    fen(r["amount"]), grade)
        if source == "disaster":
            return (r["record_id"], hid, c, r["id_number"], date_ms(r["event_date"]), r["disaster_type"],
                    fen(r["loss_amount"]), r["house_damage"])
        if source == "education":
            return (r["record_id"], hid, c, r["id_number"], r["name"], date_ms(r["event_date"]), r["stage"],
                    fen(r["cost"]), fen(r["aid"]), r["school"])
        if source == "income":
            p = r["period"] if "-" in r["period"] else r["period"][:4] + "-" + r["period"][4:]
            return (r["record_id"], hid, c, r["id_number"], p + "-01", date_ms(p + "-01"), fen(r["amount"]),
                    r["kind"])
        if source == "declaration":
            return (r["record_id"], hid, c, r["id_number"], r["name"], date_ms(r["event_date"]), r["reason"],
                    fen(r["amount"]), r["description"])
        return (r["record_id"], r["household_id"], c, date_ms(r["visit_date"]), r["visitor"], r["risk_factor"],
                fen(r["income_estimate"]), r["note"])

    def typed_rows(self, source, prefix):
        return self.st.psql(TYPED[source] + " WHERE record_id LIKE :'p' ORDER BY record_id", {"p": prefix + "%"})

    def parsing(self):
        section("1. every feed, English headers and shuffled Chinese headers with an unknown column")
        a, b = new_id(1975), new_id(2008)
        self.registry([("HP", "一般农户", "100000", [(a, "张三"), (b, "李四")])])
        # registry and medical in Chinese too
        ida = new_id(1970)
        r = self.load("registry", self.f.feed("registry", [
            {"household_id": "HQ", "region_code": REGION, "household_type": "脱贫户", "exit_year": "2019",
             "id_number": ida, "name": "周七", "relation": "户主", "disability_grade": "0",
             "chronic_illness": "否", "labour": "有", "phone": "13900001111", "annual_net_income": "90000"}],
            chinese=True, shuffle=True, extra=True))
        CK.eq((r["accepted"], r["rejected"]), (1, 0), "registry with Chinese headers, shuffled")
        CK.eq(self.st.psql("SELECT p.household_id, p.name, h.household_type, h.exit_year, h.annual_income_fen "
                           "FROM person p JOIN household h USING (household_id) WHERE id_number = :'i'", {"i": ida}),
              [("HQ", "周七", "脱贫户", "2019", "9000000")], "the Chinese-header registry row as typed")
        self.households["HQ"] = (REGION, [ida])
        for chinese in (False, True):
            rid = "PM-%s" % ("zh" if chinese else "en")
            r = self.load("medical", self.f.feed("medical", [
                {"record_id": rid, "id_number": ida, "name": "周七", "settle_date": "2026-09-09",
                 "total_cost": "1000", "compliant_cost": "800", "reimbursed": "500", "self_paid": "500"}],
                chinese=chinese, shuffle=chinese, extra=chinese))
            CK.eq((r["accepted"], r["rejected"]), (1, 0), "medical with %s headers" % ("Chinese" if chinese else "English"))
            CK.eq(self.st.psql("SELECT household_id, self_paid_fen, compliant_self_fen FROM medical_expense "
                               "WHERE record_id = :'r'", {"r": rid}), [("HQ", "50000", "30000")],
                  "medical %s linked with its amounts" % rid)
        self.parsed = {}
        for source in TYPED:
            for chinese in (False, True):
                tag = "P%s-%s-" % (source[:3], "zh" if chinese else "en")
                rows = self.parse_rows(source, tag, a, b)
                path = self.f.feed(source, rows, chinese=chinese, shuffle=chinese, extra=chinese)
                r = self.load(source, path)
                CK.eq((r["status"], r["accepted"], r["duplicates"], r["rejected"]), ("done", 2, 0, 0),
                      "%s with %s headers: 2 accepted" % (source, "Chinese shuffled" if chinese else "English"))
                self.parsed[(source, chinese)] = (path, rows, tag)
        self.idle()
        for (source, chinese), (path, rows, tag) in self.parsed.items():
            CK.eq(self.typed_rows(source, tag), [self.typed(source, r) for r in rows],
                  "%s_record holds the %s file's values, linked to HP" % (source, "Chinese" if chinese else "English"))
        raw = self.st.scalar("SELECT raw FROM record WHERE source = 'civil' AND record_id = 'Pciv-zh-1'")
        CK.check(raw and "未知内容" in raw, "the unknown column is kept in the raw record", raw)

    # -- 2. encodings ---------------------------------------------------------------

    def encodings(self):
        section("2. GB18030, and UTF-8 with a BOM, CRLF and Excel quoting")
        a = self.households["HP"][1][0]
        rows = [{"record_id": "G-1", "id_number": a, "name": "张三", "event_date": "2026-09-10", "kind": "临时救助",
                 "amount": "1500", "disability_grade": ""},
                {"record_id": "G-2", "id_number": a, "name": "张三丰", "event_date": "2026-09-11", "kind": "特困",
                 "amount": "", "disability_grade": ""}]
        path = self.f.feed("civil", rows, chinese=True, encoding="gb18030")
        with open(path, "rb") as fh:
            data = fh.read()
        CK.check(b"\xd5\xc5\xc8\xfd" in data, "the file is GB18030 bytes (张三 = D5C5 C8FD)")
        r = self.load("civil", path)
        CK.eq((r["accepted"], r["rejected"]), (2, 0), "GB18030 detected: both rows accepted")
        CK.eq(self.st.psql("SELECT name, kind FROM civil_record WHERE record_id LIKE 'G-%' ORDER BY record_id"),
              [("张三", "临时救助"), ("张三丰", "特困")], "GB18030 text decoded")
        CK.eq(self.st.scalar("SELECT encoding FROM import WHERE import_id = :'i'", {"i": r["import_id"]}), "gb18030",
              "the detected encoding is recorded on the import")
        # Named explicitly, with a bad byte sequence on the second row only.
        text = csv_text([zh for _, zh, _ in FEEDS["declaration"]],
                        [["GD-1", a, "张三", "2026-09-12", "因病", "100", "住院"],
                         ["GD-2", a, "张三", "2026-09-12", "因病", "100", "BADBYTES"],
                         ["GD-3", a, "张三", "2026-09-12", "因学", "", "学费"]])
        data = text.encode("gb18030").replace(b"BADBYTES", b"\x81\x20")
        r = self.load("declaration", self.f.write(None, raw=data), "--encoding", "gb18030")
        CK.eq((r["accepted"], r["rejected"]), (2, 1), "--encoding gb18030: a bad byte sequence rejects its row alone")
        rej = self.rejects(r["import_id"])
        CK.check(len(rej) == 1 and rej[0][0] == 3 and rej[0][1] == "(row)" and "GB18030" in rej[0][2]
                 and rej[0][3].startswith("GD-2,"), "the reject: row 3, (row), GB18030 named, raw decoded", rej)
        # UTF-8 BOM, CRLF, every field quoted, a comma, a quote and a newline inside.
        desc = '房屋漏雨, 需"紧急"维修\n另: 家中老人住院'
        path = self.f.feed("declaration", [
            {"record_id": "Q-1", "id_number": a, "name": "张三", "event_date": "2026-09-13", "reason": "大额刚性支出",
             "amount": "2000", "description": desc},
            {"record_id": "Q-2", "id_number": a, "name": "张三", "event_date": "2026-09-14", "reason": "其他",
             "amount": "", "description": "无"}], crlf=True, quote_all=True, bom=True)
        r = self.load("declaration", path)
        CK.eq((r["accepted"], r["rejected"]), (2, 0), "UTF-8 + BOM + CRLF + Excel quoting: both rows accepted")
        CK.eq(self.st.scalar("SELECT description FROM declaration_record WHERE record_id = 'Q-1'"), desc,
              "quoted comma, doubled quotes and an embedded newline kept")
        CK.eq(self.st.scalar("SELECT row_no FROM record WHERE source = 'declaration' AND record_id = 'Q-2'"), "3",
              "a record with an embedded newline is one row")

    # -- 3. rejects ----------------------------------------------------------------

    BAD_VALUES = {
        "civil": [("event_date", "2026-02-30"), ("kind", "低保户"),
                  ("amount", "12.345"), ("disability_grade", "五级")],
        "disaster": [("id_number", "12345"), ("event_date", "2026.09.01"), ("loss_amount", "-5"),
                     ("house_damage", "全倒")],
        "education": [("event_date", "20261301"), ("cost", "1e3"), ("aid", "1,000")],
        "income": [("period", "2026-13"), ("period", "2026-1"), ("period", "2026-09-01"), ("amount", "abc"),
                   ("kind", "工资")],
        "declaration": [("event_date", "yesterday"), ("reason", "生病"), ("amount", "5.")],
        "visit": [("visit_date", "2026/9/1"), ("risk_factor", "因穷"), ("income_estimate", "1.2.3")],
    }

    def reject_checks(self):
        section("3. rejects: each required column empty, each bad value; raw lines")
        a = self.households["HP"][1][0]
        for source in TYPED:
            good = dict(self.parse_rows(source, "R%s-" % source[:3], a, a)[0])
            rows, want = [], []
            named = any(en == "name" for en, _, _ in FEEDS[source])
            for en, _, required in FEEDS[source]:
                # A row with a name but no valid ID number goes on to
                # identity matching (test_identity.py), not to the rejects.
                if required and not (named and en == "id_number"):
                    row = dict(good, record_id="R%s-%d" % (source[:3], len(rows)))
                    row[en] = ""
                    rows.append(row)
                    want.append((len(rows) + 1, en, "必填项为空"))
            for col, value in self.BAD_VALUES[source]:
                row = dict(good, record_id="R%s-%d" % (source[:3], len(rows)))
                row[col] = value if value != "BAD_CHECK_CHAR" else a[:17] + ("1" if a[17] != "1" else "2")
                rows.append(row)
                want.append((len(rows) + 1, col, ""))
            rows.append(dict(good, record_id="R%s-ok" % source[:3]))
            path = self.f.feed(source, rows)
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().split("\n")
            r = self.load(source, path)
            CK.eq((r["rows"], r["accepted"], r["rejected"]), (len(rows), 1, len(rows) - 1),
                  "%s: %d bad rows rejected, the good one accepted" % (source, len(rows) - 1))
            got = self.rejects(r["import_id"])
            CK.eq([(g[0], g[1]) for g in got], [(w[0], w[1]) for w in want],
                  "%s: each reject names its row and column" % source)
            CK.check(all(g[2] and w[2] in g[2] for g, w in zip(got, want)),
                     "%s: each reject has a reason (empty required values say so)" % source,
                     [g[2] for g in got])
            stored = [r[0] for r in self.st.psql("SELECT raw FROM import_reject WHERE import_id = :'i' "
                                                 "ORDER BY row_no", {"i": r["import_id"]})]
            CK.check(stored == [lines[g[0] - 1] for g in got],
                     "%s: each reject's raw is stored as the line was written" % source,
                     [(x, lines[g[0] - 1]) for x, g in zip(stored, got) if x != lines[g[0] - 1]][:3])
            CK.check([g[3] for g in got] == [mask(lines[g[0] - 1]) for g in got],
                     "%s: levee rejects gives that line with ID numbers masked" % source,
                     [(g[3], lines[g[0] - 1]) for g in got if g[3] != mask(lines[g[0] - 1])][:3])
        # A missing required header fails the import with the column named.
        header = [en for en, _, _ in FEEDS["income"] if en != "period"]
        r = self.load("income", self.f.write(csv_text(header, [])))
        CK.check(r["status"] == "failed" and "period" in (r["error"] or "") and "所属期" in r["error"],
                 "a file without the period column fails, naming period (所属期)", r.get("error"))
        # Limits: a record over LEVEE_MAX_RECORD_BYTES, a record with more than
        # LEVEE_MAX_FIELDS fields, a file over LEVEE_MAX_FILE_BYTES.
        long_row = dict(self.parse_rows("visit", "LIM-", a, a)[0], record_id="LIM-1", note="长" * 2000)
        many = ["LIM-2", "HP", "2026-09-01", "村支书", "", "", ""] + ["x"] * MAX_FIELDS
        ok = dict(self.parse_rows("visit", "LIM-", a, a)[1], record_id="LIM-3")
        text = csv_text([en for en, _, _ in FEEDS["visit"]],
                        [[long_row[k] for k, _, _ in FEEDS["visit"]], many, [ok[k] for k, _, _ in FEEDS["visit"]]])
        r = self.load("visit", self.f.write(text))
        got = self.rejects(r["import_id"])
        CK.eq((r["accepted"], r["rejected"], [(g[0], g[1]) for g in got]), (1, 2, [(2, "(row)"), (3, "(row)")]),
              "an over-long record and one with too many fields are rejected alone")
        CK.check(len(got) == 2 and "LEVEE_MAX_RECORD_BYTES" in got[0][2] and "LEVEE_MAX_FIELDS" in got[1][2],
                 "their reasons name the limits", [g[2] for g in got])
        CK.check(len(got) == 2 and got[0][3].startswith("LIM-1,HP,") and len(got[0][3].encode()) <= MAX_RECORD_BYTES
                 and got[1][3] == text.split("\n")[2], "their raw text: cut at the limit, and the whole line", None)
        big = csv_text([en for en, _, _ in FEEDS["visit"]],
                       [["BIG-%d" % i, "HP", "2026-09-01", "村支书", "", "", "x" * 200] for i in range(2000)])
        r = self.load("visit", self.f.write(big))
        CK.check(r["status"] == "failed" and "LEVEE_MAX_FILE_BYTES" in (r["error"] or "") and r["accepted"] == 0,
                 "a file over LEVEE_MAX_FILE_BYTES fails with a clear error", r.get("error"))
        CK.eq(self.st.scalar("SELECT count(*) FROM dead_letter"), "0", "no dead letters")
        status = self.st.levee("status").stdout
        CK.check(all(re.search(r"levee-%s +running" % svc, status) for svc in ("ingest", "matching")),
                 "ingest and matching survived every bad input", status)

    # -- 4. reloads ------------------------------------------------------------------

    def reloads(self):
        section("4. reloading a file, and an overlapping file, adds nothing twice")
        a = self.households["HP"][1][0]
        for source in TYPED:
            path, rows, tag = self.parsed[(source, False)]
            before = len(self.typed_rows(source, tag))
            r = self.load(source, path)
            CK.eq((r["accepted"], r["duplicates"], r["rejected"]), (0, 2, 0), "%s reloaded: 2 duplicates" % source)
            new = dict(self.parse_rows(source, tag, a, a)[0], record_id=tag + "3")
            r = self.load(source, self.f.feed(source, [rows[1], new, rows[0]]))
            CK.eq((r["accepted"], r["duplicates"]), (1, 2), "%s overlapping file: only the new row" % source)
            CK.eq(len(self.typed_rows(source, tag)), before + 1, "%s_record: one row more" % source)

    # -- 5. matching -------------------------------------------------------------

    def matching(self):
        section("5. risk factors from every feed, at the edges of the default policy")
        ids = {h: new_id(1960 + i) for i, h in enumerate(
            ("HA", "HB", "HC", "HD", "HE", "HS", "HF", "HG", "HH", "HI", "HJ", "HK", "HL"))}
        one = lambda h, income, htype="一般农户": (h, htype, income, [(ids[h], "户主" + h)])  # noqa: E731
        self.registry([one("HA", "10000"), one("HB", "10000"), one("HC", "10000"), one("HD", "8000"),
                       one("HE", "8000"), one("HS", "8000", "脱贫户"), one("HF", "4000"), one("HG", "4000"),
                       one("HH", "4000"), one("HI", "20000"), one("HJ", "10000"), one("HK", "30000"),
                       one("HL", "30000")])
        self.ids = ids
        self.idle()
        CK.eq(self.state("HF")["in_scope"], "t", "HF (4,000 元, 1 person) is under the line from the registry")
        CK.eq(self.alerts("HF"), [], "... but without evidence of a risk no alert")

        edu = lambda h, rid, cost, aid, d="2026-09-01": {  # noqa: E731
            "record_id": rid, "id_number": ids[h], "name": "学生", "event_date": d, "stage": "高中",
            "cost": cost, "aid": aid, "school": "县一中"}
        self.load("education", self.f.feed("education", [
            edu("HA", "S-EA", "5300.01", "500"), edu("HB", "S-EB", "5300", "500"), edu("HC", "S-EC", "1000", "3000"),
            edu("HK", "S-EK", "3000", "", "2026-09-05"), edu("HL", "S-EL", "2000", "", "2026-09-01")]))
        dis = lambda h, rid, damage: {  # noqa: E731
            "record_id": rid, "id_number": ids[h], "event_date": "2026-08-20", "disaster_type": "洪涝",
            "loss_amount": "3000", "house_damage": damage}
        self.load("disaster", self.f.feed("disaster", [dis("HD", "S-DD", "倒塌"), dis("HE", "S-DE", "轻微"),
                                                       dis("HS", "S-DS", "严重")]))
        civ = lambda h, rid, kind: {  # noqa: E731
            "record_id": rid, "id_number": ids[h], "name": "户主", "event_date": "2026-08-01", "kind": kind,
            "amount": "" if kind == "残疾认定" else "300", "disability_grade": "2" if kind == "残疾认定" else ""}
        self.load("civil", self.f.feed("civil", [civ("HF", "S-CF", "残疾认定"), civ("HG", "S-CG", "低保")]))
        self.load("declaration", self.f.feed("declaration", [
            {"record_id": "S-SH", "id_number": ids["HH"], "name": "户主", "event_date": "2026-09-15",
             "reason": "因意外事故", "amount": "500", "description": "摔伤"}]))
        self.load("visit", self.f.feed("visit", [
            {"record_id": "S-VI", "household_id": "HI", "visit_date": "2026-09-20", "visitor": "村支书",
             "risk_factor": "因产业项目失败", "income_estimate": "4000", "note": "养殖场亏损"}]))
        med = lambda h, rid, paid, d: {  # noqa: E731
            "record_id": rid, "id_number": ids[h], "name": "户主", "settle_date": d, "total_cost": paid,
            "compliant_cost": "", "reimbursed": "0", "self_paid": paid}
        # HJ's three settlements come in one batch: its trigger is the greatest
        # record id (S-MJ3), neither the first row nor the last.
        self.load("medical", self.f.feed("medical", [med("HJ", "S-MJ1", "1000", "2026-09-01"),
                                                     med("HJ", "S-MJ3", "2000", "2026-09-01"),
                                                     med("HJ", "S-MJ2", "2000", "2026-09-01"),
                                                     med("HK", "S-MK", "2000", "2026-09-01"),
                                                     med("HL", "S-ML", "2000", "2026-08-01")]))
        self.idle()

        def expect(hid, rigid, income, factors, trigger, collapsed=False, exited=False, members=1):
            in_scope, grade, category = evaluate(income, members, rigid, exited)
            if in_scope and collapsed:
                grade = "red"
            s = self.state(hid)
            want = {"in_scope": "t" if in_scope else "f", "grade": grade or "", "category": category or "",
                    "factors": "{%s}" % ",".join(factors), "primary": factors[0] if factors else "",
                    "income": str(income), "income_source": "registry" if hid != "HI" else "visit",
                    "rigid": str(rigid), "collapsed": "t" if collapsed else "f"}
            CK.eq(s, want, "%s: %s" % (hid, "in scope, %s %s" % (grade, category) if in_scope
                                       else "not in scope (%s)" % (grade or "no grade")))
            want_alerts = [(grade, "{%s}" % ",".join(factors), factors[0], trigger[0], trigger[1])] \
                if in_scope and factors else []
            CK.eq([a for a in self.alerts(hid)], want_alerts,
                  "%s: %s" % (hid, "one alert from %s" % trigger[0] if want_alerts else "no alert"))

        expect("HA", 480001, 1000000, ["因学"], ("education", "S-EA"))   # pci_after 5,199.99: just under
        expect("HB", 480000, 1000000, ["因学"], ("education", "S-EB"))   # exactly at the line: out, yellow
        expect("HC", 0, 1000000, ["因学"], ("education", "S-EC"))        # aid above cost: clamped to 0
        expect("HD", 300000, 800000, ["因灾"], ("disaster", "S-DD"), collapsed=True)   # 倒塌: red
        expect("HE", 300000, 800000, ["因灾"], ("disaster", "S-DE"))     # 轻微: orange
        expect("HS", 300000, 800000, ["因灾"], ("disaster", "S-DS"), collapsed=True, exited=True)  # 严重: red
        expect("HF", 0, 400000, ["因残"], ("civil", "S-CF"))             # 残疾认定 → 因残
        expect("HG", 0, 400000, [], None)                               # 低保: no risk factor
        expect("HH", 0, 400000, ["因意外事故"], ("declaration", "S-SH"))  # the declared type
        expect("HI", 0, 400000, ["因产业项目失败"], ("visit", "S-VI"))     # the visit's type and estimate
        expect("HJ", 500000, 1000000, ["因病"], ("medical", "S-MJ3"))
        expect("HK", 500000, 3000000, ["因学", "因病"], None)             # larger money effect first
        expect("HL", 400000, 3000000, ["因病", "因学"], None)             # equal effects: the earliest first

        section("5b. records of unknown people and households wait for the registry")
        idu = new_id(1990)
        self.load("education", self.f.feed("education", [dict(edu("HA", "S-EU", "6000", ""), id_number=idu)]))
        self.load("visit", self.f.feed("visit", [
            {"record_id": "S-VV", "household_id": "HV", "visit_date": "2026-09-21", "visitor": "网格员",
             "risk_factor": "因病", "income_estimate": "3000", "note": ""}]))
        self.idle()
        CK.eq(self.st.psql("SELECT source, record_id, coalesce(id_number, ''), coalesce(household_id, '') "
                           "FROM unmatched_record WHERE record_id IN ('S-EU', 'S-VV') ORDER BY source"),
              [("education", "S-EU", idu, ""), ("visit", "S-VV", "", "HV")],
              "an unknown student and an unknown household wait in unmatched_record")
        CK.eq(self.st.scalar("SELECT county FROM visit_record WHERE record_id = 'S-VV'"), "000000",
              "the unknown household's visit has no county yet")
        idv = new_id(1985, OTHER_COUNTY)
        self.registry([("HU", "一般农户", "10000", [(idu, "新生")]),
                       ("HV", "一般农户", "", [(idv, "新户")], OTHER_COUNTY + "101201")])
        self.idle()
        CK.eq(self.st.psql("SELECT household_id, county FROM education_record WHERE record_id = 'S-EU' UNION ALL "
                           "SELECT household_id, county FROM visit_record WHERE record_id = 'S-VV'"),
              [("HU", COUNTY), ("HV", OTHER_COUNTY)], "both linked when the registry brings them (county too)")
        CK.eq(self.st.scalar("SELECT count(*) FROM unmatched_record WHERE record_id IN ('S-EU', 'S-VV')"), "0",
              "and gone from unmatched_record")
        CK.eq([a[:4] for a in self.alerts("HU")], [("orange", "{因学}", "因学", "education")],
              "HU (rigid 6,000 on 10,000 元) alerted with 因学, triggered by the education record")
        CK.eq([a[:4] for a in self.alerts("HV")], [("red", "{因病}", "因病", "visit")],
              "HV (income only from the visit: 3,000 元) alerted with 因病, triggered by the visit")

    # -- 6. income by order of trust ----------------------------------------------

    def trust(self):
        section("6. income by order of trust: verification > visit > registry > income feed")
        t1, t2 = new_id(1971), new_id(1972)
        self.registry([("HT1", "一般农户", "", [(t1, "甲")]), ("HT2", "一般农户", "3000", [(t2, "乙")])])
        months = ["2025-%02d" % m for m in range(9, 13)] + ["2026-%02d" % m for m in range(1, 10)]
        rows = [{"record_id": "T1-%s" % p, "id_number": t1, "period": p,
                 "amount": "9999" if p == "2025-09" else "300", "kind": "经营性"} for p in months]
        rows += [{"record_id": "T2-%s" % p, "id_number": t2, "period": p, "amount": "1000", "kind": "经营性"}
                 for p in months[-9:]]
        rows.append({"record_id": "T1-D", "id_number": t1, "period": "2026-09", "amount": "50", "kind": "财产性"})
        self.load("income", self.f.feed("income", rows))
        self.idle()
        s1, s2 = self.state("HT1"), self.state("HT2")
        CK.eq((s1["income_source"], s1["income"]), ("income", str(12 * 30000 + 5000)),
              "HT1 without registry income: the income rows of the 12 months to 2026-09 (2025-09 left out)")
        CK.eq((s2["income_source"], s2["income"]), ("registry", "300000"), "HT2: registry over the income feed")
        self.load("visit", self.f.feed("visit", [
            {"record_id": "T-V%d" % i, "household_id": h, "visit_date": "2026-09-26", "visitor": "村支书",
             "risk_factor": "", "income_estimate": "4500", "note": ""} for i, h in enumerate(("HT1", "HT2"))]))
        self.idle()
        CK.eq([(self.state(h)["income_source"], self.state(h)["income"]) for h in ("HT1", "HT2")],
              [("visit", "450000")] * 2, "a visit estimate over the registry and the income feed")
        # A verification result over everything: HF's case (因残) is verified.
        self.st.levee("investigator-add", "inv-feeds", "核查员", COUNTY)
        task = self.st.wait_for(lambda: self.st.scalar("SELECT task_id FROM task WHERE household_id = 'HF' "
                                                       "AND assignee IS NOT NULL"), timeout=30, what="HF's task")
        self.st.levee("task-result", task, "--income", "20000", "--members", "1", "--rigid", "0")
        self.load("visit", self.f.feed("visit", [
            {"record_id": "T-VF", "household_id": "HF", "visit_date": "2026-09-27", "visitor": "村支书",
             "risk_factor": "", "income_estimate": "3000", "note": ""}]))
        self.idle()
        s = self.state("HF")
        CK.eq((s["income_source"], s["income"], s["in_scope"]), ("verification", "2000000", "f"),
              "HF: the verification result (20,000 元) over a later visit estimate; out of scope")

    # -- 7. the monthly sweep --------------------------------------------------------

    def sweep(self):
        section("7. the monthly sweep: wage drops, visit reminders, idempotency, the timer")
        w1, w2 = new_id(1981), new_id(1982)
        self.registry([("HW1", "一般农户", "4000", [(w1, "工一")]), ("HW2", "一般农户", "4000", [(w2, "工二")])])
        rows = []
        for idn, tag, last in ((w1, "W1", "700"), (w2, "W2", "700.01")):
            for m in range(4, 10):
                rows.append({"record_id": "%s-%02d" % (tag, m), "id_number": idn, "period": "2026-%02d" % m,
                             "amount": "1000", "kind": "工资性"})
            rows.append({"record_id": tag + "-10", "id_number": idn, "period": "2026-10", "amount": last,
                         "kind": "工资性"})
        self.load("income", self.f.feed("income", rows))
        self.idle()
        CK.eq((self.alerts("HW1"), self.alerts("HW2")), ([], []), "HW1, HW2 under the line, no evidence, no alert")
        yellow = self.st.scalar("SELECT string_agg(household_id, ',' ORDER BY household_id) FROM household_state "
                                "WHERE grade = 'yellow' AND county = :'c'", {"c": COUNTY})
        CK.check(yellow and "HB" in yellow.split(","), "HB (at the line) is on the yellow watch list", yellow)
        out = self.j("sweep", "--month", "2026-10", "--county", COUNTY)
        CK.check(out.get("ok"), "levee sweep --month 2026-10 --county %s" % COUNTY, out)
        self.idle()
        sig = self.st.psql("SELECT household_id, factor, month, effect_fen FROM risk_signal ORDER BY household_id")
        CK.eq(sig, [("HW1", "因务工就业不稳", "2026-10-01", str(100000 * 12 - 70000 * 12))],
              "a drop of exactly 30% is found (HW1); 29.99% is not (HW2)")
        s = self.state("HW1")
        CK.eq((s["factors"], s["primary"], s["grade"]), ("{因务工就业不稳}", "因务工就业不稳", "orange"),
              "HW1 evaluated again with 因务工就业不稳")
        CK.eq([a[:4] for a in self.alerts("HW1")], [("orange", "{因务工就业不稳}", "因务工就业不稳", "sweep")],
              "HW1 alerted, triggered by the sweep")
        CK.eq((self.state("HW2")["factors"], self.alerts("HW2")), ("{}", []), "HW2: no factor, no alert")
        wanted = sorted(yellow.split(","))
        reminded = self.st.psql("SELECT household_id FROM visit_reminder ORDER BY 1")
        CK.eq([r[0] for r in reminded], wanted, "a visit reminder for every yellow household of the county")
        inbox = self.st.psql("SELECT recipient, title FROM inbox WHERE kind = 'visit_reminder' AND title LIKE '%HB %' "
                             "ORDER BY recipient")
        CK.eq([r[0] for r in inbox], ["village:" + REGION],
              "HB's reminder reaches the village cadre who is to visit")
        before = self.fingerprint()
        for args in (("--month", "2026-10", "--county", COUNTY), ("--month", "2026-10")):
            out = self.j("sweep", *args)
            CK.check(out.get("ok") and "0 wage drops, 0 alerts, 0 visit reminders" in out.get("detail", ""),
                     "sweep %s again: nothing new" % " ".join(args), out)
        self.idle()
        CK.eq(self.fingerprint(), before, "a second sweep of the month changes nothing")
        CK.eq(self.st.psql("SELECT county, last_month FROM sweep_state ORDER BY 1"),
              [(COUNTY, "2026-10-01"), (OTHER_COUNTY, "2026-10-01")], "last swept month per county")

        # The timer: a county with no sweep_state row is swept for the month due.
        today = datetime.datetime.now(datetime.timezone.utc).date()
        due = today.replace(day=1) - datetime.timedelta(days=1)
        if today.day < 6:
            due = due.replace(day=1) - datetime.timedelta(days=1)
        due = due.replace(day=1).isoformat()
        ida = new_id(1966, "620523")
        self.registry([("HX", "一般农户", "6000", [(ida, "老乡")], "620523101201")])
        self.idle()
        CK.eq(self.state("HX")["grade"], "yellow", "HX (6,000 元) is yellow")
        self.st.env["LEVEE_SWEEP_CHECK_S"] = "1"
        self.st.restart("matching")
        try:
            self.st.wait_for(lambda: self.st.scalar("SELECT last_month FROM sweep_state WHERE county = '620523'"),
                             timeout=30, what="the timer's sweep of 620523")
        except TimeoutError as e:
            CK.check(False, "the timer sweeps county 620523", e)
        CK.eq(self.st.scalar("SELECT last_month FROM sweep_state WHERE county = '620523'"), due,
              "the timer swept 620523 for the month due (%s)" % due)
        CK.eq(self.st.scalar("SELECT month FROM visit_reminder WHERE household_id = 'HX'"), due,
              "... and reminded HX's village")

    def wakeup(self):
        section("8. a queued import notifies ingest (LISTEN levee_import) when it commits")
        # An import row that is not queued, so that no reader takes it; the
        # session that adds it listens too, and gets the notice at commit.
        cmd = ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(self.st.port_base), "-U", "levee",
               "-d", "levee", "-v", "ON_ERROR_STOP=1", "-c",
               "LISTEN levee_import; INSERT INTO import (source, path, status, created_ms) "
               "VALUES ('declaration', 'wakeup-check', 'done', 0)"]
        cp = subprocess.run(cmd, env=self.st.env, capture_output=True, text=True, timeout=60)
        CK.check(cp.returncode == 0, "the import row is added", cp.stderr.strip())
        CK.check('notification "levee_import" received' in cp.stdout,
                 "adding an import notifies levee_import", cp.stdout)

    def pid_of(self, name):
        with open(os.path.join(self.st.home, "run", "levee-%s.pid" % name), encoding="ascii") as f:
            return int(f.read().strip())

    def urgent_lane(self):
        section("9. the urgent lane's own processes: a declaration passes a stuck batch; households locked")
        ids = {h: new_id(1950 + i) for i, h in enumerate(("UL1", "UL2", "UL3"))}
        self.registry([(h, "一般农户", "4000", [(ids[h], "户主" + h)]) for h in ids])
        self.idle()
        decl = lambda h, rid: self.f.feed("declaration", [  # noqa: E731
            {"record_id": rid, "id_number": ids[h], "name": "户主" + h, "event_date": "2026-09-15",
             "reason": "因意外事故", "amount": "500", "description": "摔伤"}])
        # The main ingest and matching stopped mid-turn, as if each had a
        # peak's batch in hand: the urgent processes take the declaration.
        stuck = [self.pid_of("ingest"), self.pid_of("matching")]
        for pid in stuck:
            os.kill(pid, signal.SIGSTOP)
        try:
            r = self.load("declaration", decl("UL1", "U-UL1"), "--timeout", "60")
            CK.eq(r.get("status"), "done", "a declaration is read while the main ingest is stopped")
            try:
                self.st.wait_for(lambda: self.alerts("UL1"), timeout=30, what="UL1's alert")
            except TimeoutError as e:
                CK.check(False, "UL1's alert is stored while the main matching is stopped", e)
        finally:
            for pid in stuck:
                os.kill(pid, signal.SIGCONT)
        grade = evaluate(400000, 1, 0, False)[1]  # as HH's in section 5
        CK.eq(self.alerts("UL1"), [(grade, "{因意外事故}", "因意外事故", "declaration", "U-UL1")],
              "UL1: one alert from its declaration")
        CK.eq(self.st.scalar("SELECT worker FROM import WHERE path = :'p'", {"p": r.get("path", "")}), "-1",
              "... read by ingest-urgent (worker -1 in import)")
        CK.eq(self.st.scalar("SELECT count(*) FROM consumed WHERE consumer = 'matching-urgent' "
                             "AND msg_id = 'ing:' || :'i' || ':1'", {"i": str(r.get("import_id"))}), "1",
              "... its batch consumed by matching-urgent")
        # A small import ingest-urgent left running (killed between its claim
        # and its batch): it alone resumes it, the main ingest stopped.
        path = decl("UL3", "U-UL3")
        os.kill(stuck[0], signal.SIGSTOP)
        try:
            self.st.psql("INSERT INTO import (source, path, status, created_ms, started_ms, bytes_total, worker) "
                         "VALUES ('declaration', :'p', 'running', 0, 0, :'b', -1)",
                         {"p": path, "b": str(os.path.getsize(path))})
            try:
                self.st.wait_for(lambda: self.alerts("UL3"), timeout=30, what="UL3's alert")
            except TimeoutError as e:
                CK.check(False, "a small import left running by ingest-urgent is resumed by it", e)
        finally:
            os.kill(stuck[0], signal.SIGCONT)
        CK.eq([a[3:] for a in self.alerts("UL3")], [("declaration", "U-UL3")],
              "UL3: one alert from the resumed import")
        # A session holding UL2's row: matching may not judge HV until it lets go.
        holder = subprocess.Popen(
            ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(self.st.port_base), "-U", "levee", "-d", "levee",
             "-c", "BEGIN; SELECT 1 FROM household WHERE household_id = 'UL2' FOR UPDATE; "
                   "SELECT pg_sleep(120); COMMIT;"],
            env=dict(self.st.env, PGAPPNAME="ul2-holder"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.st.wait_for(lambda: self.st.scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ul2-holder' "
                "AND query LIKE '%pg_sleep%'") == "1", timeout=30, what="the holder's lock")
            r = self.load("declaration", decl("UL2", "U-UL2"), "--timeout", "60")
            CK.eq(r.get("status"), "done", "UL2's declaration is read")
            try:
                self.st.wait_for(lambda: self.st.scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'matching%' "
                    "AND wait_event_type = 'Lock'") == "1", timeout=30, what="matching waiting on UL2's row")
                waited = True
            except TimeoutError:
                waited = False
            CK.check(waited, "matching waits for the household's row before judging it")
            CK.eq(self.alerts("UL2"), [], "... and stores no alert for UL2 while the row is held")
        finally:
            self.st.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE application_name = 'ul2-holder'")
            holder.wait(timeout=30)
        try:
            self.st.wait_for(lambda: self.alerts("UL2"), timeout=30, what="UL2's alert")
        except TimeoutError as e:
            CK.check(False, "UL2's alert once the row is let go", e)
        CK.eq([a[3:] for a in self.alerts("UL2")], [("declaration", "U-UL2")], "UL2: one alert from its declaration")

    def fingerprint(self):
        q = ("SELECT (SELECT count(*) FROM risk_signal), (SELECT count(*) FROM alert), "
             "(SELECT count(*) FROM visit_reminder), (SELECT count(*) FROM inbox), (SELECT count(*) FROM hcase), "
             "(SELECT md5(string_agg(household_id || grade || risk_factors::text, ',' ORDER BY household_id)) "
             "FROM household_state WHERE grade IS NOT NULL)")
        return self.st.psql(q)[0]


def main():
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="levee-feeds-") as tmp:
        try:
            with Stack(free_port_base()) as st:
                print("stack up in %.1f s (port base %d)" % (time.monotonic() - started, st.port_base))
                t = FeedsTest(st, tmp)
                run_steps(st, (t.parsing, t.encodings, t.reject_checks, t.reloads, t.matching, t.trust,
                               t.sweep, t.wakeup, t.urgent_lane), ("ingest", "matching", "dispatch"))
        except (StackError, subprocess.SubprocessError) as e:
            CK.failures.append("stack: %s" % e)
    return summary(started)


if __name__ == "__main__":
    sys.exit(main())
