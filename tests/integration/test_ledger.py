#!/usr/bin/env python3
"""Ledger test: the two-phase fund ledger on one private stack.

1. ~300 cases walked to 县级审定 reserve their 因病 payouts: the special
   fund's pending equals the sum reserved, its balance the opening less
   that, and `levee reconcile` passes.
2. kill -9 of ledger in the middle of `levee pay --all` (deterministically:
   a row lock held by this test stops the batch half way), restart, pay
   again: every payout posted exactly once, paid = the sum, reconcile ok.
3. kill -9 of ledger between reserve and post (right after county_approve):
   each case gets exactly one reservation; pay; reconcile ok.
4. void with a note: voided, pending released, paying it afterwards refused.
5. a lapsed reservation (expiry moved into the past by SQL) is voided by
   ledger's timer with the 超时 reason; paying it is refused.
6. donations and temporary relief from a village fund: town role required,
   the 3,000 元 per event maximum, a relief the fund cannot cover is recorded
   as refused and moves no money; the balances add up.
7. reconcile detects a corrupted account column and a corrupted payout
   amount, naming them, and passes again once they are restored.
8. paid-out accounts per channel: every posted payout left its household's
   payable account for its channel's account exactly once (一卡通 by
   default, 银行代发 when named); a payment without a channel is refused;
   reconcile detects a disbursement of a payout that was never posted.
9. the monitoring ledger (台账) export: CSV that Excel opens (BOM, CRLF),
   one row per monitored case with its paid amount in 元, ID numbers
   masked; --json agrees; a bad --status is a usage error.

Standard library only. Prints every check; exits 1 if any check failed.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lvstack import LEVEE, ROOT, SERVICES, Checks, Stack, free_port_base, wait_for  # noqa: E402

HOUSEHOLDS = 1500
MEDICAL_ROWS = 30000
SEED = 5
WALK = 300           # cases walked to approval in part 1
THREADS = 4          # parallel CLI callers while walking
FUND = "fund:special"
LOCK_APP = "levee-test-ledger-lock"

CK = Checks("ledger")
log = CK.log


# ---- helpers -------------------------------------------------------------------

def run(st, *args, timeout=120):
    """levee ARGS without raising: (exit code, stdout, stderr)."""
    cp = st.levee(*args, check=False, timeout=timeout)
    return cp.returncode, cp.stdout, cp.stderr


def ids_param(ids):
    return {"ids": ",".join(i for i in ids if i)}


def funds(st):
    """`levee --json funds` as {account_id: row}."""
    rows = json.loads(st.levee("--json", "funds").stdout)
    return {"fund:" + r["fund_id"]: {k: int(r[k]) for k in ("balance_fen", "paid_fen", "pending_fen")}
            for r in rows}


def reconcile(st):
    """(exit code, parsed JSON of `levee --json reconcile`)."""
    cp = st.levee("--json", "reconcile", check=False)
    try:
        doc = json.loads(cp.stdout)
    except ValueError:
        doc = {"ok": None, "checks": [], "raw": cp.stdout + cp.stderr}
    return cp.returncode, doc


def findings(doc):
    return [f for c in doc.get("checks", []) for f in c.get("findings", [])]


def check_reconciles(st, what):
    rc, doc = reconcile(st)
    CK.ok(rc == 0 and doc.get("ok") is True, "reconcile passes %s" % what,
          "exit %d, findings %s" % (rc, findings(doc)[:10] or doc.get("raw", "")[:500]))


def policy(st):
    """From the stack's policy version in effect: (special fund's opening,
    relief maximum per event, reservation days)."""
    with open(st.env["LEVEE_POLICY"], encoding="utf-8") as f:
        pol = json.load(f)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    v = max((v for v in pol["versions"] if v["effective_from"] <= today), key=lambda v: v["effective_from"])
    opening = next(int(f["opening_fen"]) for f in v["funds"] if f["fund_id"] == "special")
    return opening, int(v["payouts"]["relief"]["max_per_event_fen"]), int(v["payouts"]["reservation_days"])


def opening_fen(st):
    return policy(st)[0]


def posted_notices(st, ids):
    """{payout_id: inbox rows of its payout_posted event}."""
    rows = st.psql("SELECT substr(event_id, length('ev:payout_posted:') + 1), count(*) FROM inbox "
                   "WHERE event_id = ANY(SELECT 'ev:payout_posted:' || x FROM "
                   "unnest(string_to_array(:'ids', ',')) AS x) GROUP BY 1", ids_param(ids))
    return {r[0]: int(r[1]) for r in rows}


def payout_rows(st, ids):
    """{payout_id: (status, amount_fen, reason)}."""
    rows = st.psql("SELECT payout_id, status, amount_fen, coalesce(reason, '') FROM payout "
                   "WHERE payout_id = ANY(string_to_array(:'ids', ','))", ids_param(ids))
    return {r[0]: (r[1], int(r[2]), r[3]) for r in rows}


def sum_status(st, fund, status):
    return int(st.scalar("SELECT coalesce(sum(amount_fen), 0) FROM payout WHERE fund_account = :'f' "
                         "AND status = :'s'", {"f": fund, "s": status}))


def resolutions(st, ids):
    """{payout_id: (pending transfers, post transfers, void transfers)} for payouts ids."""
    rows = st.psql(
        "SELECT p.payout_id, "
        "(SELECT count(*) FROM transfer t WHERE t.transfer_id = p.payout_id AND t.phase = 'pending'), "
        "(SELECT count(*) FROM transfer t WHERE t.pending_id = p.payout_id AND t.phase = 'post'), "
        "(SELECT count(*) FROM transfer t WHERE t.pending_id = p.payout_id AND t.phase = 'void') "
        "FROM payout p WHERE p.payout_id = ANY(string_to_array(:'ids', ','))", ids_param(ids))
    return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}


def settle(st, timeout=120):
    """No import running, outbox empty, twice in a row a second apart."""
    st.levee("wait-idle", "--timeout", str(timeout), timeout=timeout + 30)
    quiet, deadline = 0, time.monotonic() + timeout
    while quiet < 2:
        n = st.scalar("SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM import "
                      "WHERE status IN ('queued', 'running'))")
        quiet = quiet + 1 if n == "0" else 0
        if time.monotonic() > deadline:
            raise TimeoutError("the stack did not settle")
        time.sleep(0.5)


def parallel(fn, items, threads=THREADS):
    with ThreadPoolExecutor(max_workers=threads) as ex:
        return list(ex.map(fn, items))


def prepare_cases(st, cases):
    """Verification (low income: stays in scope), 村级评议 and 公示 start."""
    def one(c):
        for args in (("task-result", c + "-V1", "--income", "6000", "--members", "3", "--rigid", "20000",
                      "--actor", "inv-a"),
                     ("task-result", c + "-V2", "--income", "6000", "--members", "3", "--rigid", "20000",
                      "--actor", "inv-b"),
                     ("step", c, "deliberate", "pass", "--actor", "村委会"),
                     ("step", c, "publicize", "pass", "--actor", "村委会")):
            if args[1] == c + "-V2" and st.scalar("SELECT count(*) FROM task WHERE task_id = :'t'",
                                                  {"t": c + "-V2"}) == "0":
                continue  # not drawn for 抽样复核
            rc, out, err = run(st, *args)
            if rc != 0:
                return c, "%s: exit %d %s" % (args[0] + " " + args[2 if args[0] == "step" else 1], rc,
                                             (out + err).strip()[:200])
        return c, None
    bad = [r for r in parallel(one, cases) if r[1]]
    CK.ok(not bad, "%d cases verified, deliberated and in 公示" % len(cases), bad[:5])
    # 公示 ends: move every running 公示's end into the past; dispatch's timer
    # moves the cases on to town_review.
    st.psql("UPDATE hcase SET publicity_end_ms = 0 WHERE status = 'publicizing'")
    wait_for(lambda: st.scalar("SELECT count(*) FROM hcase WHERE status = 'publicizing'") == "0",
             timeout=30, what="公示 ended")
    return [c for c in cases if c not in {b[0] for b in bad}]


def town_review(st, c):
    rc, out, err = run(st, "step", c, "town_review", "pass", "--actor", "乡镇")
    return None if rc == 0 else "town_review %s: exit %d %s" % (c, rc, (out + err).strip()[:200])


def county_approve(st, c):
    rc, out, err = run(st, "step", c, "county_approve", "pass", "--actor", "县乡村振兴局")
    return None if rc == 0 else "county_approve %s: exit %d %s" % (c, rc, (out + err).strip()[:200])


def approve_cases(st, cases):
    prepared = prepare_cases(st, cases)
    errs = [e for e in parallel(lambda c: town_review(st, c) or county_approve(st, c), prepared) if e]
    CK.ok(not errs, "%d cases through town_review and county_approve" % len(prepared), errs[:5])
    return prepared


def wait_payouts(st, cases, timeout=60):
    """Waits until every approved case has its payout row; returns {case: payout_id}."""
    def have():
        rows = st.psql("SELECT case_id, payout_id FROM payout WHERE case_id = ANY(string_to_array(:'ids', ','))",
                       ids_param(cases))
        return dict(rows) if len(rows) >= len(cases) else None
    return wait_for(have, timeout=timeout, interval=0.2, what="payouts of %d cases" % len(cases))


# ---- the parts -----------------------------------------------------------------

def part1(st, sample):
    log("part 1: load a sample, walk %d cases to 县级审定, reservations" % WALK)
    st.levee("load", "registry", os.path.join(sample, "registry.csv"), timeout=300)
    st.levee("load", "medical", os.path.join(sample, "medical.csv"), timeout=300)
    settle(st)
    st.levee("investigator-add", "inv-a", "核查员甲", "620521")
    wait_for(lambda: st.scalar("SELECT count(*) FROM task WHERE assignee IS NULL") == "0",
             timeout=60, what="tasks assigned")
    # A second investigator takes the 抽样复核 of inv-a's verifications.
    st.levee("investigator-add", "inv-b", "核查员乙", "620521")
    # The year's self-paid compliant medical cost decides the payout (50% above
    # 5,000 元 and more). Cases with a moderate cost (payouts of roughly
    # 1,500..7,500 元) are kept for parts 3-5, so that they reserve money;
    # part 1 leaves out the costliest households (over 60,000 元), so that the
    # 4,500,000 元 fund is not used up before the later parts.
    rows = st.psql("SELECT c.case_id, coalesce((SELECT sum(compliant_self_fen) FROM medical_expense e "
                   "WHERE e.household_id = c.household_id), 0) FROM hcase c "
                   "WHERE c.status = 'candidate' ORDER BY c.case_id")
    moderate = [c for c, b in rows if 800000 <= int(b) <= 2000000]
    spare = moderate[::7][:8]
    walk = [c for c, b in rows if c not in spare and int(b) <= 6000000][:WALK]
    log("  %d open cases; walking %d, keeping %d for later parts" % (len(rows), len(walk), len(spare)))
    if not CK.ok(len(walk) >= WALK * 9 // 10 and len(spare) == 8,
                 "the sample opened enough cases (%d walked, %d spare)" % (len(walk), len(spare))):
        raise SystemExit("the sample is too small for this test")
    t = time.monotonic()
    approved = approve_cases(st, walk)
    log("  walked %d cases in %.1f s" % (len(approved), time.monotonic() - t))
    by_case = wait_payouts(st, approved)
    settle(st)
    pids = sorted(by_case.values())
    rows = payout_rows(st, pids)
    statuses = {}
    for s, _, _ in rows.values():
        statuses[s] = statuses.get(s, 0) + 1
    log("  payouts by status: %s" % statuses)
    CK.eq(len(rows), len(approved), "one payout row per approved case")
    CK.eq(sorted(st.psql("SELECT case_id, count(*) FROM payout WHERE case_id = ANY(string_to_array(:'ids', ',')) "
                         "GROUP BY 1 HAVING count(*) > 1", ids_param(approved))), [],
          "no case has two payouts")
    pending = sorted(p for p, r in rows.items() if r[0] == "pending")
    CK.ok(len(pending) >= 100, "most payouts are reserved (%d pending)" % len(pending))
    CK.ok(set(statuses) <= {"pending", "none", "refused"}, "payouts only pending, none or refused: %s" % statuses)
    res = resolutions(st, pending)
    CK.ok(all(v == (1, 0, 0) for v in res.values()) and len(res) == len(pending),
          "each reserved payout has exactly one open pending transfer",
          {k: v for k, v in res.items() if v != (1, 0, 0)})
    none_with_amount = [p for p, r in rows.items() if r[0] == "none" and r[1] != 0]
    CK.eq(none_with_amount, [], "'none' payouts have amount 0")
    refused = [p for p, r in rows.items() if r[0] == "refused"]
    CK.ok(all(rows[p][2] for p in refused), "refused payouts carry a reason (%d refused)" % len(refused))
    opening, _, days = policy(st)
    bad_expiry = st.psql("SELECT transfer_id, expires_ms - created_ms FROM transfer WHERE phase = 'pending' "
                         "AND transfer_id = ANY(string_to_array(:'ids', ',')) "
                         "AND expires_ms - created_ms IS DISTINCT FROM :'d'::bigint",
                         dict(ids_param(pending), d=days * 86400000))
    CK.eq(bad_expiry, [], "every reservation expires reservation_days (%d) after it was made" % days)
    CK.eq(int(st.scalar("SELECT amount_fen FROM transfer WHERE transfer_id = 'open:special'")), opening,
          "the opening transfer equals the policy's opening allocation")
    reserved = sum(rows[p][1] for p in pending)
    f = funds(st)[FUND]
    log("  fund special: %s; Σ reserved %d" % (f, reserved))
    CK.eq(f["pending_fen"], reserved, "funds: pending_fen = Σ reserved amounts")
    CK.eq(f["paid_fen"], 0, "funds: nothing paid yet")
    CK.eq(f["balance_fen"], opening - reserved, "funds: balance_fen = opening − pending")
    check_reconciles(st, "after the reservations")
    return pending, spare


def part2(st, pending):
    log("part 2: kill -9 ledger in the middle of `levee pay --all` (%d payouts)" % len(pending))
    amounts = payout_rows(st, pending)
    # A row lock on a payout half way down the batch's order stops the batch
    # there, inside its one transaction, so the kill lands mid-batch.
    stop_at = pending[len(pending) // 2]
    env = dict(st.env, PGAPPNAME=LOCK_APP)
    holder = subprocess.Popen(["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(st.port_base), "-U", "levee",
                               "-d", "levee", "-v", "ON_ERROR_STOP=1"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env=env, text=True)
    pay = None
    try:
        holder.stdin.write("BEGIN;\nSELECT payout_id FROM payout WHERE payout_id = '%s' FOR UPDATE;\n" % stop_at)
        holder.stdin.flush()
        wait_for(lambda: st.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = :'a' "
                                   "AND state = 'idle in transaction'", {"a": LOCK_APP}) == "1",
                 timeout=15, interval=0.05, what="the test's row lock")
        pay = subprocess.Popen([LEVEE, "pay", "--all", "--actor", "资金管理员"], env=st.env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        blocked = wait_for(lambda: st.scalar(
            "SELECT count(*) FROM pg_stat_activity b, pg_stat_activity h WHERE h.application_name = :'a' "
            "AND h.pid = ANY(pg_blocking_pids(b.pid))", {"a": LOCK_APP}) == "1",
            timeout=20, interval=0.02, what="pay --all reaching the locked payout")
        CK.ok(blocked, "pay --all is inside its transaction, waiting at payout %d of %d (%s)"
              % (len(pending) // 2 + 1, len(pending), stop_at))
        st.kill("ledger")
        log("  killed ledger mid-batch")
    finally:
        if holder.poll() is None:
            holder.stdin.write("ROLLBACK;\n")
            holder.stdin.close()
            holder.wait(timeout=30)
    committed = int(st.scalar("SELECT count(*) FROM transfer WHERE phase = 'post' "
                              "AND pending_id = ANY(string_to_array(:'ids', ','))", ids_param(pending)))
    CK.eq(committed, 0, "the killed batch committed no post (pay --all is one transaction)")
    st.start("ledger")
    try:
        out, err = pay.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        pay.kill()
        raise
    log("  the interrupted `pay --all` ended with exit %d: %s" % (pay.returncode, (out + err).strip()[:200]))
    rc, out, err = run(st, "pay", "--all", "--actor", "资金管理员")
    CK.eq(rc, 0, "`levee pay --all` again after the restart exits 0")
    log("  %s" % (out + err).strip()[:200])
    settle(st)
    rows = payout_rows(st, pending)
    not_posted = {p: r[0] for p, r in rows.items() if r[0] != "posted"}
    CK.ok(not not_posted and len(rows) == len(pending),
          "all %d reserved payouts are posted" % len(pending), dict(list(not_posted.items())[:5]))
    res = resolutions(st, pending)
    bad = {p: v for p, v in res.items() if v != (1, 1, 0)}
    CK.ok(not bad, "each payout: one pending, exactly one post, no void transfer", dict(list(bad.items())[:5]))
    CK.eq(int(st.scalar("SELECT count(*) FROM transfer WHERE phase = 'post' "
                        "AND pending_id = ANY(string_to_array(:'ids', ','))", ids_param(pending))),
          len(pending), "post transfers for these payouts")
    total = sum(amounts[p][1] for p in pending)
    f = funds(st)[FUND]
    opening = opening_fen(st)
    CK.eq(f["paid_fen"], total, "funds: paid_fen = Σ amounts of the posted payouts")
    CK.eq(f["pending_fen"], 0, "funds: nothing left reserved")
    CK.eq(f["balance_fen"], opening - total, "funds: balance_fen = opening − paid")
    notices = posted_notices(st, pending)
    CK.ok(len(notices) == len(pending) and set(notices.values()) == {2},
          "each posted payout's notice reached the town and the village inbox (%d payouts)" % len(notices),
          {p: notices.get(p) for p in pending if notices.get(p) != 2})
    check_reconciles(st, "after the interrupted and repeated pay --all")


def part3(st, cases):
    log("part 3: kill -9 ledger right after county_approve (%d cases)" % len(cases))
    prepared = prepare_cases(st, cases)
    for c in prepared:
        CK.ok(town_review(st, c) is None, "town_review %s" % c)
    # The first approval: ledger is killed right after it (its reservation may
    # or may not be committed); the next ones are approved while ledger is
    # down (their requests wait in dispatch's outbox); ledger restarts; the
    # last approval is followed by another kill and restart.
    last = len(prepared) - 1
    for i, c in enumerate(prepared):
        err = county_approve(st, c)
        CK.ok(err is None, "county_approve %s" % c, err)
        if i == 0 or i == last:
            st.kill("ledger")
            log("  killed ledger right after approving %s" % c)
        if i == last - 1 or i == last:
            if i == last:
                time.sleep(0.3)
            st.start("ledger")
            log("  started ledger")
    by_case = wait_payouts(st, prepared, timeout=60)
    settle(st)
    pids = sorted(by_case.values())
    rows = payout_rows(st, pids)
    CK.eq(sorted(st.psql("SELECT case_id, count(*) FROM payout WHERE case_id = ANY(string_to_array(:'ids', ',')) "
                         "GROUP BY 1", ids_param(prepared))),
          sorted((c, "1") for c in prepared), "each case has exactly one payout")
    CK.ok(all(r[0] == "pending" for r in rows.values()), "each payout is reserved (pending)",
          {p: r[0] for p, r in rows.items()})
    res = resolutions(st, pids)
    CK.ok(all(v == (1, 0, 0) for v in res.values()), "each payout has exactly one pending transfer", res)
    before = funds(st)[FUND]
    reserved = sum(r[1] for r in rows.values())
    CK.eq(before["pending_fen"], reserved, "funds: pending_fen = Σ of these reservations")
    check_reconciles(st, "after the reservations across ledger crashes")
    # pay --all --region pays only that region's reservations.
    region = st.scalar("SELECT h.region_code FROM payout p JOIN household h USING (household_id) "
                       "WHERE p.payout_id = :'p'", {"p": pids[0]})
    in_region = [p for p in pids if st.scalar(
        "SELECT h.region_code FROM payout p JOIN household h USING (household_id) WHERE p.payout_id = :'p'",
        {"p": p}) == region]
    rc, out, err = run(st, "pay", "--all", "--region", "62052x")
    CK.eq(rc, 2, "pay --all --region with a non-digit prefix is a usage error")
    rc, out, err = run(st, "pay", "--all", "--region", region, "--actor", "资金管理员")
    CK.eq(rc, 0, "pay --all --region %s" % region)
    rows = payout_rows(st, pids)
    CK.eq(sorted(p for p, r in rows.items() if r[0] == "posted"), sorted(in_region),
          "only the payouts in region %s are posted" % region)
    # The rest: each paid by three people at once; exactly one succeeds.
    rest = [p for p in pids if p not in in_region]
    results = parallel(lambda pt: (pt[0], run(st, "pay", pt[0], "--actor", "资金管理员%d" % pt[1])[0]),
                       [(p, k) for p in rest for k in range(3)], threads=6)
    for p in rest:
        codes = sorted(rc for q, rc in results if q == p)
        CK.eq(codes, [0, 1, 1], "%s paid three times at once: one success, two refusals" % p)
    rows = payout_rows(st, pids)
    CK.ok(all(r[0] == "posted" for r in rows.values()), "all posted", {p: r[0] for p, r in rows.items()})
    res = resolutions(st, pids)
    CK.ok(all(v == (1, 1, 0) for v in res.values()), "each: exactly one post transfer", res)
    after = funds(st)[FUND]
    CK.eq(after["paid_fen"] - before["paid_fen"], reserved, "funds: paid_fen grew by Σ amounts")
    CK.eq(after["pending_fen"], 0, "funds: nothing reserved")
    CK.eq(after["balance_fen"], before["balance_fen"], "funds: balance unchanged by posting a reservation")
    check_reconciles(st, "after paying them")


def part4_5(st, cases):
    log("part 4: void a reserved payout; part 5: a reservation that lapses")
    prepared = approve_cases(st, cases)
    by_case = wait_payouts(st, prepared)
    settle(st)
    pids = [by_case[c] for c in prepared]
    rows = payout_rows(st, pids)
    CK.ok(len(pids) == 2 and all(rows[p][0] == "pending" and rows[p][1] > 0 for p in pids),
          "two new payouts reserved", rows)
    void_id, lapse_id = pids
    # -- part 4: void
    f0 = funds(st)[FUND]
    rc, out, err = run(st, "void", void_id)
    CK.eq(rc, 2, "void without --note is a usage error")
    rc, out, err = run(st, "void", void_id, "--note", "户已迁出, 撤回审定", "--actor", "资金管理员")
    CK.eq(rc, 0, "void %s --note ... exits 0" % void_id)
    st_, amt, reason = payout_rows(st, [void_id])[void_id]
    CK.eq(st_, "voided", "the voided payout's status")
    CK.ok("户已迁出" in reason, "the void's note is the payout's reason", reason)
    CK.eq(resolutions(st, [void_id])[void_id], (1, 0, 1), "one pending and one void transfer")
    f1 = funds(st)[FUND]
    CK.eq(f1["pending_fen"], f0["pending_fen"] - amt, "funds: the reservation is released from pending_fen")
    CK.eq(f1["balance_fen"], f0["balance_fen"] + amt, "funds: and returns to balance_fen")
    CK.eq(f1["paid_fen"], f0["paid_fen"], "funds: paid_fen unchanged")
    rc, out, err = run(st, "pay", void_id, "--actor", "资金管理员")
    CK.eq(rc, 1, "paying the voided payout is refused (exit 1)")
    rc, out, err = run(st, "void", void_id, "--note", "再次作废")
    CK.eq(rc, 1, "voiding it again is refused (exit 1)")
    CK.eq(payout_rows(st, [void_id])[void_id][0], "voided", "it stays voided")
    CK.eq(funds(st)[FUND], f1, "funds unchanged by the refused pay and void")
    check_reconciles(st, "after the void")

    # -- part 5: timeout
    lapse_amt = payout_rows(st, [lapse_id])[lapse_id][1]
    f0 = funds(st)[FUND]
    # Simulates the passage of the 30 reservation days: transfers are immutable
    # (a trigger refuses UPDATE), so the trigger is switched off for the one
    # statement that moves this reservation's expiry into the past.
    st.psql("BEGIN; ALTER TABLE transfer DISABLE TRIGGER transfer_immutable; "
            "UPDATE transfer SET expires_ms = 1 WHERE transfer_id = :'id'; "
            "ALTER TABLE transfer ENABLE TRIGGER transfer_immutable; COMMIT;", {"id": lapse_id})
    t = time.monotonic()
    try:
        wait_for(lambda: payout_rows(st, [lapse_id])[lapse_id][0] == "voided", timeout=10, interval=0.1,
                 what="the lapsed reservation voided")
        CK.ok(True, "ledger's timer voided the lapsed reservation within %.1f s" % (time.monotonic() - t))
    except TimeoutError as e:
        CK.ok(False, "ledger's timer voids the lapsed reservation", e)
    st_, _, reason = payout_rows(st, [lapse_id])[lapse_id]
    CK.ok("超时" in reason, "its reason mentions 超时", reason)
    CK.eq(resolutions(st, [lapse_id])[lapse_id], (1, 0, 1), "one pending and one void transfer")
    CK.eq(st.scalar("SELECT resolved_by FROM payout WHERE payout_id = :'id'", {"id": lapse_id}), "levee-ledger",
          "resolved by levee-ledger")
    f1 = funds(st)[FUND]
    CK.eq(f1["pending_fen"], f0["pending_fen"] - lapse_amt, "funds: the lapsed reservation is released")
    CK.eq(f1["balance_fen"], f0["balance_fen"] + lapse_amt, "funds: balance_fen regains it")
    rc, out, err = run(st, "pay", lapse_id, "--actor", "资金管理员")
    CK.eq(rc, 1, "paying the lapsed payout is refused (exit 1)")
    CK.eq(payout_rows(st, [lapse_id])[lapse_id][0], "voided", "it stays voided")
    rc, out, err = run(st, "pay", "--all", "--actor", "资金管理员")
    CK.eq(rc, 0, "pay --all with nothing reserved exits 0")
    CK.eq(funds(st)[FUND], f1, "funds unchanged by the refused pay")
    check_reconciles(st, "after the timeout")


def part6(st):
    log("part 6: donations and temporary relief")
    _, max_fen, _ = policy(st)
    # A village with at least one household, and the first household there.
    village, hid = st.psql("SELECT region_code, min(household_id) FROM household GROUP BY region_code "
                           "ORDER BY region_code LIMIT 1")[0]
    CK.eq(st.scalar("SELECT region_code FROM household WHERE household_id = :'h'", {"h": hid}), village,
          "household %s lives in village %s" % (hid, village))
    acc = "fund:village:" + village
    CK.ok(acc not in funds(st), "no village fund before the first donation")
    rc, out, err = run(st, "donate", village, "爱心企业甲", "10000", "--actor", "村委会")
    CK.eq(rc, 0, "donate 10,000 元 to %s" % village)
    f = funds(st).get(acc)
    CK.eq(f, {"balance_fen": 1000000, "paid_fen": 0, "pending_fen": 0}, "the village fund after the donation")
    CK.eq(st.psql("SELECT donor, amount_fen FROM donation WHERE fund_account = :'a'", {"a": acc}),
          [("爱心企业甲", "1000000")], "the donation is recorded")
    rc, out, err = run(st, "donate", "62052111020", "某人", "100")
    CK.ok(rc != 0, "a donation to a malformed village code is refused (exit %d)" % rc)

    def relief(amount, note):
        cp = st.levee("--json", "relief", hid, amount, "--note", note, "--actor", "村委会", check=False)
        try:
            doc = json.loads(cp.stdout)
        except ValueError:
            doc = {}
        pid = "relief:" + doc["cmd_id"] if doc.get("cmd_id") else None
        return cp.returncode, pid, doc

    rc, r1, doc = relief("2500", "住房受损, 临时救助")
    CK.eq(rc, 0, "relief of 2,500 元 requested")
    CK.eq(payout_rows(st, [r1]).get(r1, (None, None, None))[:2], ("pending", 250000), "it is reserved")
    CK.eq(st.scalar("SELECT fund_account || ' ' || kind FROM payout WHERE payout_id = :'p'", {"p": r1}),
          acc + " relief", "from the village fund, kind relief")
    CK.eq(funds(st)[acc], {"balance_fen": 750000, "paid_fen": 0, "pending_fen": 250000},
          "village fund: 2,500 元 reserved")
    rc, out, err = run(st, "pay", "--all", "--actor", "资金管理员")
    CK.eq(payout_rows(st, [r1])[r1][0], "pending", "pay --all leaves relief alone")
    rc, out, err = run(st, "pay", r1, "--actor", "资金管理员")
    CK.eq(rc, 1, "paying relief without --role town is refused (exit 1)")
    rc, out, err = run(st, "pay", r1, "--role", "county", "--actor", "县")
    CK.eq(rc, 1, "paying relief with --role county is refused (exit 1)")
    CK.eq(payout_rows(st, [r1])[r1][0], "pending", "still pending after the refusals")
    rc, out, err = run(st, "pay", r1, "--role", "town", "--actor", "乡镇")
    CK.eq(rc, 0, "paying relief with --role town exits 0")
    CK.eq(payout_rows(st, [r1])[r1][0], "posted", "the relief is posted")
    try:
        wait_for(lambda: posted_notices(st, [r1]).get(r1) == 2, timeout=15, what="relief notice")
        CK.ok(True, "the paid relief is notified to the town and the village")
    except TimeoutError as e:
        CK.ok(False, "the paid relief is notified to the town and the village", e)
    CK.eq(resolutions(st, [r1])[r1], (1, 1, 0), "one pending and one post transfer")
    CK.eq(funds(st)[acc], {"balance_fen": 750000, "paid_fen": 250000, "pending_fen": 0},
          "village fund: 2,500 元 paid")

    n0 = st.scalar("SELECT count(*) FROM payout WHERE kind = 'relief'")
    rc, out, err = run(st, "relief", "H0000000000000", "100", "--note", "无此户")
    CK.eq(rc, 1, "relief for an unknown household refused (exit 1)")
    rc, out, err = run(st, "relief", hid, "100")
    CK.eq(rc, 2, "relief without --note is a usage error")
    rc, r, doc = relief("3000.01", "超过上限")
    CK.eq(rc, 1, "relief of 3,000.01 元 (above the %d 分 maximum) refused (exit 1)" % max_fen)
    CK.eq(st.scalar("SELECT count(*) FROM payout WHERE kind = 'relief'"), n0, "and records no payout")
    rc, r2, doc = relief("3000", "医疗自付, 临时救助")
    CK.eq(rc, 0, "relief of exactly 3,000 元 accepted")
    CK.eq(payout_rows(st, [r2]).get(r2, (None,))[0], "pending", "reserved")
    rc, r3, doc = relief("3000", "再次受灾")
    CK.eq(payout_rows(st, [r3]).get(r3, (None,))[0], "pending", "a second 3,000 元 relief reserved")
    before = funds(st)[acc]
    CK.eq(before, {"balance_fen": 150000, "paid_fen": 250000, "pending_fen": 600000},
          "village fund: 1,500 元 left after two reservations")
    transfers0 = st.scalar("SELECT count(*) FROM transfer")
    rc, r4, doc = relief("2000", "超过余额")
    log("  relief above the fund's balance: exit %d, %s" % (rc, doc))
    row = payout_rows(st, [r4]).get(r4) if r4 else None
    CK.ok(row is not None and row[0] == "refused", "relief above the balance is recorded as refused", row)
    CK.ok(row is not None and "不足" in row[2], "with the reason 资金余额不足", row)
    CK.eq(funds(st)[acc], before, "and moves no money")
    CK.eq(st.scalar("SELECT count(*) FROM transfer"), transfers0, "and writes no transfer")
    CK.eq((rc, doc.get("status")), (1, "refused"), "the person is told it was refused (exit 1)")
    rc, out, err = run(st, "pay", r4, "--role", "town")
    CK.eq(rc, 1, "a refused relief cannot be paid")
    rc, out, err = run(st, "pay", r2, "--role", "town", "--actor", "乡镇")
    CK.eq(rc, 0, "pay the first 3,000 元 relief")
    rc, out, err = run(st, "void", r3, "--note", "重复申请", "--actor", "乡镇")
    CK.eq(rc, 0, "void the second")
    donated = int(st.scalar("SELECT sum(amount_fen) FROM donation WHERE fund_account = :'a'", {"a": acc}))
    paid = sum_status(st, acc, "posted")
    pend = sum_status(st, acc, "pending")
    f = funds(st)[acc]
    CK.eq(f, {"balance_fen": donated - paid - pend, "paid_fen": paid, "pending_fen": pend},
          "village fund: balance = donations − paid − reserved")
    CK.eq(f, {"balance_fen": 450000, "paid_fen": 550000, "pending_fen": 0}, "village fund: 4,500 元 left")
    # A village without donations has nothing to give.
    other, hid2 = st.psql("SELECT region_code, min(household_id) FROM household WHERE region_code <> :'v' "
                          "GROUP BY region_code ORDER BY region_code LIMIT 1", {"v": village})[0]
    cp = st.levee("--json", "relief", hid2, "100", "--note", "无捐赠的村", check=False)
    rows = st.psql("SELECT status FROM payout WHERE household_id = :'h' AND kind = 'relief'", {"h": hid2})
    CK.eq(rows, [("refused",)], "relief in a village with an empty fund is recorded as refused")
    CK.eq(cp.returncode, 1, "and the CLI exits 1 (refused)")
    CK.eq(funds(st).get("fund:village:" + other, {}).get("balance_fen"), 0, "its fund holds nothing")
    check_reconciles(st, "after donations and relief")


def api_reconciliation(st, token):
    """(status, JSON) of GET /api/v1/reconciliation with a bearer token."""
    import urllib.error
    import urllib.request
    req = urllib.request.Request("http://127.0.0.1:%d/api/v1/reconciliation" % st.http_port,
                                 headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def part7(st):
    log("part 7: reconcile detects corruption")
    st.psql("UPDATE account SET credits_posted = credits_posted + 1 WHERE account_id = 'fund:special'")
    rc, doc = reconcile(st)
    CK.eq(rc, 1, "(a) a fund's credits off by 1 分: reconcile exits 1")
    CK.eq(doc.get("ok"), False, "(a) its JSON says ok: false")
    named = [f for f in findings(doc) if "fund:special" in f]
    CK.ok(named, "(a) a finding names fund:special", findings(doc))
    log("  findings: %s" % findings(doc))
    status, api = api_reconciliation(st, st.admin_token())
    api_named = [f for c in api.get("checks", []) for f in c["findings"] if "fund:special" in f]
    CK.eq((status, api.get("ok"), bool(api_named)), (200, False, True),
          "(a) GET /api/v1/reconciliation says the same (province token)")
    county = json.loads(st.levee("token", "issue", "county", "620521", "--json").stdout)["token"]
    CK.eq(api_reconciliation(st, county)[0], 403, "(a) a county token may not reconcile the province's books")
    st.psql("UPDATE account SET credits_posted = credits_posted - 1 WHERE account_id = 'fund:special'")
    check_reconciles(st, "(a) once the account is restored")
    status, api = api_reconciliation(st, st.admin_token())
    CK.eq((status, api.get("ok")), (200, True), "(a) and the API call passes again")

    pid = st.scalar("SELECT payout_id FROM payout WHERE status = 'posted' AND kind = 'illness' "
                    "ORDER BY payout_id LIMIT 1")
    st.psql("UPDATE payout SET amount_fen = amount_fen + 1 WHERE payout_id = :'p'", {"p": pid})
    rc, doc = reconcile(st)
    CK.eq(rc, 1, "(b) payout %s amount off by 1 分: reconcile exits 1" % pid)
    CK.ok([f for f in findings(doc) if pid in f], "(b) a finding names %s" % pid, findings(doc))
    log("  findings: %s" % findings(doc))
    st.psql("UPDATE payout SET amount_fen = amount_fen - 1 WHERE payout_id = :'p'", {"p": pid})
    check_reconciles(st, "(b) once the payout is restored")

    # The special fund's books from the payouts, for the record.
    opening = opening_fen(st)
    paid, pend = sum_status(st, FUND, "posted"), sum_status(st, FUND, "pending")
    CK.eq(funds(st)[FUND], {"balance_fen": opening - paid - pend, "paid_fen": paid, "pending_fen": pend},
          "special fund at the end: balance = opening − paid − reserved")
    settle(st)
    CK.eq(st.psql("SELECT consumer, msg_id, reason FROM dead_letter ORDER BY id"), [], "no dead letters")


def channels(st):
    cp = st.levee("--json", "channels")
    doc = json.loads(cp.stdout)
    rows = doc if isinstance(doc, list) else doc.get("items", doc.get("rows", []))
    return {r["channel"]: (int(r["paid_fen"]), int(r["payouts"])) for r in rows}


def part8(st):
    log("part 8: paid-out accounts per channel")
    by_channel = {}
    for ch, amt, n in st.psql("SELECT channel, sum(amount_fen), count(*) FROM payout "
                              "WHERE status = 'posted' GROUP BY channel"):
        by_channel[ch] = (int(amt), int(n))
    CK.ok(by_channel and all(ch for ch in by_channel), "every posted payout names its channel", by_channel)
    CK.eq(channels(st), by_channel,
          "levee channels: per channel, paid-out = Σ posted payouts through it, one transfer each")
    unpaid = st.scalar("SELECT count(*) FROM account WHERE kind = 'payable' "
                       "AND credits_posted <> debits_posted")
    CK.eq(unpaid, "0", "every payable account is cleared: what was posted to it left through a channel")
    # A named channel, and a payment without one.
    # A new temporary relief from the village fund of part 6, paid by the town.
    hid = st.scalar("SELECT household_id FROM payout WHERE kind = 'relief' AND status = 'posted' "
                    "ORDER BY payout_id LIMIT 1")
    cp = st.levee("--json", "relief", hid, "300", "--note", "临时救助 (渠道测试)", "--actor", "村委会")
    pend = "relief:" + json.loads(cp.stdout)["cmd_id"]
    CK.eq(payout_rows(st, [pend]).get(pend, (None,))[0], "pending", "a relief of 300 元 is reserved")
    rc, out, err = run(st, "pay", pend, "--channel", "", "--role", "town", "--actor", "乡镇")
    CK.eq(rc, 1, "paying %s with an empty channel is refused" % pend)
    CK.eq(st.scalar("SELECT status FROM payout WHERE payout_id = :'p'", {"p": pend}), "pending",
          "and the payout stays pending")
    rc, out, err = run(st, "pay", pend, "--channel", "银行代发", "--role", "town", "--actor", "乡镇")
    CK.eq(rc, 0, "paying %s through 银行代发" % pend)
    amt = int(st.scalar("SELECT amount_fen FROM payout WHERE payout_id = :'p'", {"p": pend}))
    got = channels(st).get("银行代发")
    CK.eq(got, (amt + by_channel.get("银行代发", (0, 0))[0], 1 + by_channel.get("银行代发", (0, 0))[1]),
          "银行代发's paid-out account holds exactly that payout")
    CK.eq(st.scalar("SELECT debit_account FROM transfer WHERE transfer_id = 'out:' || :'p'", {"p": pend}),
          "payable:" + st.scalar("SELECT household_id FROM payout WHERE payout_id = :'p'", {"p": pend}),
          "the money left the household's payable account")
    check_reconciles(st, "after paying through two channels")
    # A disbursement of a payout that was never posted.
    victim = st.scalar("SELECT payout_id FROM payout WHERE status IN ('voided', 'pending') "
                       "ORDER BY payout_id LIMIT 1")
    if victim:
        hh = st.scalar("SELECT household_id FROM payout WHERE payout_id = :'p'", {"p": victim})
        st.psql("INSERT INTO account (account_id, name, kind) VALUES ('payable:' || :'h', 'x', 'payable') "
                "ON CONFLICT DO NOTHING", {"h": hh})
        st.psql("INSERT INTO transfer (transfer_id, debit_account, credit_account, amount_fen, kind, "
                "created_ms) VALUES ('out:' || :'p', 'payable:' || :'h', 'paidout:一卡通', 100, "
                "'disburse', 0)", {"p": victim, "h": hh})
        rc, doc = reconcile(st)
        CK.eq(rc, 1, "a disbursement of %s, never posted: reconcile exits 1" % victim)
        CK.ok([f for f in findings(doc) if victim in f], "a finding names %s" % victim, findings(doc))


def part9(st, tmp):
    log("part 9: the monitoring ledger export")
    import csv
    import io
    import re
    path = os.path.join(tmp, "taizhang.csv")
    rc, out, err = run(st, "export", "--region", "620521", "--out", path)
    CK.eq(rc, 0, "levee export --out writes the file")
    with open(path, "rb") as f:
        raw = f.read()
    CK.ok(raw.startswith(b"\xef\xbb\xbf"), "UTF-8 with a BOM, so Excel reads the Chinese")
    text = raw[3:].decode("utf-8")
    CK.ok(text.endswith("\r\n") and "\n" not in text.replace("\r\n", ""), "CRLF line ends")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    head, body = rows[0], rows[1:]
    CK.ok("户编号 household_id" in head and "已发放(元) paid_fen" in head and "户主身份证号 head_id_number" in head,
          "the header names each column in Chinese and English", head)
    want = {r[0]: int(r[1]) for r in st.psql(
        "SELECT c.case_id, coalesce(sum(p.amount_fen) FILTER (WHERE p.status = 'posted'), 0) "
        "FROM hcase c LEFT JOIN payout p USING (case_id) WHERE c.status = 'monitoring' GROUP BY 1")}
    ci, pi = head.index("案件编号 case_id"), head.index("已发放(元) paid_fen")
    got = {r[ci]: round(float(r[pi]) * 100) for r in body}
    CK.eq(len(body), len(want), "one row per monitored case")
    CK.eq(got, want, "each row's paid amount in 元 = its posted payouts")
    idn = re.compile(r"(?<![0-9])[0-9]{17}[0-9X](?![0-9])")
    CK.ok(not idn.search(text), "no unmasked ID number in the export")
    doc = json.loads(st.levee("--json", "export", "--region", "620521").stdout)
    CK.eq(sorted(r["case_id"] for r in doc), sorted(want), "--json lists the same cases")
    rc, out, err = run(st, "export", "--status", "bogus")
    CK.eq(rc, 2, "an unknown --status is a usage error (exit 2)")


def snapshot_binaries(dest):
    """Copies the binaries into dest and points LEVEE_BIN there, so that a
    rebuild in the working tree while the test runs cannot pull a binary
    from under the stack. Waits (up to 120 s) for a build in progress."""
    src = os.environ.get("LEVEE_BIN") or os.path.join(ROOT, "build", "bin")
    names = ["levee-cli"] + ["levee-%s" % s for s in SERVICES]

    def ready():
        try:
            return all(time.time() - os.stat(os.path.join(src, n)).st_mtime > 2 for n in names)
        except OSError:
            return False
    wait_for(ready, timeout=120, interval=1, what="the binaries in %s" % src)
    os.makedirs(dest)
    for n in names:
        shutil.copy2(os.path.join(src, n), os.path.join(dest, n))
    os.environ["LEVEE_BIN"] = dest


def main():
    with tempfile.TemporaryDirectory(prefix="levee-ledger-") as tmp:
        snapshot_binaries(os.path.join(tmp, "bin"))
        subprocess.run([os.path.join(ROOT, "scripts", "gen-sample"), "--households", str(HOUSEHOLDS),
                        "--medical", str(MEDICAL_ROWS), "--seed", str(SEED), "--out", os.path.join(tmp, "sample")],
                       check=True, stdout=subprocess.DEVNULL)
        with Stack(free_port_base()) as st:
            log("stack up at port base %d (home %s)" % (st.port_base, st.home))

            def body():
                pending, spare = part1(st, os.path.join(tmp, "sample"))
                part2(st, pending)
                part3(st, spare[:5])
                part4_5(st, spare[5:7])
                part6(st)
                part7(st)
                part8(st)
                part9(st, tmp)
            CK.run(body, st, services=("ledger", "dispatch"))
    return CK.report()


if __name__ == "__main__":
    sys.exit(main())
