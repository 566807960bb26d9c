#!/usr/bin/env python3
"""Shadow run of a draft policy on a private stack (standard library only).

    python3 tests/integration/test_shadow.py

1. gen-sample writes a small county (registry + medical); both are loaded and
   the pipeline settles; then the services are stopped, so that nothing but
   the shadow run could touch the database.
2. A draft policy adds a version from 2025-01-01 that raises the monitoring
   line from 5,200 to 6,000 元. `levee shadow DRAFT --at 2025-06-01 --json`
   must report exactly the households that an independent computation here,
   over the same stored facts (household_state + household), finds entering
   or leaving the scope or changing category or grade, with the before and
   after verdicts, and explanations that name the rule and the values.
3. The same with --region (one town), with --csv and as text; --at before the
   draft's new version reports nothing.
4. A draft with a broken rule is refused with the file's line and key path.
5. Every table's contents are the same before and after.
6. The real switch: the services start again on a copy of the shipped
   policy, the draft is written over it and SIGHUP sent. Matching judges
   every household again by the draft's version, and the households whose
   scope, category or grade changed are exactly those the shadow run
   reported, with the verdicts it reported; the households that entered
   scope get an alert.
7. House damage: a disaster leaves three households 轻微, 严重 and 无 damaged;
   matching makes the 严重 one red (the shipped house_damage_red) and stores
   each level; a draft that adds 轻微 reports exactly the 轻微 household
   turning red, one that keeps only 倒塌 exactly the 严重 one leaving red.

Checks keep going after a failure so that one report shows everything; the
exit status is 1 when any check failed.
"""

import csv
import io
import json
import os
import re
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from lvpolicy import check, eq, finish, gen_sample, line_of, verdict, write_policy  # noqa: E402
from lvstack import SERVICES, Stack, free_port_base  # noqa: E402

COUNTY = "620521"
SEED = 4242
HOUSEHOLDS = 300
MEDICAL = 3000
LINE_NOW, LINE_DRAFT = 520000, 600000   # fen per person per year

def change_kinds(before, after):
    """The change tags of the shadow report for one household."""
    if not before[0] and after[0]:
        return ["enter"]
    if before[0] and not after[0]:
        return ["leave"]
    kinds = []
    if before[0] and before[1] != after[1]:
        kinds.append("category")
    if before[2] != after[2]:
        kinds.append("grade")
    return kinds


def expected_changes(facts, prefix="", draft_line=LINE_DRAFT):
    out = {}
    for hid, (region, htype, income, members, rigid) in facts.items():
        if not region.startswith(prefix) or members < 1:
            continue
        exited = htype == "脱贫户"
        before = verdict(income, members, rigid, exited, LINE_NOW)
        after = verdict(income, members, rigid, exited, draft_line)
        kinds = change_kinds(before, after)
        if kinds:
            out[hid] = (kinds, before, after)
    return out


# ---- helpers -------------------------------------------------------------------

def stored_facts(st):
    rows = st.psql("SELECT s.household_id, h.region_code, h.household_type, s.income_fen, "
                   "s.members, s.rigid_fen FROM household_state s "
                   "JOIN household h ON h.household_id = s.household_id")
    return {r[0]: (r[1], r[2], int(r[3]), int(r[4]), int(r[5])) for r in rows}


def fingerprint(st):
    """Every public table's row count and an md5 of its rows in a fixed order."""
    tables = [r[0] for r in st.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                    "ORDER BY tablename")]
    out = {}
    for t in tables:
        row = st.psql('SELECT count(*), coalesce(md5(string_agg(x::text, \'|\' ORDER BY x::text)), \'\') '
                      'FROM :"t" x', {"t": t})[0]
        out[t] = row
    return out


def raised_line(v0, line=LINE_DRAFT):
    v1 = json.loads(json.dumps(v0))
    v1["version"] = "2025.draft"
    v1["effective_from"] = "2025-01-01"
    v1["income_line_fen"] = line
    return [v0, v1]


def reported(doc):
    """hid -> (kinds, before, after) from `levee shadow --json`."""
    out = {}
    for c in doc["changes"]:
        cur, dr = c["current"], c["draft"]
        out[c["household_id"]] = (c["change"], (cur["in_scope"], cur["category"], cur["grade"]),
                                  (dr["in_scope"], dr["category"], dr["grade"]))
    return out


