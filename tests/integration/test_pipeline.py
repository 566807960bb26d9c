#!/usr/bin/env python3
"""End-to-end test of the Levee pipeline on a private stack (standard library only).

    python3 tests/integration/test_pipeline.py

1. gen-sample writes a small county (registry + medical, some dirty rows and
   duplicates); the expected rejects, cases, grades, categories and money
   figures are computed here, in Python, from the CSV files alone.
2. registry then medical are loaded; the import summaries, the rejected rows,
   each household's money picture and the set of cases are compared with the
   expectation; one open case and one verify task per household.
3. investigators are added; every task gets an investigator whose region
   prefix covers the household.
4. the medical file is loaded again: nothing new.
5. verification results and procedure steps: an exclusion and an out-of-scope
   verification close their cases; two cases go through 公示 (town_review is
   refused while it runs), county approval and an illness payout computed
   here; fund balance, inbox messages, no full ID number in any message.
6. approving again is refused and pays nothing more.
7. a settlement of an unknown person is kept in unmatched_record and linked
   (and opens a case) when the registry brings the person.

Independent checks keep going after a failure so that one report shows
everything; the exit status is 1 when any check failed.
"""

import csv
import datetime
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from lvstack import ROOT, Stack, StackError, free_port_base  # noqa: E402

COUNTY = "620521"
SEED = 20260
MONTH = "2026-10"
HOUSEHOLDS = 400
MEDICAL = 4000
DIRTY = "0.02"
# The monthly sweep's timer would send visit reminders at a moment of its own.
os.environ.setdefault("LEVEE_SWEEP_CHECK_S", "0")

LINE_FEN = 520000            # monitoring income line, fen per person per year
POVERTY_NUM, POVERTY_DEN = 2, 3
WATCH_NUM, WATCH_DEN = 6, 5
DAY_MS = 86400000
WINDOW_MS = 365 * DAY_MS
PUBLICITY_DAYS = 5
SPECIAL_OPENING_FEN = 450000000
ILLNESS_TIERS = ((500000, 500), (3000000, 600), (6000000, 700))  # (from fen, permille)
ILLNESS_CAP_FEN = 10000000

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
FULL_ID_RE = re.compile(r"[0-9]{17}[0-9Xx]")
MONEY_RE = re.compile(r"[0-9]+(\.[0-9]{1,2})?")


# ---- checks -----------------------------------------------------------------

class Fatal(Exception):
    """A failed check that later steps cannot do without."""


class Checks:
    def __init__(self):
        self.count = 0
        self.failures = []

    def check(self, cond, what, detail=None):
        self.count += 1
        if cond:
            print("  ok    %s" % what)
        else:
            extra = "" if detail is None else "\n        %s" % str(detail).replace("\n", "\n        ")
            print("  FAIL  %s%s" % (what, extra))
            self.failures.append(what)
        sys.stdout.flush()
        return bool(cond)

    def eq(self, got, want, what):
        return self.check(got == want, "%s (= %r)" % (what, want) if got == want else what,
                          None if got == want else "got %r, want %r" % (got, want))

    def require(self, cond, what, detail=None):
        if not self.check(cond, what, detail):
            raise Fatal(what)


CK = Checks()


def section(title):
    print("\n== %s" % title)
    sys.stdout.flush()


# ---- independent model of the rules ---------------------------------------

def id_check_char(first17):
    return ID_CHECK[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS)) % 11]


def parse_date(s):
    """A date as ms since the epoch (UTC midnight), or None."""
    s = s.strip()
    m = re.fullmatch(r"([0-9]{4})([-/])([0-9]{2})\2([0-9]{2})", s) or \
        re.fullmatch(r"([0-9]{4})()([0-9]{2})([0-9]{2})", s)
    if not m:
        return None
    y, mo, d = int(m.group(1)), int(m.group(3)), int(m.group(4))
    if not 1900 <= y <= 2100:
        return None
    try:
        day = datetime.date(y, mo, d)
    except ValueError:
        return None
    return (day - datetime.date(1970, 1, 1)).days * DAY_MS


def valid_id(s):
    s = s.strip()
    if not re.fullmatch(r"[0-9]{17}[0-9Xx]", s) or s.startswith("000000"):
        return False
    if parse_date(s[6:14]) is None:
        return False
    return id_check_char(s[:17]) == s[17].upper()


def parse_fen(s):
    """元 text as integer fen, None when empty; raises ValueError when malformed."""
    s = s.strip()
    if not s:
        return None
    if not MONEY_RE.fullmatch(s):
        raise ValueError(s)
    yuan, _, dec = s.partition(".")
    return int(yuan) * 100 + int((dec + "00")[:2])


def yuan(fen):
    return "%d.%02d" % divmod(fen, 100)


MEDICAL_REQUIRED = ("record_id", "id_number", "name", "settle_date", "total_cost", "reimbursed",
                    "self_paid")


