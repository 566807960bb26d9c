#!/usr/bin/env python3
"""The whole case lifecycle on one private stack (standard library only).

    python3 tests/integration/test_lifecycle.py

A small registry (three counties) and one hospital bill per household open
candidate cases; then, in order:

1. screening: a drop without a reason is refused, with a reason it rejects
   the case and cancels its task; a pass moves it to verifying; only town
   or village may screen; the 入户核查 task went out before any screening.
2. assignment: investigators of one county share the waiting tasks by load
   (within one), red tasks are assigned before orange ones, and every
   investigator's list and Redis queue holds red before orange.
3. verification: an exclusion finding rejects the case with the reason; 20
   verified cases of a county yield exactly 2 re-checks (10%), each by an
   investigator other than the verifier (the verifier himself is refused);
   a re-check within tolerance moves the case on, one beyond sends it back
   to verifying with a new task; `levee recheck-stats` counts both; the
   verifier's primary risk factor overrides the computed one.
4. review: 公示 refuses 乡镇审核 while it runs, an objection reopens
   verification; a failed step needs a reason.
5. kill -9 of dispatch while four cases are in 公示 and tasks are open;
   restarted with its clock 6 days later (LEVEE_TEST_CLOCK_OFFSET_MS): the
   公示 periods end, overdue tasks are escalated (task_overdue to the county
   and the investigator, read from the outbox) and reassigned to the other
   investigator, a task nobody else can take is escalated once and stays.
6. rejection at 乡镇审核 and at 县级审定 with a reason; two approvals.
7. Redis wiped while dispatch runs, and while it is down: the queues are
   rebuilt from Postgres.
8. a second bill turns an orange case red: grade_changed, red_alert, and its
   task moves to the head of the investigator's queue.
8b. two households declare 20,000 元 each: not rigid expenditure until a
   verification accepts it; one verification accepts (matching judges the
   household again at once: rigid 20,000 元, red), one refuses (stays 0).
9. monitoring: 风险消除 refused while the rules do not hold (time, measures,
   income, a pending payout); measures recorded and delivered; six months
   later the sweep sends a 回访 for the household that qualifies and never
   for the one where nobody can work (refused, flagged in `levee cases`);
   a 回访 that finds the risk remaining stops it until a new measure is
   delivered; the next 回访 confirms; 评议, 公示 (a third restart ends it), 审核, 审定 →
   eliminated; a new bill opens episode 2.

Exits 1 when any check failed.
"""

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from lvstack import Stack, StackError, free_port_base  # noqa: E402

DAY_MS = 86400000
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
A, B, C = "620521", "620522", "620523"
VILLAGE = {A: (A + "101201", A + "102201"), B: (B + "101201",), C: (C + "101201",)}
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文"
T0 = time.monotonic()


# ---- checks -----------------------------------------------------------------

class Fatal(Exception):
    pass


class Checks:
    def __init__(self):
        self.count = 0
        self.failures = []

    def ok(self, cond, what, detail=None):
        self.count += 1
        if cond:
            print("  ok    %s" % what, flush=True)
        else:
            print("  FAIL  %s%s" % (what, "" if detail is None else "\n        %s" % (detail,)), flush=True)
            self.failures.append(what)
        return bool(cond)

    def eq(self, got, want, what):
        return self.ok(got == want, "%s (= %r)" % (what, want), "got %r" % (got,))

    def require(self, cond, what, detail=None):
        if not self.ok(cond, what, detail):
            raise Fatal(what)


CK = Checks()


def section(title):
    print("\n== [%5.1fs] %s" % (time.monotonic() - T0, title), flush=True)


# ---- data --------------------------------------------------------------------

def id_number(region6, n):
    first17 = "%s19%02d0%d1%d%03d" % (region6, 50 + n % 40, 1 + n % 9, n % 9, n)
    return first17 + ID_CHECK[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS)) % 11]


class Household:
    """Three members; orange: income 15,000 元 and a 1,000 元 bill (after
    rigid 4,666 元 a head, under the 5,200 元 line); red: income 6,000 元 and
    a 20,000 元 bill (rigid ≥ income)."""

    def __init__(self, key, county, village, grade, n, no_labour=False):
        self.key, self.county, self.village, self.grade = key, county, village, grade
        self.hid = "H%s%07d" % (county, n)
        self.case = self.hid + "-1"
        self.income = 15000 if grade == "orange" else 6000
        self.bill = 1000 if grade == "orange" else 20000
        self.members = [id_number(county, n * 3 + i) for i in range(3)]
        self.labour = ["无"] * 3 if no_labour else ["有", "有", "弱"]
        self.name = SURNAMES[n % len(SURNAMES)] + "建国"


def build_households():
    hh, n = {}, 1

    def add(key, county, grade, village=0, no_labour=False):
        nonlocal n
        hh[key] = Household(key, county, VILLAGE[county][village], grade, n, no_labour)
        n += 1
    for k in ("S1", "S3", "X"):
        add(k, A, "orange")
    for i in range(1, 21):
        add("F%02d" % i, A, "red" if i % 3 == 0 else "orange", village=i % 2)
    for k in ("P1", "P3", "P4", "G"):
        add(k, A, "orange", village=1)
    # Red (a 20,000 元 bill): approval reserves a 因病 payout for them.
    add("P5", A, "red", village=1)
    add("P2", A, "red", village=1, no_labour=True)
    add("K1", B, "orange")
    add("K2", B, "orange")
    add("Z1", C, "orange")
    return hh