def diff_summary(got, want):
    only_got = sorted(set(got) - set(want))[:5]
    only_want = sorted(set(want) - set(got))[:5]
    wrong = [(h, got[h], want[h]) for h in sorted(set(got) & set(want)) if got[h] != want[h]][:5]
    return "only reported %s; only expected %s; differ %s" % (only_got, only_want, wrong)


# ---- the test ------------------------------------------------------------------

def run(st, tmp):
    print("\n== 1. sample loaded, services stopped")
    out = os.path.join(tmp, "sample")
    gen_sample(out, HOUSEHOLDS, MEDICAL, SEED, COUNTY)
    for feed in ("registry", "medical"):
        doc = json.loads(st.levee("load", feed, os.path.join(out, feed + ".csv"), "--json",
                                  timeout=300).stdout)
        check(doc["status"] == "done", "%s loaded (%s accepted)" % (feed, doc.get("accepted")))
    st.levee("wait-idle", "--timeout", "300", timeout=320)
    st.wait_for(lambda: int(st.scalar("SELECT count(*) FROM household_state")) == HOUSEHOLDS,
                timeout=120, what="every household evaluated")
    for svc in SERVICES:
        st.stop(svc)
    facts = stored_facts(st)
    eq(len(facts), HOUSEHOLDS, "stored facts for every household")
    before = fingerprint(st)

    print("\n== 2. a draft that raises the line to 6,000 元, in effect 2025-06-01")
    draft = os.path.join(tmp, "draft.json")
    write_policy(draft, raised_line)
    want = expected_changes(facts)
    kinds = {k: sum(1 for v in want.values() if k in v[0]) for k in ("enter", "leave", "category", "grade")}
    print("  expected: %s" % kinds)
    check(kinds["enter"] > 5 and kinds["grade"] > 5, "the sample has households that change")
    doc = json.loads(st.levee("shadow", draft, "--at", "2025-06-01", "--json").stdout)
    got = reported(doc)
    check(got == want, "reported entries, leaves and changes = the independent computation (%d)"
          % len(want), diff_summary(got, want))
    eq(doc["summary"], kinds, "summary counts")
    eq((doc["households"], doc["not_judged"]), (HOUSEHOLDS, 0), "households judged")
    eq((doc["current"]["version"], doc["draft"]["version"], doc["at"]),
       ("2024.1", "2025.draft", "2025-06-01"), "versions compared and the date")
    eq([c["household_id"] for c in doc["changes"]], sorted(got), "changes sorted by household")

    # The explanation names the rule and the values it saw.
    enter = next(c for c in doc["changes"] if c["change"] == ["enter"])
    region, htype, inc, mem, rig = facts[enter["household_id"]]
    check("scope: income - rigid < line * members: %d - %d < %d * %d → true"
          % (inc, rig, LINE_DRAFT, mem) in enter["draft"]["explain"],
          "an entry's draft explanation shows the scope rule with its values",
          enter["draft"]["explain"])
    check("%d - %d < %d * %d → false" % (inc, rig, LINE_NOW, mem) in enter["current"]["explain"],
          "... and the current explanation the same rule under the current line",
          enter["current"]["explain"])
    red = [c for c in doc["changes"] if c["draft"]["grade"] == "red"]
    check(red and all("< 400000 * " in c["draft"]["explain"] for c in red),
          "red draft verdicts show the draft's poverty line (6,000 x 2/3 = 4,000 元)",
          red[0]["draft"]["explain"] if red else "no red verdict")

    print("\n== 3. region, CSV, text, and a date before the draft's version")
    town = COUNTY + "101"
    docr = json.loads(st.levee("shadow", draft, "--at", "2025-06-01", "--region", town, "--json").stdout)
    want_r = expected_changes(facts, town)
    got_r = reported(docr)
    check(got_r == want_r and len(want_r) > 0, "--region %s: only that town's changes (%d)" % (town, len(want_r)),
          diff_summary(got_r, want_r))
    eq(docr["households"], sum(1 for v in facts.values() if v[0].startswith(town)),
       "--region: households of the town judged")

    text = st.levee("shadow", draft, "--at", "2025-06-01", "--csv").stdout
    check(text.startswith("\ufeff"), "CSV starts with a BOM for Excel")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    header, rows = rows[0], rows[1:]
    col = {name.split(" ")[-1]: i for i, name in enumerate(header)}
    got_csv = {r[col["household_id"]]: r[col["change"]].split("+") for r in rows}
    eq(got_csv, {h: v[0] for h, v in want.items()}, "CSV: the same households and changes")
    eq(sorted({r[col["grade_draft"]] for r in rows if r[col["change"]] == "enter"} - {"red", "orange"}),
       [], "CSV: every entry has a red or orange draft grade")

    text = st.levee("shadow", draft, "--at", "2025-06-01").stdout
    check(re.search(r"新纳入 enter scope\s+%d\n" % kinds["enter"], text) is not None,
          "text: the summary names the entries", text[:600])
    check(enter["household_id"] in text and "草案 draft:   scope:" in text,
          "text: each change with both explanations")

    doc0 = json.loads(st.levee("shadow", draft, "--at", "2024-06-01", "--json").stdout)
    eq((doc0["draft"]["version"], doc0["changes"]), ("2024.1", []),
       "--at 2024-06-01: the draft's version then is the current one, nothing changes")

    lowered = os.path.join(tmp, "lowered.json")
    write_policy(lowered, lambda v0: raised_line(v0, 480000))
    want_l = expected_changes(facts, draft_line=480000)
    got_l = reported(json.loads(st.levee("shadow", lowered, "--at", "2025-06-01", "--json").stdout))
    check(got_l == want_l and any(v[0] == ["leave"] for v in want_l.values()),
          "a draft that lowers the line to 4,800 元: the households that leave (%d changes)"
          % len(want_l), diff_summary(got_l, want_l))

    print("\n== 4. a broken draft is refused with line and key path")
    bad = os.path.join(tmp, "bad.json")

    def broken(v0):
        vs = raised_line(v0)
        vs[1]["rules"]["scope"][0]["when"] = "incme - rigid < line * members"
        return vs
    write_policy(bad, broken)
    cp = st.levee("shadow", bad, check=False)
    line = line_of(bad, "incme")
    eq(cp.returncode, 1, "a broken draft exits 1")
    check("line %d, at versions[1].rules.scope[0].when" % line in cp.stderr and "incme" in cp.stderr,
          "the error names line %d and the key path" % line, cp.stderr.strip())
    cp = st.levee("shadow", draft, "--region", "62x", check=False)
    eq(cp.returncode, 2, "a bad --region is a usage error")

    print("\n== 5. nothing changed")
    after = fingerprint(st)
    changed = sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))
    check(not changed, "every table is as before (%d tables)" % len(before), changed)