def medical_row_problem(row):
    """The column the ingest service must name for a bad medical row, or None."""
    # A row without a valid ID number but with a name goes on to identity
    # matching (linked or held for review), so only its name is required.
    for col in ("record_id", "id_number", "name"):
        if col == "id_number" and row["name"].strip():
            continue
        if not row[col].strip():
            return col
        if col == "id_number" and not valid_id(row[col]):
            return col
    if not row["settle_date"].strip() or parse_date(row["settle_date"]) is None:
        return "settle_date"
    money = {}
    for col in ("total_cost", "compliant_cost", "reimbursed", "self_paid"):
        try:
            money[col] = parse_fen(row[col])
        except ValueError:
            return col
        if money[col] is None and col in MEDICAL_REQUIRED:
            return col
    total = money["total_cost"]
    if money["compliant_cost"] is not None and money["compliant_cost"] > total:
        return "compliant_cost"
    if money["reimbursed"] > total:
        return "reimbursed"
    if money["self_paid"] > total:
        return "self_paid"
    return None


def evaluate(income, members, rigid, exited):
    """(in_scope, grade, category) by the default policy."""
    after = income - rigid
    if after < LINE_FEN * members:
        under = income < LINE_FEN * members
        category = ("脱贫不稳定户" if exited else "边缘易致贫户") if under else "突发严重困难户"
        red = after * POVERTY_DEN < LINE_FEN * POVERTY_NUM * members or rigid >= income
        return True, "red" if red else "orange", category
    if after * WATCH_DEN < LINE_FEN * WATCH_NUM * members:
        return False, "yellow", None
    return False, None, None


def illness_payout(basis, already_paid=0):
    milli = 0
    for i, (lo, rate) in enumerate(ILLNESS_TIERS):
        hi = ILLNESS_TIERS[i + 1][0] if i + 1 < len(ILLNESS_TIERS) else None
        if basis <= lo:
            break
        part = (basis if hi is None else min(basis, hi)) - lo
        milli += part * rate
    amount = (milli + 500) // 1000
    return max(0, min(amount, ILLNESS_CAP_FEN - already_paid))


def read_csv(path):
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


class Model:
    """What the pipeline must make of the sample, from the CSV files alone."""

    def __init__(self, reg_path, med_path):
        self.households = {}   # hid -> dict
        self.person = {}       # id_number -> hid
        for row in read_csv(reg_path):
            hid = row["household_id"].strip()
            h = self.households.setdefault(hid, {"members": set(), "income": None})
            h["region"] = row["region_code"].strip()
            h["type"] = row["household_type"].strip()
            income = parse_fen(row["annual_net_income"])
            if income is not None:
                h["income"] = income
            idn = row["id_number"].strip().upper()
            h["members"].add(idn)
            self.person[idn] = hid
        self.registry_rows = sum(len(h["members"]) for h in self.households.values())

        self.med_rows = read_csv(med_path)
        self.bad_rows = {}     # CSV row number (header = 1) -> column
        self.accepted = {}     # record_id -> row
        self.valid_rows = 0
        for i, row in enumerate(self.med_rows, start=2):
            col = medical_row_problem(row)
            if col:
                self.bad_rows[i] = col
                continue
            self.valid_rows += 1
            self.accepted.setdefault(row["record_id"].strip(), row)
        self.duplicates = self.valid_rows - len(self.accepted)

        self.settlements = {}  # hid -> [(settle_ms, self_paid, compliant_self)]
        self.unknown_ids = 0
        # Identity matching of rows without a valid ID number: a wrong check
        # character is one character away from the registered person with
        # those 17 digits (and the name agrees): linked. A missing ID offers
        # no county to search (the medical feed has no region column), and
        # an outsider's broken ID no candidate near enough: held for review.
        by17 = {idn[:17]: hid for idn, hid in self.person.items()}
        self.identity_rows = sum(1 for row in self.accepted.values() if not valid_id(row["id_number"]))
        self.in_review = 0
        for rid, row in self.accepted.items():
            idn = row["id_number"].strip().upper()
            hid = self.person.get(idn)
            if not valid_id(idn):
                hid = by17.get(idn[:17]) if len(idn) == 18 else None
                if hid is None:
                    self.in_review += 1
                    continue
            elif hid is None:
                self.unknown_ids += 1
                continue
            self_paid = parse_fen(row["self_paid"])
            compliant = parse_fen(row["compliant_cost"])
            reimbursed = parse_fen(row["reimbursed"])
            cs = self_paid if compliant is None else max(0, compliant - reimbursed)
            self.settlements.setdefault(hid, []).append((parse_date(row["settle_date"]), self_paid, cs))

        self.picture = {}      # hid -> dict(income, members, rigid, in_scope, grade, category, basis, year)
        for hid, h in self.households.items():
            s = self.settlements.get(hid, [])
            rigid, basis, year = 0, 0, None
            if s:
                last = max(ms for ms, _, _ in s)
                rigid = sum(sp for ms, sp, _ in s if ms > last - WINDOW_MS)
                year = datetime.datetime.fromtimestamp(last / 1000, datetime.timezone.utc).year
                basis = sum(cs for ms, _, cs in s
                            if datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).year == year)
            members = len(h["members"])
            in_scope, grade, category = evaluate(h["income"], members, rigid, h["type"] == "脱贫户")
            self.picture[hid] = {"income": h["income"], "members": members, "rigid": rigid,
                                 "in_scope": in_scope, "grade": grade, "category": category,
                                 "basis": basis, "year": year, "region": h["region"],
                                 "exited": h["type"] == "脱贫户"}
        # A case for every in-scope household with medical spending (因病).
        self.cases = {hid: p for hid, p in self.picture.items() if p["in_scope"] and p["rigid"] > 0}