def write_registry(path, households, income=None):
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["household_id", "region_code", "household_type", "exit_year", "id_number", "name",
                    "relation", "disability_grade", "chronic_illness", "labour", "phone", "annual_net_income"])
        for h in households:
            for i, idn in enumerate(h.members):
                w.writerow([h.hid, h.village, "一般农户", "", idn, h.name[:1] + "家" + "甲乙丙"[i],
                            ("户主", "配偶", "子女")[i], "0", "否", h.labour[i], "",
                            str(income if income is not None else h.income) if i == 0 else ""])


def write_medical(path, rows):
    """rows: (record_id, household, self_paid 元, date)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["record_id", "id_number", "name", "settle_date", "total_cost", "compliant_cost",
                    "reimbursed", "self_paid"])
        for rid, h, self_paid, day in rows:
            w.writerow([rid, h.members[0], h.name[:1] + "家甲", day, "%d.00" % (self_paid * 2),
                        "%d.00" % (self_paid * 2), "%d.00" % self_paid, "%d.00" % self_paid])


def decode_pb(buf):
    """{field number: value} of a protobuf message (strings and varints)."""
    out, i = {}, 0
    while i < len(buf):
        key, i = varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            out[field], i = varint(buf, i)
        elif wire == 2:
            n, i = varint(buf, i)
            out[field] = buf[i:i + n].decode("utf-8", "replace")
            i += n
        else:
            raise ValueError("wire type %d" % wire)
    return out


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


# ---- the test ------------------------------------------------------------------

class Lifecycle:
    def __init__(self, st, tmp):
        self.st = st
        self.tmp = tmp
        self.h = build_households()
        self.offset_ms = 0
        self.files = 0

    # -- helpers ------------------------------------------------------------------

    def j(self, *args):
        return json.loads(self.st.levee(*(list(args) + ["--json"])).stdout)

    def rc(self, *args):
        cp = self.st.levee(*args, check=False)
        return cp.returncode, (cp.stdout + cp.stderr).strip()

    def case(self, key_or_case):
        cid = self.h[key_or_case].case if key_or_case in self.h else key_or_case
        rows = self.st.psql("SELECT status, stage, coalesce(exit_stage, ''), coalesce(grade, ''), "
                            "coalesce(primary_risk, '') FROM hcase WHERE case_id = :'c'", {"c": cid})
        return rows[0] if rows else None

    def tasks(self, cid):
        rows = self.st.psql("SELECT task_id, kind, status, coalesce(assignee, ''), escalations, due_ms "
                            "FROM task WHERE case_id = :'c' ORDER BY created_ms, task_id", {"c": cid})
        return [{"task_id": r[0], "kind": r[1], "status": r[2], "assignee": r[3], "escalations": int(r[4]),
                 "due_ms": int(r[5])} for r in rows]

    def open_task(self, cid, kind=None):
        ts = [t for t in self.tasks(cid) if t["status"] == "open" and (kind is None or t["kind"] == kind)]
        return ts[-1] if ts else None

    def timeline(self, cid):
        return self.st.psql("SELECT action, detail, actor, role, at_ms, coalesce(policy_version, '') "
                            "FROM timeline WHERE case_id = :'c' ORDER BY seq", {"c": cid})

    def events(self, prefix):
        """Event ids notify consumed, or that wait for it in the outbox."""
        return {r[0] for r in self.st.psql(
            "SELECT msg_id FROM consumed WHERE consumer = 'notify' AND msg_id LIKE :'p' UNION "
            "SELECT msg_id FROM outbox WHERE dest = 'notify' AND msg_id LIKE :'p'", {"p": prefix + "%"})}

    def outbox_events(self):
        """{event id: decoded Event} of the events waiting for notify."""
        out = {}
        for msg_id, payload in self.st.psql("SELECT msg_id, payload FROM outbox WHERE dest = 'notify'"):
            ev = decode_pb(bytes.fromhex(payload[2:]))
            out[msg_id] = {"kind": ev.get(2, ""), "case_id": ev.get(5, ""), "assignee": ev.get(9, ""),
                           "grade": ev.get(10, ""), "region": ev.get(4, "")}
        return out

    def settle(self):
        self.st.levee("wait-idle", "--timeout", "120", timeout=150)

    def load(self, source, path, settle=True):
        r = self.j("load", source, path)
        CK.require(r["status"] == "done" and r["rejected"] == 0,
                   "%s file loaded (%d rows accepted)" % (source, r["accepted"]), r)
        if settle:
            self.settle()

    def bill(self, *rows, settle=True):
        self.files += 1
        path = os.path.join(self.tmp, "medical-%d.csv" % self.files)
        write_medical(path, rows)
        self.load("medical", path, settle)

    def verify(self, key, income=None, actor=None, *extra):
        h = self.h[key]
        t = self.open_task(h.case, "verify")
        inc = h.income if income is None else income
        return self.rc("task-result", t["task_id"], "--income", str(inc), "--members", "3",
                       "--rigid", str(h.bill), "--actor", actor or t["assignee"], *extra)

    def to_reviewing(self, key):
        """Verified in scope; a sampled re-check is answered in agreement."""
        code, out = self.verify(key)
        if code == 0 and self.case(key)[1] == "recheck":
            t = self.open_task(self.h[key].case, "recheck")
            code, out = self.rc("task-result", t["task_id"], "--income", str(self.h[key].income),
                                "--members", "3", "--rigid", str(self.h[key].bill), "--actor", t["assignee"])
        CK.require(code == 0 and self.case(key)[:2] == ("reviewing", "deliberate"),
                   "%s verified: reviewing, next deliberate" % key, out)

    def step(self, key, step, decision="pass", *extra, want=0):
        cid = self.h[key].case if key in self.h else key
        code, out = self.rc("step", cid, step, decision, *extra)
        CK.ok(code == want, "step %s %s on %s %s" % (step, decision, key, "accepted" if want == 0 else "refused"),
              out)
        return out

    def restart_dispatch(self, offset_days, kill=True):
        self.offset_ms = offset_days * DAY_MS
        if kill:
            self.st.kill("dispatch")
        else:
            self.st.stop("dispatch")
        self.st.env["LEVEE_TEST_CLOCK_OFFSET_MS"] = str(self.offset_ms)
        self.st.start("dispatch")

    def redis(self, *args):
        cp = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.st.port_base + 1)] + list(args),
                            capture_output=True, text=True, timeout=30)
        return cp.stdout.strip()

    def pg_queue(self, inv):
        rows = self.st.psql("SELECT t.task_id, coalesce(h.grade, '') FROM task t JOIN hcase h USING (case_id) "
                            "WHERE t.assignee = :'i' AND t.status = 'open' "
                            "ORDER BY lv_grade_rank(h.grade) DESC, t.task_id", {"i": inv})
        return rows

    def queue_matches(self, inv):
        q = self.j("queue", inv)
        got = [(t["task_id"], t["grade"]) for t in q["tasks"]]
        want = self.pg_queue(inv)
        ranks = [{"red": 3, "orange": 2, "yellow": 1}.get(g, 0) for _, g in got]
        same = q["source"] == "redis" and sorted(got) == sorted(want) and ranks == sorted(ranks, reverse=True)
        return same, q["source"], got, want

    # -- 1. open and screen ----------------------------------------------------------

    def open_cases(self):
        section("1. cases open as candidates; screening")
        reg = os.path.join(self.tmp, "registry.csv")
        write_registry(reg, self.h.values())
        self.load("registry", reg)
        self.bill(*(("YB%s" % h.hid, h, h.bill, "2026-09-15") for h in self.h.values()))
        self.st.wait_for(lambda: self.st.scalar("SELECT count(*) FROM hcase") == str(len(self.h)),
                         timeout=60, what="a case per household")
        rows = {r[0]: r[1:] for r in self.st.psql(
            "SELECT case_id, status, stage, grade FROM hcase")}
        bad = [(h.case, rows.get(h.case)) for h in self.h.values()
               if rows.get(h.case) != ("candidate", "screen", h.grade)]
        CK.ok(not bad, "every case opens as candidate (next: screen) with its grade", bad[:5])
        tasks = self.st.psql("SELECT case_id, kind, status, coalesce(assignee, '') FROM task")
        CK.ok(len(tasks) == len(self.h) and all(t[1:] == ("verify", "open", "") for t in tasks),
              "the 入户核查 task of every candidate is out at once (unassigned: no investigator yet)", tasks[:3])
        reds = {h.case for h in self.h.values() if h.grade == "red"}
        alerted = {e.split(":")[2] for e in self.events("ev:red_alert:")}
        CK.eq(alerted, reds, "red_alert events for exactly the red cases")

        s1, s3 = self.h["S1"], self.h["S3"]
        self.step("S1", "screen", "fail", want=1)
        CK.eq(self.case("S1")[:2], ("candidate", "screen"), "S1 still a candidate after a drop without reason")
        self.step("S1", "screen", "fail", "--note", "家庭有稳定工资收入, 明显不符合")
        CK.eq(self.case("S1")[:2], ("rejected", "closed"), "S1 screened out: rejected")
        CK.eq([t["status"] for t in self.tasks(s1.case)], ["cancelled"], "S1's 入户核查 task cancelled")
        tl = self.timeline(s1.case)
        CK.ok(tl[-1][0] == "case_rejected" and "明显不符合" in tl[-1][1] and tl[-1][3] == "town",
              "the timeline records the drop with its reason and the town's role", tl[-1])
        CK.eq(self.j("household", s1.hid)["status"], "rejected", "S1's household status rejected")
        CK.ok(self.events("ev:case_rejected:" + s1.case), "case_rejected event for S1")
        self.step("S3", "screen", "pass", "--role", "county", want=1)
        self.step("S3", "screen", "pass")
        CK.eq(self.case("S3")[:2], ("verifying", "verify"), "S3 screened in: verifying")
        CK.eq([t["status"] for t in self.tasks(s3.case)], ["open"], "S3's task still open")

    # -- 2. assignment ---------------------------------------------------------------

    def assignment(self):
        section("2. assignment by region and load, red first")
        self.st.psql("INSERT INTO investigator (investigator_id, name, region_prefix) VALUES "
                     "('inv-a', '核查员甲', :'a'), ('inv-b', '核查员乙', :'a'), ('inv-c', '核查员丙', :'b'), "
                     "('inv-d', '核查员丁', :'b'), ('inv-solo', '核查员戊', :'c')", {"a": A, "b": B, "c": C})
        self.st.wait_for(lambda: self.st.scalar("SELECT count(*) FROM task WHERE status = 'open' "
                                                "AND assignee IS NULL") == "0", timeout=30, what="assigned")
        load = dict(self.st.psql("SELECT assignee, count(*) FROM task WHERE status = 'open' GROUP BY 1"))
        a, b = int(load.get("inv-a", 0)), int(load.get("inv-b", 0))
        n_a = int(self.st.scalar("SELECT count(*) FROM task WHERE status = 'open' AND county = :'a'", {"a": A}))
        CK.ok(a + b == n_a and abs(a - b) <= 1,
              "county %s's %d tasks shared by load: inv-a %d, inv-b %d" % (A, n_a, a, b))
        CK.ok(int(load.get("inv-c", 0)) == 1 and int(load.get("inv-d", 0)) == 1,
              "county %s's two tasks: one each" % B, load)
        CK.eq(load.get("inv-solo"), "1", "county %s's task to its only investigator" % C)
        rows = self.st.psql("SELECT h.grade FROM timeline t JOIN hcase h USING (case_id) "
                            "WHERE t.action = 'task_assigned' ORDER BY t.seq")
        grades = [r[0] for r in rows]
        first_orange = grades.index("orange") if "orange" in grades else len(grades)
        CK.ok(grades and "red" not in grades[first_orange:], "every red task was assigned before any orange one",
              grades)
        for inv in ("inv-a", "inv-b"):
            ts = self.j("tasks", "--assignee", inv, "--status", "open")
            order = [t["grade"] for t in ts]
            CK.ok(order == sorted(order, key=lambda g: g != "red"), "levee tasks --assignee %s: red first" % inv,
                  order)
            same, source, got, want = self.queue_matches(inv)
            CK.ok(same, "levee queue %s: Redis holds exactly the open tasks, red lane first" % inv,
                  {"source": source, "got": got, "want": want})
        try:
            self.st.wait_for(lambda: self.events("ev:task_assigned:" + self.h["F01"].case + ":V1:1"), timeout=20)
            CK.ok(True, "a task_assigned event per assignment (F01's)")
        except TimeoutError as e:
            CK.ok(False, "a task_assigned event per assignment (F01's)", e)

    # -- 3. verification and re-check --------------------------------------------------

    def verification(self):
        section("3. exclusion, 20 verified, 2 re-checked")
        code, out = self.verify("X", None, None, "--excluded", "名下有公司 (市场监管比对)")
        CK.eq(code, 0, "X's result with an exclusion finding accepted")
        CK.eq(self.case("X")[:2], ("rejected", "closed"), "X rejected")
        tl = self.timeline(self.h["X"].case)
        CK.ok(tl[-1][0] == "case_rejected" and "名下有公司" in tl[-1][1], "the exclusion reason is in the file",
              tl[-1])
        CK.eq(self.st.scalar("SELECT count(*) FROM recheck_stats WHERE county = :'a'", {"a": A}), "0",
              "an excluded case is not a verified case for sampling")

        verifier = {}
        for i in range(1, 21):
            key = "F%02d" % i
            t = self.open_task(self.h[key].case, "verify")
            verifier[key] = t["assignee"]
            extra = ("--risk", "因残") if key == "F01" else ()
            code, out = self.verify(key, None, None, *extra)
            CK.require(code == 0, "F%02d verified" % i, out)
        CK.eq(self.case("F01")[4], "因残", "the verifier's primary risk factor overrides the computed 因病")
        stats = self.j("recheck-stats", "--county", A)
        CK.eq([(s["verified"], s["sampled"]) for s in stats], [(20, 2)], "recheck-stats: 20 verified, 2 sampled")
        sampled = [k for k in sorted(verifier) if self.case(k)[1] == "recheck"]
        CK.require(len(sampled) == 2, "exactly two F cases wait for a re-check", sampled)
        others = [k for k in verifier if k not in sampled and self.case(k)[:2] != ("reviewing", "deliberate")]
        CK.ok(not others, "the 18 others go on to 村级评议", others)
        for k in sampled:
            t = self.open_task(self.h[k].case, "recheck")
            CK.ok(t and t["assignee"] and t["assignee"] != verifier[k],
                  "%s's re-check goes to %s, not the verifier %s" % (k, t and t["assignee"], verifier[k]))
        rd, ra = sampled
        t = self.open_task(self.h[rd].case, "recheck")
        code, out = self.rc("task-result", t["task_id"], "--income", "15000", "--members", "3", "--rigid", "1000",
                            "--actor", verifier[rd])
        CK.eq(code, 1, "a re-check by the verifier himself is refused")
        inc = self.h[rd].income * 120 // 100
        code, out = self.rc("task-result", t["task_id"], "--income", str(inc), "--members", "3",
                            "--rigid", str(self.h[rd].bill), "--actor", t["assignee"])
        CK.eq(code, 0, "re-check of %s: income +20%%" % rd)
        CK.eq(self.case(rd)[:2], ("verifying", "verify"), "beyond the 10%% tolerance: %s back to verifying" % rd)
        nt = self.open_task(self.h[rd].case, "verify")
        CK.ok(nt and nt["task_id"] == self.h[rd].case + "-V3" and nt["assignee"],
              "a new 入户核查 task %s, assigned" % (nt and nt["task_id"]))
        CK.ok(any(r[0] == "recheck_disagreed" for r in self.timeline(self.h[rd].case)),
              "timeline: recheck_disagreed")
        t = self.open_task(self.h[ra].case, "recheck")
        inc = self.h[ra].income * 103 // 100
        code, out = self.rc("task-result", t["task_id"], "--income", str(inc), "--members", "3",
                            "--rigid", str(self.h[ra].bill), "--actor", t["assignee"])
        CK.eq((code, self.case(ra)[:2]), (0, ("reviewing", "deliberate")),
              "re-check of %s within tolerance (+3%%): on to 村级评议" % ra)
        stats = self.j("recheck-stats", "--county", A)[0]
        CK.eq((stats["verified"], stats["sampled"], stats["agreed"], stats["sent_back"], stats["pending"]),
              (20, 2, 1, 1, 0), "recheck-stats %s: verified, sampled, agreed, sent back, pending" % A)
        code, out = self.verify("K1")
        CK.eq(code, 0, "K1 (county %s) verified" % B)
        allstats = {s["county"]: s for s in self.j("recheck-stats")}
        CK.ok(allstats.get(B, {}).get("verified") == 1 and allstats[A]["verified"] == 20,
              "re-check statistics are kept per county", allstats)

    # -- 4. review ---------------------------------------------------------------------

    def review(self):
        section("4. 评议, 公示, objection")
        for k in ("P1", "P2", "P3", "P4", "P5"):
            self.to_reviewing(k)
        self.step("P3", "deliberate", "fail", want=1)
        for k in ("P1", "P2", "P3", "P4", "P5"):
            self.step(k, "deliberate")
            self.step(k, "publicize")
        CK.ok(all(self.case(k)[0] == "publicizing" for k in ("P1", "P2", "P3", "P4", "P5")), "five cases in 公示")
        self.step("P1", "town_review", want=1)
        self.step("P1", "object", "pass", "--note", "村民反映其子女在外务工收入较高")
        CK.eq(self.case("P1")[:2], ("verifying", "verify"), "an objection reopens P1's verification")
        t = self.open_task(self.h["P1"].case, "verify")
        CK.ok(t and t["assignee"], "a new 入户核查 task for P1, assigned", t)

    # -- 5. restart: timers ----------------------------------------------------------

    def restart_timers(self):
        section("5. kill -9 of dispatch during 公示 and with open tasks; six days later")
        g = self.h["G"]
        before = {k: self.open_task(self.h[k].case) for k in ("G", "Z1")}
        self.st.stop("notify")  # events stay in the outbox where this test reads them
        self.restart_dispatch(6, kill=True)
        try:
            self.st.wait_for(lambda: all(self.case(k)[:2] == ("reviewing", "town_review")
                                         for k in ("P2", "P3", "P4", "P5")), timeout=60, what="公示 end")
            CK.ok(True, "after the restart the four 公示 periods end: next 乡镇审核")
        except TimeoutError as e:
            CK.ok(False, "公示 timers fire after the restart", e)
        CK.ok(any(r[0] == "publicity_ended" for r in self.timeline(self.h["P2"].case)), "timeline: publicity_ended")

        def escalated():
            t = self.open_task(g.case)
            return t if t and t["escalations"] == 1 else None
        try:
            t = self.st.wait_for(escalated, timeout=60, what="G's overdue task escalated")
        except TimeoutError as e:
            CK.ok(False, "G's overdue task escalated", e)
            return
        old = before["G"]["assignee"]
        now = (time.time() * 1000) + self.offset_ms
        CK.ok(t["assignee"] not in ("", old) and t["assignee"] in ("inv-a", "inv-b"),
              "G's overdue task reassigned from %s to %s" % (old, t["assignee"]))
        CK.ok(now + 4 * DAY_MS < t["due_ms"] <= now + 5 * DAY_MS + 60000,
              "with a new due time 5 days on (dispatch's clock)", (t["due_ms"] - now) / DAY_MS)
        actions = [r[0] for r in self.timeline(g.case)]
        CK.ok("task_overdue" in actions and "task_reassigned" in actions, "timeline: task_overdue, task_reassigned",
              actions)
        evs = self.outbox_events()
        ov = evs.get("ev:task_overdue:%s:V1:1" % g.case)
        CK.eq(ov and (ov["kind"], ov["assignee"]), ("task_overdue", old),
              "Event task_overdue names the late investigator (for the county and him)")
        asg = evs.get("ev:task_assigned:%s:V1:2" % g.case)
        CK.eq(asg and (asg["kind"], asg["assignee"]), ("task_assigned", t["assignee"]),
              "Event task_assigned names the new investigator")
        z = self.h["Z1"]
        try:
            self.st.wait_for(lambda: self.open_task(z.case)["escalations"] == 1, timeout=30, what="Z1 escalated")
        except TimeoutError as e:
            CK.ok(False, "Z1's overdue task escalated", e)
        time.sleep(2.5)
        zt = self.open_task(z.case)
        CK.eq((zt["assignee"], zt["escalations"]), ("inv-solo", 1),
              "Z1: nobody else covers county %s, the task stays and is escalated once only" % C)
        zev = evs.get("ev:task_overdue:%s:V1:1" % z.case) or self.outbox_events().get("ev:task_overdue:%s:V1:1"
                                                                                      % z.case)
        CK.eq(zev and zev["assignee"], "inv-solo", "Z1's task_overdue names inv-solo")
        self.st.start("notify")
        for inv in ("inv-a", "inv-b"):
            try:
                self.st.wait_for(lambda: self.queue_matches(inv)[0], timeout=20, what="queue %s" % inv)
                CK.ok(True, "queue %s in Redis follows the reassignments" % inv)
            except TimeoutError:
                CK.ok(False, "queue %s in Redis follows the reassignments" % inv, self.queue_matches(inv)[1:])

    # -- 6. rejection and approval ---------------------------------------------------

    def decisions(self):
        section("6. 审核 and 审定: rejection with a reason, approval")
        self.step("P3", "town_review", "fail", want=1)
        self.step("P3", "town_review", "fail", "--note", "家庭实际收入高于监测线")
        CK.eq(self.case("P3")[:2], ("rejected", "closed"), "P3 rejected at 乡镇审核")
        self.step("P4", "town_review")
        self.step("P4", "county_approve", "fail", "--note", "经县级审定不符合纳入条件")
        CK.eq(self.case("P4")[:2], ("rejected", "closed"), "P4 rejected at 县级审定")
        CK.ok("经县级审定不符合纳入条件" in self.timeline(self.h["P4"].case)[-1][1], "with its reason in the file")
        for k in ("P2", "P5"):
            self.step(k, "town_review")
            self.step(k, "county_approve")
            CK.eq(self.case(k)[:2], ("monitoring", "assist"), "%s approved: monitoring" % k)
            CK.ok(self.events("ev:case_approved:" + self.h[k].case), "case_approved event for %s" % k)
        self.settle()
        pay = self.st.psql("SELECT payout_id, status FROM payout WHERE case_id = :'c'", {"c": self.h["P5"].case})
        CK.ok(len(pay) == 1 and pay[0][1] == "pending", "the payout is requested on approval (reserved)", pay)
        self.payouts = {k: r[0] for k in ("P2", "P5") for r in
                        self.st.psql("SELECT payout_id FROM payout WHERE case_id = :'c'", {"c": self.h[k].case})}

    # -- 7. Redis wiped ---------------------------------------------------------------

    def redis_wipe(self):
        section("7. Redis wiped: the queues are rebuilt from Postgres")
        CK.eq(self.redis("FLUSHALL"), "OK", "FLUSHALL while dispatch runs")
        for inv in ("inv-a", "inv-b"):
            try:
                self.st.wait_for(lambda: self.queue_matches(inv)[0], timeout=30, what="rebuilt")
                CK.ok(True, "queue %s rebuilt" % inv)
            except TimeoutError:
                CK.ok(False, "queue %s rebuilt" % inv, self.queue_matches(inv)[1:])
        self.st.stop("dispatch")
        self.redis("FLUSHALL")
        self.st.start("dispatch")
        try:
            self.st.wait_for(lambda: all(self.queue_matches(i)[0] for i in ("inv-a", "inv-b", "inv-c", "inv-solo")),
                             timeout=30, what="rebuilt on start")
            CK.ok(True, "wiped while dispatch was down: every queue rebuilt on start")
        except TimeoutError:
            CK.ok(False, "queues rebuilt on start", [self.queue_matches(i)[1:] for i in ("inv-a", "inv-b")])

    # -- 8. grade change ---------------------------------------------------------------

    def grade_change(self):
        section("8. a new bill turns G red")
        g = self.h["G"]
        t = self.open_task(g.case)
        self.st.stop("notify")
        self.bill(("YB%s-2" % g.hid, g, 20000, "2026-10-02"), settle=False)  # notify is stopped
        try:
            self.st.wait_for(lambda: self.case("G")[3] == "red", timeout=30, what="G red")
        except TimeoutError as e:
            CK.ok(False, "G's case turns red", e)
        CK.eq(self.case("G")[:4], ("candidate", "screen", "", "red"), "G's open case now red")
        CK.ok(any(r[0] == "grade_changed" and "红色报警" in r[1] for r in self.timeline(g.case)),
              "timeline: grade_changed to 红色报警")
        reds = [e for e in self.outbox_events().values() if e["kind"] == "red_alert" and e["case_id"] == g.case]
        CK.ok(reds and reds[0]["grade"] == "red", "red_alert Event (grade red) for G", reds)
        self.st.start("notify")
        inv = t["assignee"]

        def ahead_of_orange(rows):
            ids = [r["task_id"] for r in rows]
            grades = [r["grade"] for r in rows]
            return t["task_id"] in ids and "orange" not in grades[:ids.index(t["task_id"])]
        try:
            self.st.wait_for(lambda: ahead_of_orange(self.j("queue", inv)["tasks"]), timeout=20, what="G red lane")
            CK.ok(True, "G's task moved to the red lane of %s's queue, ahead of every orange task" % inv)
        except TimeoutError:
            CK.ok(False, "G's task in the red lane of %s's queue" % inv, self.j("queue", inv))
        ts = self.j("tasks", "--assignee", inv, "--status", "open")
        CK.ok(ahead_of_orange(ts), "levee tasks --assignee %s lists G's task before the orange ones" % inv, ts)
        CK.ok(self.queue_matches(inv)[0], "and the whole queue still matches Postgres")

    # -- 8b. declared amounts ------------------------------------------------------------

    def declared(self):
        section("8b. declared amounts count once verification accepts them")
        # Income 15,000 元 for 3 (5,000 元 a head, under the 5,200 元 line):
        # in scope; each declares 20,000 元 of 大额刚性支出.
        d1 = self.h["D1"] = Household("D1", A, VILLAGE[A][0], "orange", 200)
        d2 = self.h["D2"] = Household("D2", A, VILLAGE[A][0], "orange", 201)
        reg = os.path.join(self.tmp, "registry-d.csv")
        write_registry(reg, [d1, d2])
        self.load("registry", reg)
        path = os.path.join(self.tmp, "declaration-d.csv")
        with open(path, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["record_id", "id_number", "name", "event_date", "reason", "amount", "description"])
            for h in (d1, d2):
                w.writerow(["SB" + h.hid, h.members[0], h.name[:1] + "家甲", "2026-10-05", "大额刚性支出",
                            "20000.00", "住房维修欠款"])
        self.load("declaration", path)
        self.st.wait_for(lambda: all(self.case(h.case) for h in (d1, d2)), timeout=30, what="D1, D2 cases")

        def state(h):
            return self.st.psql("SELECT rigid_fen, income_source, grade FROM household_state "
                                "WHERE household_id = :'h'", {"h": h.hid})[0]
        CK.eq([state(h)[0] for h in (d1, d2)], ["0", "0"],
              "before verification the declared 20,000 元 is not rigid expenditure")
        for key, extra in (("D1", ()), ("D2", ("--refuse-declared",))):
            t = self.st.wait_for(lambda: (self.open_task(self.h[key].case, "verify") or {}).get("assignee"),
                                 timeout=30, what="%s's task assigned" % key)
            code, out = self.verify(key, None, t, *extra)
            CK.eq(code, 0, "%s verified%s" % (key, " (declared amount refused)" if extra else ""))
        try:
            self.st.wait_for(lambda: [state(h)[:2] for h in (d1, d2)] ==
                             [("2000000", "verification"), ("0", "verification")],
                             timeout=30, what="D1 and D2 judged again")
            CK.ok(True, "after verification matching judges both again: D1's rigid is the accepted "
                        "20,000 元, D2's stays 0 (refused)")
        except TimeoutError as ex:
            CK.ok(False, "verification accepted D1's declared amount and not D2's", ex)
        CK.eq(state(d1)[2], "red", "D1: rigid 20,000 元 ≥ income 15,000 元 → red")
        CK.ok(any("申报金额不予认定" in r[1] for r in self.timeline(d2.case)),
              "D2's timeline says the declared amount was not accepted")

    # -- 9. monitoring and elimination --------------------------------------------------

    def elimination(self):
        section("9. measures, 风险消除, a new episode")
        e, n = self.h["P5"], self.h["P2"]
        out = self.step("P5", "eliminate", want=1)
        CK.ok(all(w in out for w in ("未满 6 个月", "帮扶措施 0 项", "低于监测线", "预留未发放")),
              "refused with every rule that does not hold: months, measures, income, pending payout", out)
        self.step("G", "eliminate", want=1)
        code, out = self.rc("measure", e.case, "--kind", "医疗帮扶", "--note", "落实大病倾斜救助")
        CK.eq(code, 0, "a planned measure recorded")
        code, _ = self.rc("measure", e.case, "--kind", "employment", "--note", "推荐到县城务工",
                          "--delivered", time.strftime("%Y-%m-%d", time.gmtime()))
        CK.eq(code, 0, "a delivered measure recorded")
        code, _ = self.rc("measure-delivered", e.case + "-M1")
        CK.eq(code, 0, "the planned measure delivered")
        CK.eq(self.rc("measure", e.case, "--kind", "魔法", "--note", "x")[0], 1, "an unknown kind refused")
        CK.eq(self.rc("measure", self.h["G"].case, "--kind", "medical", "--note", "x")[0], 1,
              "a measure for a case not monitored refused")
        ms = self.j("measures", "--case", e.case)
        CK.eq([(m["measure_id"], m["kind"], m["delivered_at"] is not None) for m in ms],
              [(e.case + "-M1", "medical", True), (e.case + "-M2", "employment", True)], "levee measures")
        CK.eq(self.rc("measure", n.case, "--kind", "social", "--note", "纳入低保", "--delivered",
                      time.strftime("%Y-%m-%d", time.gmtime()))[0], 0, "the no-labour household's measure")
        # The payouts paid. The income stays as the 入户核查 found it (below the
        # line): matching trusts a verification result over the registry, so a
        # new registry income changes nothing; the 回访 is what measures it.
        write_registry(os.path.join(self.tmp, "registry-2.csv"), [e, n], income=100000)
        self.load("registry", os.path.join(self.tmp, "registry-2.csv"))
        for k in ("P2", "P5"):
            CK.eq(self.rc("pay", self.payouts[k])[0], 0, "payout of %s paid" % k)
        self.settle()
        CK.eq(self.st.scalar("SELECT count(*) FROM household_state WHERE household_id IN (:'e', :'n') "
                             "AND in_scope AND income_source = 'verification'", {"e": e.hid, "n": n.hid}), "2",
              "a registry income does not override the verified one")
        out = self.step("P5", "eliminate", want=1)
        CK.ok("未满 6 个月" in out and "低于监测线" in out and "预留未发放" not in out,
              "now the months and the (verified) income are missing, no longer the payout", out)

        self.restart_dispatch(6 + 200, kill=False)

        def revisit():
            return self.open_task(e.case, "revisit")
        try:
            rt = self.st.wait_for(revisit, timeout=60, what="a 回访 for P5")
        except TimeoutError as ex:
            CK.ok(False, "the sweep proposes 风险消除 for P5", ex)
            return
        CK.ok(rt["assignee"] in ("inv-a", "inv-b"), "200 days later a 回访 task %s goes to %s"
              % (rt["task_id"], rt["assignee"]))
        CK.eq(self.case("P5")[2], "revisit", "P5: exit stage revisit")
        CK.ok(any(r[0] == "elimination_proposed" for r in self.timeline(e.case)), "timeline: elimination_proposed")
        time.sleep(6)  # one more sweep
        CK.ok(not self.open_task(n.case, "revisit") and self.case("P2")[2] == "",
              "P2 (nobody can work) is never proposed")
        out = self.step("P2", "eliminate", want=1)
        CK.ok("无劳动能力" in out and "未满" not in out, "eliminate for P2 refused: no labour, stays monitored", out)
        flags = {c["case_id"]: c["no_labour"] for c in self.j("cases", "--status", "monitoring")}
        CK.eq((flags.get(n.case), flags.get(e.case)), (True, False), "levee cases flags the no-labour household")
        out = self.step("P5", "eliminate", want=1)
        CK.ok("回访" in out, "eliminate before the 回访 result refused", out)
        code, out = self.rc("task-result", rt["task_id"], "--income", "100000", "--members", "3", "--rigid",
                            str(e.bill), "--actor", rt["assignee"], "--risk-remains", "--findings", "饮水不安全")
        CK.eq((code, self.case("P5")[2]), (0, ""), "a 回访 finding the risk remains: no 风险消除, still monitored")
        CK.ok(self.timeline(e.case)[-1][0] == "revisit_not_confirmed", "timeline: revisit_not_confirmed")
        time.sleep(6)  # one more sweep: nothing new, no new 回访
        CK.eq(len([t for t in self.tasks(e.case) if t["kind"] == "revisit"]), 1,
              "no second 回访 until something changes")
        out = self.step("P5", "eliminate", want=1)
        rt = self.open_task(e.case, "revisit")
        CK.ok(rt and rt["task_id"] in out and self.case("P5")[2] == "revisit",
              "eliminate asked by the county: refused, but a 回访 goes out (%s)" % (rt and rt["task_id"]), out)
        code, out = self.rc("task-result", rt["task_id"], "--income", "100000", "--members", "3", "--rigid",
                            str(e.bill), "--actor", rt["assignee"], "--risk-remains")
        CK.eq((code, self.case("P5")[2]), (0, ""), "that 回访 too finds the risk remaining")
        self.rc("measure", e.case, "--kind", "other", "--note", "安装自来水", "--delivered",
                time.strftime("%Y-%m-%d", time.gmtime()))
        try:
            rt = self.st.wait_for(revisit, timeout=30, what="another 回访")
            CK.ok(True, "a new measure delivered: the sweep sends another 回访 %s" % rt["task_id"])
        except TimeoutError as ex:
            CK.ok(False, "a new measure brings another 回访", ex)
            return
        code, out = self.rc("task-result", rt["task_id"], "--income", "100000", "--members", "3", "--rigid",
                            str(e.bill), "--actor", rt["assignee"], "--findings", "两不愁三保障及饮水安全均有保障")
        CK.eq((code, self.case("P5")[2]), (0, "confirmed"), "the 回访 confirms")
        self.step("P5", "eliminate")
        CK.eq(self.case("P5")[:3], ("monitoring", "assist", "deliberate"), "风险消除: next 村级评议")
        self.step("P5", "deliberate")
        self.step("P5", "publicize")
        CK.eq(self.case("P5")[2], "publicizing", "风险消除 公示 running")
        self.step("P5", "town_review", want=1)
        self.restart_dispatch(6 + 200 + 6, kill=True)
        try:
            self.st.wait_for(lambda: self.case("P5")[2] == "town_review", timeout=60, what="exit 公示 end")
            CK.ok(True, "the 风险消除 公示 ends after a restart")
        except TimeoutError as ex:
            CK.ok(False, "the 风险消除 公示 ends", ex)
        self.step("P5", "town_review")
        self.step("P5", "county_approve")
        CK.eq(self.case("P5")[:2], ("eliminated", "closed"), "P5 eliminated")
        self.settle()
        CK.ok(self.events("ev:case_eliminated:" + e.case), "case_eliminated event")
        hh = self.j("household", e.hid)
        CK.eq(hh["status"], "eliminated", "household status eliminated")
        bad = [r for r in hh["timeline"] if not (r["actor"] and r["role"] and r["action"] and r["time"])]
        CK.ok(not bad and all(r[5] for r in self.timeline(e.case)),
              "every timeline row has who, role, when, what and the policy version", bad[:3])

        self.bill(("YB%s-3" % e.hid, e, 150000, "2026-11-01"))
        try:
            self.st.wait_for(lambda: self.case(e.hid + "-2"), timeout=30, what="episode 2")
        except TimeoutError as ex:
            CK.ok(False, "a new shock opens episode 2", ex)
            return
        CK.eq(self.case(e.hid + "-2")[:2], ("candidate", "screen"), "a new shock after elimination: case %s-2"
              % e.hid)
        CK.ok("第 2 次" in self.timeline(e.hid + "-2")[0][1], "the file says it is the second episode")
        CK.ok(self.open_task(e.hid + "-2", "verify"), "with its 入户核查 task")
        CK.eq(self.j("household", e.hid)["status"], "candidate", "household status candidate again")


def main():
    tmp = tempfile.mkdtemp(prefix="levee-lifecycle-")
    try:
        with Stack(free_port_base()) as st:
            print("stack up in %.1f s (port base %d)" % (time.monotonic() - T0, st.port_base), flush=True)
            t = Lifecycle(st, tmp)
            try:
                t.open_cases()
                t.assignment()
                t.verification()
                t.review()
                t.restart_timers()
                t.decisions()
                t.redis_wipe()
                t.grade_change()
                t.declared()
                t.elimination()
            except (Fatal, StackError, TimeoutError, KeyError, TypeError, IndexError, ValueError) as e:
                CK.failures.append("aborted: %s" % e)
                print("\nABORTED: %s" % e)
                traceback.print_exc()
            if CK.failures:
                for svc in ("matching", "dispatch", "notify"):
                    print("\n-- levee-%s log (last lines)\n%s" % (svc, "\n".join(st.log(svc).splitlines()[-20:])))
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n%d checks, %d failed, %.1f s" % (CK.count, len(CK.failures), time.monotonic() - T0))
    for f in CK.failures:
        print("  failed: %s" % f)
    print("FAIL" if CK.failures else "PASS")
    return 1 if CK.failures else 0


if __name__ == "__main__":
    sys.exit(main())