def real_switch(st, tmp):
    print("\n== 6. the real switch produces what the shadow run reported")
    import signal
    import time
    live = os.path.join(tmp, "live.json")
    write_policy(live, lambda v0: [v0])
    st.env["LEVEE_POLICY"] = live
    for svc in SERVICES:
        st.start(svc)
    draft = os.path.join(tmp, "draft.json")
    shadow = reported(json.loads(st.levee("shadow", draft, "--json").stdout))
    before = {r[0]: r[1:] for r in st.psql("SELECT household_id, in_scope, coalesce(category, ''), "
                                           "coalesce(grade, '') FROM household_state")}
    alerts0 = int(st.scalar("SELECT count(*) FROM alert"))
    write_policy(live, raised_line)
    # Every levee-matching process: the worker and its urgent lane's (as
    # `pkill -HUP -x levee-matching` does).
    for name in ("levee-matching.pid", "levee-matching-urgent.pid"):
        with open(os.path.join(st.home, "run", name)) as f:
            os.kill(int(f.read().strip()), signal.SIGHUP)
    deadline = time.monotonic() + 120
    while st.scalar("SELECT count(*) FROM household_state WHERE policy_version <> '2025.draft'") != "0":
        if time.monotonic() > deadline:
            check(False, "matching judged every household by 2025.draft within 120 s")
            return
        time.sleep(0.3)
    st.levee("wait-idle", "--timeout", "120", timeout=150)
    after = {r[0]: r[1:] for r in st.psql("SELECT household_id, in_scope, coalesce(category, ''), "
                                          "coalesce(grade, '') FROM household_state")}
    changed = {h: after[h] for h in after if after[h] != before.get(h)}
    want = {h: ("t" if d[0] else "f", d[1] or "", d[2] or "") for h, (_, _, d) in shadow.items()}
    check(shadow and changed == want,
          "the households the switch changed are the %d the shadow run reported, with its verdicts"
          % len(shadow), diff_summary(changed, want))
    with_evidence = {r[0] for r in st.psql("SELECT household_id FROM household_state "
                                           "WHERE cardinality(risk_factors) > 0")}
    entered = sorted(h for h, (kinds, _, _) in shadow.items() if "enter" in kinds and h in with_evidence)
    alerted = sorted(r[0] for r in st.psql("SELECT household_id FROM alert WHERE alert_id LIKE "
                                           "'a:policy:2025.draft:%' AND household_id = ANY(:'h'::text[])",
                                           {"h": "{" + ",".join(entered) + "}"}))
    check(entered and int(st.scalar("SELECT count(*) FROM alert")) > alerts0,
          "the switch raised alerts (%d entered scope)" % len(entered))
    eq(alerted, entered, "each household that entered scope with a risk factor has its alert")