# ---- the test ----------------------------------------------------------------

def gen_sample(out):
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "gen-sample"), "--households", str(HOUSEHOLDS),
           "--medical", str(MEDICAL), "--county", COUNTY, "--seed", str(SEED), "--month", MONTH,
           "--dirty", DIRTY, "--out", out]
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if cp.returncode != 0:
        raise Fatal("gen-sample failed: %s" % cp.stderr)
    m = re.search(r"dirty rows (\d+) .*duplicates appended (\d+)", cp.stderr)
    if not m:
        raise Fatal("gen-sample did not report its dirty rows: %r" % cp.stderr)
    print("  %s" % cp.stdout.strip())
    print("  %s" % cp.stderr.strip())
    return int(m.group(1)), int(m.group(2))


class Pipeline:
    def __init__(self, st, model, tmp):
        self.st = st
        self.m = model
        self.tmp = tmp

    # -- helpers --------------------------------------------------------------

    def j(self, *args, timeout=120):
        cp = self.st.levee(*(list(args) + ["--json"]), timeout=timeout)
        return json.loads(cp.stdout)

    def rc(self, *args):
        """Runs a levee command that may be refused; returns (exit code, output)."""
        cp = self.st.levee(*args, check=False)
        return cp.returncode, (cp.stdout + cp.stderr).strip()

    def idle(self):
        self.j("wait-idle", "--timeout", "120")

    def counts(self):
        tables = ("hcase", "alert", "task", "medical_expense", "unmatched_record", "inbox",
                  "payout", "transfer")
        row = self.st.psql("SELECT " + ", ".join("(SELECT count(*) FROM %s)" % t for t in tables))[0]
        return dict(zip(tables, (int(x) for x in row)))

    def settle(self, quiet_s=1.5, timeout=30):
        """Waits for the pipeline to be idle and the table counts to stay put."""
        self.idle()
        deadline = time.monotonic() + timeout
        last = self.counts()
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.3)
            now = self.counts()
            if now != last:
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= quiet_s:
                return now
        return last

    def cases(self):
        return {c["household_id"]: c for c in self.j("cases", "--limit", "100000")}

    def case_row(self, case_id):
        rows = self.st.psql("SELECT status, stage, grade, category, coalesce(publicity_end_ms, -1) "
                            "FROM hcase WHERE case_id = :'c'", {"c": case_id})
        return rows[0] if rows else None

    def tasks(self):
        return self.j("tasks", "--limit", "100000")

    def inbox(self, recipient):
        return self.j("inbox", recipient, "--limit", "100000")

    def payouts(self):
        return sorted(((p["payout_id"], p["household_id"], p["kind"], p["amount_fen"], p["status"])
                       for p in self.j("payouts", "--limit", "100000")))

    def special(self):
        funds = {f["fund_id"]: f for f in self.j("funds")}
        return funds.get("special")

    # -- 1 + 2: loading -------------------------------------------------------

    def load_sample(self, reg_path, med_path, dirty, dups):
        m = self.m
        section("1. import summaries and rejected rows")
        r = self.j("load", "registry", reg_path)
        CK.eq(r["status"], "done", "registry import done")
        CK.eq(r["rows"], m.registry_rows, "registry rows")
        CK.eq((r["accepted"], r["duplicates"], r["rejected"]), (m.registry_rows, 0, 0),
              "registry accepted, duplicates, rejected")

        r = self.j("load", "medical", med_path)
        self.med_import = r["import_id"]
        CK.eq(r["status"], "done", "medical import done")
        CK.eq(r["rows"], len(m.med_rows), "medical rows")
        CK.check(r["accepted"] + r["duplicates"] + r["rejected"] == r["rows"],
                 "accepted + duplicates + rejected = rows (%d + %d + %d = %d)"
                 % (r["accepted"], r["duplicates"], r["rejected"], r["rows"]))
        CK.eq(r["rejected"] + m.identity_rows, dirty,
              "rejected + rows left to identity matching = gen-sample's dirty rows")
        CK.eq(r["duplicates"], dups, "duplicates = gen-sample's appended duplicates")
        CK.eq(r["accepted"], len(m.accepted), "accepted = distinct valid records")
        CK.eq(len(m.bad_rows), r["rejected"], "the Python validator finds as many bad rows as ingest")

        out = self.st.levee("rejects", str(self.med_import)).stdout.lstrip("\ufeff")
        rejects = {int(row["row"]): row["column"] for row in csv.DictReader(io.StringIO(out))}
        CK.eq(len(rejects), r["rejected"], "levee rejects lists every rejected row")
        CK.check(set(rejects) == set(m.bad_rows), "rejected row numbers = rows invalid by the feed rules",
                 "only service: %s; only expected: %s" % (sorted(set(rejects) - set(m.bad_rows))[:20],
                                                          sorted(set(m.bad_rows) - set(rejects))[:20]))
        wrong_col = {n: (rejects[n], m.bad_rows[n]) for n in set(rejects) & set(m.bad_rows)
                     if rejects[n] != m.bad_rows[n]}
        CK.check(not wrong_col, "each reject names the offending column", sorted(wrong_col.items())[:10])
        full_ids = [line for line in out.splitlines() if FULL_ID_RE.search(line)]
        CK.check(not full_ids, "rejected rows' raw text carries no full ID number", full_ids[:3])

        section("2. matching: money pictures and cases")
        counts = self.settle()
        print("  settled: %s" % counts)
        CK.eq(counts["medical_expense"], len(m.accepted) - m.unknown_ids - m.in_review,
              "medical_expense rows = accepted settlements of registered people")
        CK.eq(int(self.st.scalar("SELECT count(*) FROM identity_review WHERE source = 'medical'")), m.in_review,
              "rows without a usable ID number and no near registry person wait in identity_review")
        CK.eq(counts["unmatched_record"], m.unknown_ids, "unmatched_record rows (every sample ID is registered)")
        CK.eq(int(self.st.scalar("SELECT count(*) FROM dead_letter")), 0, "no dead letters")

        state = {r[0]: r for r in self.st.psql(
            "SELECT household_id, in_scope, coalesce(grade, ''), coalesce(category, ''), income_fen, "
            "members, rigid_fen FROM household_state")}
        CK.eq(len(state), len(m.picture), "household_state rows = households")
        bad_pic = []
        for hid, p in sorted(m.picture.items()):
            s = state.get(hid)
            want = (hid, "t" if p["in_scope"] else "f", p["grade"] or "", p["category"] or "",
                    str(p["income"]), str(p["members"]), str(p["rigid"]))
            if s != want:
                bad_pic.append((hid, "got", s, "want", want))
        CK.check(not bad_pic, "every household's income, members, rigid (365-day window), scope, grade "
                 "and category", "\n".join(map(str, bad_pic[:10])))

        cases = self.cases()
        want = set(m.cases)
        got = set(cases)
        missing = sorted(want - got)
        extra = sorted(got - want)
        print("  expected cases: %d (red %d, orange %d); opened: %d"
              % (len(want), sum(p["grade"] == "red" for p in m.cases.values()),
                 sum(p["grade"] == "orange" for p in m.cases.values()), len(got)))
        detail = []
        for hid in missing[:15]:
            p = m.picture[hid]
            at_registry = evaluate(p["income"], p["members"], 0, p["exited"])
            detail.append("missing %s: income %d, members %d, rigid %d -> %s %s; from the registry "
                          "alone (rigid 0) it was already %s" % (hid, p["income"], p["members"], p["rigid"],
                                                                 p["grade"], p["category"], at_registry))
        for hid in extra[:15]:
            detail.append("unexpected %s: %s" % (hid, m.picture[hid]))
        if len(missing) > 15:
            detail.append("... %d missing in all" % len(missing))
        CK.check(got == want, "cases opened for exactly the in-scope households with medical spending "
                 "(%d expected)" % len(want), "\n".join(detail))

        wrong = []
        for hid in sorted(got & want):
            c, p = cases[hid], m.cases[hid]
            if (c["case_id"], c["status"], c["stage"], c["grade"], c["category"], c["risk_factors"]) != \
               (hid + "-1", "candidate", "screen", p["grade"], p["category"], ["因病"]):
                wrong.append((hid, c, p))
        CK.check(not wrong, "each case: id <household>-1, candidate (next: screen), grade, category, risk 因病",
                 "\n".join(map(str, wrong[:10])))

        dup_open = self.st.psql("SELECT household_id, count(*) FROM hcase WHERE status NOT IN "
                                "('eliminated', 'rejected') GROUP BY household_id HAVING count(*) > 1")
        CK.check(not dup_open, "at most one open case per household", dup_open[:10])
        CK.eq(int(self.st.scalar("SELECT count(*) FROM hcase")), len(got), "one case row per household")

        tasks = self.tasks()
        by_case = {}
        for t in tasks:
            by_case.setdefault(t["case_id"], []).append(t)
        bad_tasks = [(cid, by_case.get(cid)) for cid in (c["case_id"] for c in cases.values())
                     if [(t["task_id"], t["kind"], t["status"]) for t in by_case.get(cid, [])]
                     != [(cid + "-V1", "verify", "open")]]
        CK.check(not bad_tasks and len(tasks) == len(cases),
                 "exactly one open verify task <case>-V1 per case (%d tasks)" % len(tasks), bad_tasks[:5])
        CK.check(all(t["assignee"] is None for t in tasks), "no task assigned before any investigator exists")
        self.cases_now = cases
        return cases

    # -- 3: investigators -----------------------------------------------------

    def investigators(self):
        section("3. dispatch assigns tasks by region prefix")
        self.prefix = {"inv-other": COUNTY[:5] + "9", "inv-town": COUNTY + "101", "inv-county": COUNTY}
        self.st.levee("investigator-add", "inv-other", "外县调查员", self.prefix["inv-other"])
        self.st.levee("investigator-add", "inv-town", "乡镇调查员", self.prefix["inv-town"])
        self.st.levee("investigator-add", "inv-county", "县调查员", self.prefix["inv-county"])
        t0 = time.monotonic()

        def all_assigned():
            ts = self.tasks()
            return ts if ts and all(t["assignee"] for t in ts) else None
        try:
            tasks = self.st.wait_for(all_assigned, timeout=20, what="every task assigned")
        except TimeoutError as e:
            CK.check(False, "every open task assigned once investigators exist", e)
            return
        CK.check(True, "every open task assigned (%d tasks, %.1f s)" % (len(tasks), time.monotonic() - t0))
        region = {hid: p["region"] for hid, p in self.m.picture.items()}
        wrong = [(t["task_id"], t["assignee"]) for t in tasks
                 if not region[t["household_id"]].startswith(self.prefix.get(t["assignee"], "#"))]
        CK.check(not wrong, "each assignee's region prefix covers the household's region", wrong[:10])
        CK.check(not any(t["assignee"] == "inv-other" for t in tasks), "no task goes to another county's investigator")

    # -- 4: reload --------------------------------------------------------------

    def reload(self, med_path, dirty):
        section("4. loading the medical file again adds nothing")
        before = self.settle()
        r = self.j("load", "medical", med_path)
        CK.eq(r["status"], "done", "second medical import done")
        CK.eq(r["accepted"], 0, "second import: accepted")
        CK.eq(r["rejected"], len(self.m.bad_rows), "second import: rejected")
        CK.eq(r["duplicates"], r["rows"] - len(self.m.bad_rows), "second import: everything else is a duplicate")
        after = self.settle()
        CK.eq(after, before, "no new case, alert, task, expense, message or payout")

    # -- 5 + 6: verification, review, approval, payout --------------------------

    def task_result(self, hid, income, members, rigid, *extra):
        case_id = hid + "-1"
        return self.rc("task-result", case_id + "-V1", "--income", yuan(income), "--members", str(members),
                       "--rigid", yuan(rigid), "--actor", "inv-county", *extra)

    def review(self):
        m = self.m
        section("5. verification, 公示, approval and payout")
        usable = sorted(set(self.cases_now) & set(m.cases))
        if len(usable) < 4:
            raise Fatal("fewer than 4 cases to work with")
        # Two to approve: the largest payout basis (several tiers), and one inside the first tier.
        big = max(usable, key=lambda h: (m.cases[h]["basis"], h))
        first_tier = [h for h in usable if h != big and 500000 < m.cases[h]["basis"] < 3000000]
        mid = first_tier[len(first_tier) // 2] if first_tier else [h for h in usable if h != big][0]
        rest = [h for h in usable if h not in (big, mid)]
        excl, out_of_scope = rest[0], rest[1]
        self.approved = [big, mid]
        print("  excluded %s, out of scope %s, approved %s (basis %s) and %s (basis %s)"
              % (excl, out_of_scope, big, yuan(m.cases[big]["basis"]), mid, yuan(m.cases[mid]["basis"])))

        # (a) excluded: rejected; the village hears of it, the town does not.
        p = m.cases[excl]
        member_id = sorted(m.households[excl]["members"])[0]
        reason = "家庭成员%s为财政供养人员" % member_id
        rc, out = self.task_result(excl, p["income"], p["members"], p["rigid"], "--excluded", reason)
        CK.eq(rc, 0, "(a) task-result with --excluded accepted")
        row = self.case_row(excl + "-1")
        CK.eq(row[0] if row else None, "rejected", "(a) excluded household's case is rejected")
        CK.eq(self.st.scalar("SELECT status FROM task WHERE task_id = :'t'", {"t": excl + "-1-V1"}), "done",
              "(a) its task is done")

        # (b) verified income exactly at the line after rigid spending: not in scope (strictly below).
        p = m.cases[out_of_scope]
        income = p["rigid"] + LINE_FEN * p["members"]
        rc, out = self.task_result(out_of_scope, income, p["members"], p["rigid"])
        CK.eq(rc, 0, "(b) task-result accepted")
        row = self.case_row(out_of_scope + "-1")
        CK.eq(row[:2] if row else None, ("rejected", "closed"),
              "(b) verified (income - rigid) = line x members: out of scope, case rejected")
        for hid in (excl, out_of_scope):
            CK.eq(self.j("household", hid)["status"], "rejected", "household %s status rejected" % hid)

        # (c) two cases all the way to county approval.
        for hid in self.approved:
            self.walk(hid)

        self.idle()
        section("5. payouts, fund and inbox")

        def payouts_posted():
            ps = {p[0]: p for p in self.payouts()}
            return ps if all(("illness:%s-1:%d" % (h, m.cases[h]["year"])) in ps for h in self.approved) else None
        try:
            posted = self.st.wait_for(payouts_posted, timeout=20, what="payouts of the approved cases")
        except TimeoutError as e:
            posted = {p[0]: p for p in self.payouts()}
            CK.check(False, "a payout for each approved case", e)
        total = 0
        for hid in self.approved:
            c = m.cases[hid]
            pid = "illness:%s-1:%d" % (hid, c["year"])
            want_amount = illness_payout(c["basis"])
            got = posted.get(pid)
            CK.eq(got, (pid, hid, "illness", want_amount, "pending"),
                  "payout %s: basis %s 元 -> %s 元, reserved on approval" % (pid, yuan(c["basis"]), yuan(want_amount)))
            hh = self.j("household", hid)
            basis = [(x["payout_id"], x["year"], x["basis_fen"]) for x in hh["payouts"]]
            CK.eq(basis, [(pid, c["year"], c["basis"])], "payout %s basis = the year's compliant self-paid" % pid)
            CK.eq(hh["status"], "monitoring", "household %s status monitoring" % hid)
            total += want_amount
        CK.eq(sorted(posted), sorted("illness:%s-1:%d" % (h, m.cases[h]["year"]) for h in self.approved),
              "payouts only for the approved cases")
        fund = self.special()
        CK.eq((fund["balance_fen"], fund["paid_fen"], fund["pending_fen"]) if fund else None,
              (SPECIAL_OPENING_FEN - total, 0, total),
              "fund special after approval: balance = 4,500,000 元 - reserved, nothing paid yet")
        # The fund manager pays the reservations; a second payment is refused.
        for hid in self.approved:
            pid = "illness:%s-1:%d" % (hid, m.cases[hid]["year"])
            CK.eq(self.rc("pay", pid)[0], 0, "levee pay %s" % pid)
            CK.eq(self.rc("pay", pid)[0], 1, "paying %s again is refused" % pid)
        self.idle()
        posted = {p[0]: p for p in self.payouts()}
        for hid in self.approved:
            pid = "illness:%s-1:%d" % (hid, m.cases[hid]["year"])
            CK.eq(posted.get(pid, ())[4:], ("posted",), "payout %s posted after levee pay" % pid)
        fund = self.special()
        CK.eq((fund["balance_fen"], fund["paid_fen"], fund["pending_fen"]) if fund else None,
              (SPECIAL_OPENING_FEN - total, total, 0),
              "fund special after payment: balance = 4,500,000 元 - paid, paid = posted, nothing pending")
        CK.eq(self.rc("reconcile")[0], 0, "levee reconcile: the books reconcile")

        # The medical-assistance calculator on the same basis: basic 60% above
        # 2,000 元 capped at 80,000 元; tilted 60% above 4,500 元, no cap.
        for hid in self.approved:
            basis = m.cases[hid]["basis"]
            mc = self.j("medcalc", hid)
            want_basic = min(max(basis - 200000, 0) * 600 // 1000 + (1 if max(basis - 200000, 0) * 600 % 1000 >= 500 else 0), 8000000)
            want_tilted = max(basis - 450000, 0) * 600 // 1000 + (1 if max(basis - 450000, 0) * 600 % 1000 >= 500 else 0)
            CK.eq((mc["compliant_self_paid_fen"], mc["basic"]["amount_fen"], mc["tilted"]["amount_fen"],
                   mc["difference_fen"]),
                  (basis, want_basic, want_tilted, want_tilted - want_basic),
                  "medcalc %s: basic and tilted assistance on %s 元" % (hid, yuan(basis)))
        # The payout report adds up to the payouts, and its CSV opens in Excel.
        rep = self.j("payout-report", "--region", "620521")
        CK.eq(sum(r["paid_fen"] for r in rep["payouts"]), total, "payout-report: paid total = posted payouts")
        csv_out = self.st.levee("payout-report", "--csv").stdout
        CK.check(csv_out.startswith("\ufeff") and "illness" in csv_out,
                 "payout-report --csv: UTF-8 with BOM, one line per group", csv_out[:120])

        # Inbox.
        for hid in self.approved:
            region = m.cases[hid]["region"]
            # A payout is news for the town and the household, not the village (config/notify.json);
            # task and red-alert news may reach the same offices as well.
            for who, want in (("town:" + region[:9], ["case_approved", "case_opened", "payout_posted"]),
                              ("village:" + region, ["case_approved", "case_opened"])):
                kinds = sorted({x["kind"] for x in self.inbox(who) if hid in x["title"]}
                               & {"case_approved", "case_opened", "payout_posted"})
                CK.eq(kinds, want, "%s hears of %s" % (who, hid))
            amount = illness_payout(m.cases[hid]["basis"])
            msg = [x for x in self.inbox("town:" + region[:9]) if x["kind"] == "payout_posted" and hid in x["title"]]
            CK.check(msg and yuan(amount) in msg[0]["body"], "payout message for %s names %s 元" % (hid, yuan(amount)),
                     msg[:1])
        for hid, why in ((excl, "excluded"), (out_of_scope, "out of scope")):
            region = m.cases[hid]["region"]
            village = [x for x in self.inbox("village:" + region) if x["kind"] == "case_rejected" and hid in x["title"]]
            town = [x for x in self.inbox("town:" + region[:9]) if x["kind"] == "case_rejected" and hid in x["title"]]
            CK.check(len(village) == 1 and not town,
                     "rejection of %s (%s): village inbox only" % (hid, why), {"village": village, "town": town})
            if hid == excl and village:
                masked = member_id[:6] + "********" + member_id[14:]
                CK.check(masked in village[0]["body"], "the exclusion reason reaches the village with the ID masked",
                         village[0]["body"])
        rows = self.st.psql("SELECT recipient, kind, title, body FROM inbox")
        leaks = [r for r in rows if FULL_ID_RE.search(r[2]) or FULL_ID_RE.search(r[3])]
        CK.check(rows and not leaks, "no full 18-digit ID number in any of %d inbox messages" % len(rows), leaks[:3])

        # 6. No double payout.
        section("6. approving again pays nothing more")
        before_payouts, before_fund = self.payouts(), self.special()
        before_transfers = self.st.scalar("SELECT count(*) FROM transfer")
        for hid in self.approved:
            rc, out = self.rc("step", hid + "-1", "county_approve", "pass", "--note", "再次审定")
            CK.eq(rc, 1, "county_approve again on %s refused (exit 1)" % hid)
        rc, out = self.task_result(big, m.cases[big]["income"], m.cases[big]["members"], m.cases[big]["rigid"])
        CK.eq(rc, 1, "a second result for a done task refused (exit 1)")
        rc, out = self.rc("step", excl + "-1", "deliberate", "pass")
        CK.eq(rc, 1, "a step on a rejected case refused (exit 1)")
        self.settle(quiet_s=1.0)
        CK.eq(self.payouts(), before_payouts, "payouts unchanged")
        CK.eq(self.special(), before_fund, "fund unchanged")
        CK.eq(self.st.scalar("SELECT count(*) FROM transfer"), before_transfers, "no new transfer")

    def walk(self, hid):
        m = self.m
        c = m.cases[hid]
        case_id = hid + "-1"
        print("  -- %s: income %s 元, %d members, rigid %s 元, %s %s"
              % (case_id, yuan(c["income"]), c["members"], yuan(c["rigid"]), c["grade"], c["category"]))
        rc, out = self.task_result(hid, c["income"], c["members"], c["rigid"], "--risk", "因病",
                                   "--findings", "入户核实属实")
        CK.eq(rc, 0, "task-result for %s accepted" % case_id)
        if self.case_row(case_id)[1] == "recheck":
            # Drawn for 抽样复核 (10%): another investigator agrees.
            task, who = self.st.psql("SELECT task_id, assignee FROM task WHERE case_id = :'c' AND kind = 'recheck' "
                                     "AND status = 'open'", {"c": case_id})[0]
            rc, out = self.rc("task-result", task, "--income", yuan(c["income"]), "--members", str(c["members"]),
                              "--rigid", yuan(c["rigid"]), "--actor", who or "县级复核员")
            CK.eq(rc, 0, "re-check %s by %s agrees" % (task, who))
        _, grade, category = evaluate(c["income"], c["members"], c["rigid"], c["exited"])
        CK.eq(self.case_row(case_id)[:4], ("reviewing", "deliberate", grade, category),
              "%s re-evaluated with the verified figures: reviewing, next deliberate" % case_id)

        def step(name, want_rc=0):
            rc, out = self.rc("step", case_id, name, "pass", "--note", "同意")
            CK.eq(rc, want_rc, "step %s on %s %s" % (name, case_id, "accepted" if want_rc == 0 else "refused"))
            return out

        step("deliberate")
        CK.eq(self.case_row(case_id)[:2], ("reviewing", "publicize"), "%s: next publicize" % case_id)
        t0 = int(time.time() * 1000)
        step("publicize")
        row = self.case_row(case_id)
        t1 = int(time.time() * 1000)
        end = int(row[4])
        CK.check(row[0] == "publicizing" and t0 + PUBLICITY_DAYS * DAY_MS - 60000 <= end <= t1 + PUBLICITY_DAYS * DAY_MS + 60000,
                 "%s publicizing, 公示 ends in %d days" % (case_id, PUBLICITY_DAYS), row)
        step("town_review", 1)
        step("county_approve", 1)
        CK.eq(self.case_row(case_id)[0], "publicizing", "%s still publicizing after the refused steps" % case_id)

        self.st.psql("UPDATE hcase SET publicity_end_ms = 0 WHERE case_id = :'c'", {"c": case_id})
        t0 = time.monotonic()
        try:
            self.st.wait_for(lambda: self.case_row(case_id)[:2] == ("reviewing", "town_review"), timeout=10,
                             what="公示 end")
            CK.check(True, "%s: 公示 over, reviewing, next town_review (%.1f s)" % (case_id, time.monotonic() - t0))
        except TimeoutError as e:
            CK.check(False, "%s: 公示 timer moves the case on" % case_id, e)
        step("town_review")
        CK.eq(self.case_row(case_id)[:2], ("reviewing", "county_approve"), "%s: next county_approve" % case_id)
        step("county_approve")
        CK.eq(self.case_row(case_id)[0], "monitoring", "%s monitoring" % case_id)

    # -- 7: unknown person ------------------------------------------------------

    def unknown_person(self):
        section("7. a settlement of an unknown person waits for the registry")
        m = self.m
        # Dispatch and notify prepare their statements per session: their
        # sessions are cut here, so what follows runs on new sessions that
        # must prepare them again (a reconnect forgets the old names).
        sql_pids = "SELECT application_name, pid FROM pg_stat_activity WHERE application_name IN ('dispatch', 'notify')"
        before = dict(self.st.psql(sql_pids))
        CK.eq(sorted(before), ["dispatch", "notify"], "dispatch's and notify's sessions carry their names")
        self.st.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE application_name IN ('dispatch', 'notify')")
        idn = None
        for seq in range(1, 999, 2):
            first17 = COUNTY + "19750615" + "%03d" % seq
            cand = first17 + id_check_char(first17)
            if cand not in m.person:
                idn = cand
                break
        hid, region, rid = "H" + COUNTY + "9999999", COUNTY + "105203", "YB" + COUNTY + "900000001"
        med = os.path.join(self.tmp, "unknown_medical.csv")
        with open(med, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["record_id", "id_number", "name", "settle_date", "total_cost", "compliant_cost",
                        "reimbursed", "self_paid"])
            w.writerow([rid, idn, "郑新民", "2026-10-20", "90000.00", "80000.00", "40000.00", "50000.00"])
        r = self.j("load", "medical", med)
        CK.eq((r["accepted"], r["duplicates"], r["rejected"]), (1, 0, 0), "unknown-ID settlement accepted")
        self.settle(quiet_s=1.0)
        un = self.st.psql("SELECT source, id_number, self_paid_fen, compliant_self_fen FROM unmatched_record "
                          "WHERE record_id = :'r'", {"r": rid})
        CK.eq(un, [("medical", idn, "5000000", "4000000")], "it waits in unmatched_record")
        CK.eq(self.st.scalar("SELECT count(*) FROM medical_expense WHERE record_id = :'r'", {"r": rid}), "0",
              "no medical_expense row yet")

        reg = os.path.join(self.tmp, "new_registry.csv")
        with open(reg, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["household_id", "region_code", "household_type", "exit_year", "id_number", "name",
                        "relation", "disability_grade", "chronic_illness", "labour", "phone",
                        "annual_net_income"])
            w.writerow([hid, region, "脱贫户", "2019", idn, "郑新民", "户主", "0", "是", "弱", "", "3600"])
        r = self.j("load", "registry", reg)
        CK.eq((r["accepted"], r["duplicates"], r["rejected"]), (1, 0, 0), "new household's registry row accepted")
        self.settle(quiet_s=1.0)
        me = self.st.psql("SELECT household_id, id_number, self_paid_fen, compliant_self_fen FROM medical_expense "
                          "WHERE record_id = :'r'", {"r": rid})
        CK.eq(me, [(hid, idn, "5000000", "4000000")], "the settlement is linked to the new household")
        CK.eq(self.st.scalar("SELECT count(*) FROM unmatched_record WHERE record_id = :'r'", {"r": rid}), "0",
              "unmatched_record row gone")
        _, grade, category = evaluate(360000, 1, 5000000, True)
        try:
            self.st.wait_for(lambda: hid in self.cases(), timeout=10, what="a case for the new household")
        except TimeoutError:
            pass
        c = self.cases().get(hid)
        CK.eq((c["case_id"], c["status"], c["grade"], c["category"]) if c else None,
              (hid + "-1", "candidate", grade, category), "a case opens for the new household")
        task = [t for t in self.tasks() if t["household_id"] == hid]
        CK.eq([(t["task_id"], t["kind"], t["assignee"]) for t in task], [(hid + "-1-V1", "verify", "inv-county")],
              "its verify task goes straight to the county investigator")
        for who in ("town:" + region[:9], "village:" + region):
            CK.check(any(x["kind"] == "case_opened" and hid in x["title"] for x in self.inbox(who)),
                     "%s hears of the new case" % who)
        after = dict(self.st.psql(sql_pids))
        CK.check(sorted(after) == ["dispatch", "notify"] and all(after[k] != before[k] for k in after),
                 "dispatch and notify did this on new sessions", (before, after))


def main():
    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="levee-pipeline-")
    try:
        section("0. sample and expectation")
        sample = os.path.join(tmp, "sample")
        dirty, dups = gen_sample(sample)
        reg_path, med_path = os.path.join(sample, "registry.csv"), os.path.join(sample, "medical.csv")
        model = Model(reg_path, med_path)
        print("  %d households, %d persons, %d medical rows (%d bad, %d duplicates), %d expected cases"
              % (len(model.households), model.registry_rows, len(model.med_rows), len(model.bad_rows),
                 model.duplicates, len(model.cases)))
        CK.require(len(model.cases) >= 20, "the sample yields enough cases to work with")

        with Stack(free_port_base()) as st:
            print("  stack up in %.1f s (port base %d)" % (time.monotonic() - started, st.port_base))
            p = Pipeline(st, model, tmp)
            run_steps(st, (lambda: p.load_sample(reg_path, med_path, dirty, dups), p.investigators,
                           lambda: p.reload(med_path, dirty), p.review, p.unknown_person))
    except Fatal as e:
        CK.failures.append("aborted: %s" % e)
        print("\nABORTED: %s" % e)
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    return summary(started)


def run_steps(st, steps, services=("ingest", "matching", "dispatch", "ledger", "notify")):
    """Runs the steps in order; an error aborts the rest and counts as a
    failure. After any failure, the services' last log lines are printed."""
    try:
        for step in steps:
            step()
    except (Fatal, StackError, TimeoutError, KeyError, TypeError, IndexError, ValueError) as e:
        CK.failures.append("aborted: %s" % e)
        print("\nABORTED: %s" % e)
        traceback.print_exc()
    if CK.failures:
        for svc in services:
            tail = st.log(svc).splitlines()[-15:]
            print("\n-- levee-%s log (last lines)\n%s" % (svc, "\n".join(tail)))


def summary(started):
    """Prints the count of checks and the failures; returns the exit status."""
    print("\n%d checks, %d failed, %.1f s" % (CK.count, len(CK.failures), time.monotonic() - started))
    for f in CK.failures:
        print("  failed: %s" % f)
    print("FAIL" if CK.failures else "PASS")
    return 1 if CK.failures else 0


if __name__ == "__main__":
    sys.exit(main())