def house_damage(st, tmp):
    print("\n== 7. house damage: the policy's list decides, in matching and in the shadow run")
    # Three orange households well clear of the red line (a 1 元 loss cannot
    # move them) get a disaster on the day of their latest bill, so the
    # window stays where it is: 轻微, 严重 and 无 damage.
    rows = st.psql("SELECT s.household_id, (SELECT p.id_number FROM person p WHERE p.household_id = "
                   "  s.household_id ORDER BY p.relation <> '户主', p.id_number LIMIT 1), "
                   "  to_char(to_timestamp((SELECT max(m.settle_ms) FROM medical_expense m "
                   "  WHERE m.household_id = s.household_id) / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD') "
                   "FROM household_state s WHERE s.in_scope AND s.grade = 'orange' "
                   "AND s.income_fen - s.rigid_fen - 100 >= 400000 * s.members "
                   "AND EXISTS (SELECT 1 FROM medical_expense m WHERE m.household_id = s.household_id) "
                   "ORDER BY s.household_id LIMIT 3")
    if len(rows) < 3:
        check(False, "three orange households for the house damage check", rows)
        return
    light, severe, none = rows
    path = os.path.join(tmp, "disaster.csv")
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["record_id", "id_number", "event_date", "disaster_type", "loss_amount", "house_damage"])
        for (hid, idn, day), damage in ((light, "轻微"), (severe, "严重"), (none, "无")):
            w.writerow(["ZH" + hid, idn, day, "洪涝", "1.00", damage])
    r = json.loads(st.levee("load", "disaster", path, "--json").stdout)
    eq((r["status"], r["accepted"]), ("done", 3), "disaster file loaded")
    st.levee("wait-idle", "--timeout", "120", timeout=150)
    state = {r[0]: tuple(r[1:]) for r in st.psql(
        "SELECT household_id, grade, coalesce(house_damage, '') FROM household_state "
        "WHERE household_id IN (:'a', :'b', :'c')", {"a": light[0], "b": severe[0], "c": none[0]})}
    eq([state.get(h[0]) for h in (light, severe, none)], [("orange", "轻微"), ("red", "严重"), ("orange", "无")],
       "matching: 严重 is red by the shipped list, 轻微 and 无 are not; the level is stored")

    def draft_with(levels, version):
        def fn(v0):
            vs = raised_line(v0)
            vs[1]["version"], vs[1]["house_damage_red"] = version, levels
            return vs
        d = os.path.join(tmp, version + ".json")
        write_policy(d, fn)
        doc = json.loads(st.levee("shadow", d, "--json").stdout)
        return {c["household_id"]: (c["current"]["grade"], c["draft"]["grade"]) for c in doc["changes"]}
    eq(draft_with(["轻微", "严重", "倒塌"], "2025.light"), {light[0]: ("orange", "red")},
       "a draft that makes 轻微 red: exactly the 轻微 household turns red")
    eq(draft_with(["倒塌"], "2025.collapsed"), {severe[0]: ("red", "orange")},
       "a draft where only 倒塌 is red: exactly the 严重 household leaves red")


def main():
    def body():
        with tempfile.TemporaryDirectory(prefix="levee-shadow-") as tmp:
            with Stack(free_port_base()) as st:
                run(st, tmp)
                real_switch(st, tmp)
                house_damage(st, tmp)
    return finish(body)


if __name__ == "__main__":
    sys.exit(main())
