#!/usr/bin/env python3
"""Crash test: kill -9 matching in the middle of a 200,000-row medical feed
and restart it; kill -9 ingest mid-file and let it resume; re-run the whole
import; the same for a 100,000-row education feed (a feed kept in a typed
table by ingest); kill -9 ledger and dispatch around approvals. The end
state (records, typed feed rows, households, cases, tasks, payouts,
balances, inbox) must equal a clean run's exactly.

Environment: LEVEE_CRASH_HOUSEHOLDS, LEVEE_CRASH_ROWS and
LEVEE_CRASH_FEED_ROWS change the size (defaults 5000, 200000 and 100000).
"""

import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lvstack import ROOT, Stack, free_port_base, wait_for  # noqa: E402

HOUSEHOLDS = int(os.environ.get("LEVEE_CRASH_HOUSEHOLDS", "5000"))
ROWS = int(os.environ.get("LEVEE_CRASH_ROWS", "200000"))
FEED_ROWS = int(os.environ.get("LEVEE_CRASH_FEED_ROWS", "100000"))
# The monthly sweep's timer would run at a moment that differs between the
# two runs: off here.
os.environ["LEVEE_SWEEP_CHECK_S"] = "0"
APPROVE = 6  # cases walked through to 县级审定 in both runs

# Each query is a fingerprint of one part of the end state: a count and an
# md5 over the rows in a fixed order. Times (when something happened) are
# left out: they differ between any two runs.
SNAPSHOT = {
    "records": "SELECT count(*), md5(coalesce(string_agg(source || '|' || record_id || '|' || rev "
               "|| '|' || coalesce(amount_fen::text, ''), ',' ORDER BY source, record_id, rev), '')) FROM record",
    "medical_expense": "SELECT count(*), md5(coalesce(string_agg(record_id || '|' || household_id || '|' "
                       "|| self_paid_fen || '|' || compliant_self_fen, ',' ORDER BY record_id), '')) "
                       "FROM medical_expense",
    "education": "SELECT count(*), md5(coalesce(string_agg(record_id || '|' || coalesce(household_id, '') || '|' "
                 "|| county || '|' || cost_fen || '|' || coalesce(aid_fen, -1) || '|' || coalesce(school, ''), "
                 "',' ORDER BY record_id), '')) FROM education_record",
    "unmatched": "SELECT count(*) FROM unmatched_record",
    "risk": "SELECT md5(coalesce(string_agg(household_id || '|' || coalesce(primary_risk, '') || '|' || "
            "coalesce(income_source, '') || '|' || house_collapsed, ',' ORDER BY household_id), '')) "
            "FROM household_state",
    "households": "SELECT count(*), md5(coalesce(string_agg(household_id || '|' || in_scope || '|' || "
                  "coalesce(grade, '') || '|' || coalesce(category, '') || '|' || risk_factors::text "
                  "|| '|' || income_fen || '|' || members || '|' || rigid_fen || '|' || pci_after_fen, "
                  "',' ORDER BY household_id), '')) FROM household_state",
    "alerts": "SELECT count(*), md5(coalesce(string_agg(household_id || '|' || grade || '|' || "
              "rigid_fen || '|' || trigger_record_id, ',' ORDER BY alert_id), '')) FROM alert",
    "cases": "SELECT count(*), md5(coalesce(string_agg(case_id || '|' || status || '|' || stage || '|' "
             "|| coalesce(grade, '') || '|' || coalesce(category, '') || '|' || risk_factors::text || '|' "
             "|| coalesce(income_fen, -1) || '|' || coalesce(rigid_fen, -1) || '|' || coalesce(members, -1), "
             "',' ORDER BY case_id), '')) FROM hcase",
    "tasks": "SELECT count(*), md5(coalesce(string_agg(task_id || '|' || kind || '|' || status || '|' "
             "|| coalesce(assignee, ''), ',' ORDER BY task_id), '')) FROM task",
    "payouts": "SELECT count(*), md5(coalesce(string_agg(payout_id || '|' || amount_fen || '|' || status || '|' "
               "|| coalesce(reason, ''), "
               "',' ORDER BY payout_id), '')) FROM payout",
    # Approval asks for one payout per kind (因学 per student): the cases
    # paid, and their 因病 payouts, one per approved case.
    "payout_cases": "SELECT count(DISTINCT case_id), count(*) FILTER (WHERE kind = 'illness') FROM payout",
    "transfers": "SELECT count(*), coalesce(sum(amount_fen), 0) FROM transfer",
    "balances": "SELECT string_agg(account_id || '=' || (credits_posted - debits_posted), ',' "
                "ORDER BY account_id) FROM account",
    "inbox": "SELECT count(*), md5(coalesce(string_agg(event_id || '|' || recipient, ',' "
             "ORDER BY event_id, recipient), '')) FROM inbox",
    "dead_letters": "SELECT count(*) FROM dead_letter",
}


def log(msg):
    print("[crash] %s" % msg, flush=True)


def snapshot(st):
    return {k: st.psql(q)[0] for k, q in SNAPSHOT.items()}


def settle(st, timeout=600):
    """Waits until no import runs, the outbox is empty and stays so."""
    st.levee("wait-idle", "--timeout", str(timeout), timeout=timeout + 30)
    # wait-idle sees an empty outbox between a consumer's commit and its own
    # outbox rows being relayed; require two quiet readings a second apart.
    quiet = 0
    deadline = time.monotonic() + timeout
    while quiet < 2:
        n = st.scalar("SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM import "
                      "WHERE status IN ('queued', 'running'))")
        quiet = quiet + 1 if n == "0" else 0
        if time.monotonic() > deadline:
            raise TimeoutError("the stack did not settle")
        time.sleep(1.0)


def load_nowait(st, source, path):
    out = st.levee("--json", "load", source, path, "--no-wait").stdout
    import json
    return json.loads(out)["import_id"]


def import_state(st, import_id):
    return st.psql("SELECT status, rows_done FROM import WHERE import_id = :'id'", {"id": import_id})[0]


def load_killing_ingest(st, source, path, rows):
    """Loads a feed, killing ingest with -9 once a fifth of it is committed;
    ingest resumes from the import's checkpoint when started again."""
    imp = load_nowait(st, source, path)
    wait_for(lambda: int(import_state(st, imp)[1]) >= rows // 5, timeout=300, interval=0.02,
             what="ingest part way")
    st.kill("ingest")
    status, done = import_state(st, imp)
    log("killed ingest at %s rows (%s import %s)" % (done, source, status))
    if status == "done":
        raise SystemExit("ingest finished before it could be killed: make the feed larger")
    return imp


def rerun(st, source, path):
    """Re-running an import adds nothing."""
    out = st.levee("--json", "load", source, path, timeout=900).stdout
    log("re-run of the %s import: %s" % (source, out.strip().replace("\n", " ")[:200]))
    settle(st)


def approve(st, crash):
    """Verifies and approves the first APPROVE cases (by case id); in the
    crash run, ledger and dispatch are killed around the approvals."""
    cases = [r[0] for r in st.psql("SELECT case_id FROM hcase ORDER BY case_id LIMIT %d" % APPROVE)]
    st.levee("investigator-add", "inv-a", "核查员甲", "620521")
    wait_for(lambda: st.scalar("SELECT count(*) FROM task WHERE assignee IS NULL") == "0",
             timeout=60, what="tasks assigned")
    # Added once inv-a holds every task: 抽样复核 goes to another investigator.
    st.levee("investigator-add", "inv-b", "核查员乙", "620521")
    for i, c in enumerate(cases):
        st.levee("task-result", c + "-V1", "--income", "6000", "--members", "3", "--rigid", "20000",
                 "--actor", "inv-a")
        if st.scalar("SELECT count(*) FROM task WHERE task_id = :'t'", {"t": c + "-V2"}) == "1":
            st.levee("task-result", c + "-V2", "--income", "6000", "--members", "3", "--rigid", "20000",
                     "--actor", "inv-b")
        st.levee("step", c, "deliberate", "pass", "--actor", "村委会")
        st.levee("step", c, "publicize", "pass", "--actor", "村委会")
    st.psql("UPDATE hcase SET publicity_end_ms = 0 WHERE status = 'publicizing'")
    wait_for(lambda: st.scalar("SELECT count(*) FROM hcase WHERE status = 'publicizing'") == "0",
             timeout=30, what="公示 ended")
    if crash:
        st.kill("dispatch")
        st.start("dispatch")
    for i, c in enumerate(cases):
        st.levee("step", c, "town_review", "pass", "--actor", "乡镇")
        if crash and i == 2:
            st.kill("ledger")
        st.levee("step", c, "county_approve", "pass", "--actor", "县乡村振兴局")
        if crash and i == 2:
            time.sleep(0.5)
            st.start("ledger")
    settle(st)
    # The fund manager pays every reservation in one batch; in the crash run
    # ledger is killed right after and the payment is repeated.
    st.levee("pay", "--all", "--region", "620521", "--actor", "资金管理员")
    if crash:
        st.kill("ledger")
        st.start("ledger")
        st.levee("pay", "--all", "--region", "620521", "--actor", "资金管理员")
    settle(st)
    st.levee("reconcile")


def load_feed(st, sample, source, rows, crash, kill_matching=False):
    """Loads a feed of the sample. In the crash run, ingest is killed with -9
    part way (and matching too, while it still has batches to consume), both
    are started again, and the import is re-run once done."""
    path = os.path.join(sample, source + ".csv")
    t0 = time.monotonic()
    if not crash:
        st.levee("load", source, path, timeout=900)
    else:
        imp = load_killing_ingest(st, source, path, rows)
        if kill_matching:
            wait_for(lambda: int(st.scalar("SELECT count(*) FROM consumed WHERE consumer = 'matching'")) >= 2,
                     timeout=300, interval=0.05, what="matching part way")
            st.kill("matching")
            log("killed matching after %s batches" %
                st.scalar("SELECT count(*) FROM consumed WHERE consumer = 'matching'"))
        st.start("ingest")   # resumes the import from its checkpoint
        if kill_matching:
            time.sleep(1.0)
            st.start("matching")
        wait_for(lambda: import_state(st, imp)[0] == "done", timeout=600, what="%s import done" % source)
    settle(st)
    log("%s feed through in %.1f s" % (source, time.monotonic() - t0))
    if crash:
        rerun(st, source, path)


def run(sample, crash):
    with Stack(free_port_base()) as st:
        log("%s run: stack up at port base %d" % ("crash" if crash else "clean", st.port_base))
        st.levee("load", "registry", os.path.join(sample, "registry.csv"), timeout=600)
        load_feed(st, sample, "medical", ROWS, crash, kill_matching=True)
        # A feed kept in a typed table by ingest.
        load_feed(st, sample, "education", FEED_ROWS, crash)
        approve(st, crash)
        return snapshot(st)


def main():
    with tempfile.TemporaryDirectory(prefix="levee-crash-") as tmp:
        subprocess.run([os.path.join(ROOT, "scripts", "gen-sample"), "--households", str(HOUSEHOLDS),
                        "--medical", str(ROWS), "--education", str(FEED_ROWS), "--seed", "11", "--dirty", "0.01",
                        "--out", tmp],
                       check=True)
        clean = run(tmp, crash=False)
        crashed = run(tmp, crash=True)
    bad = 0
    for k in SNAPSHOT:
        same = clean[k] == crashed[k]
        log("%-16s %s  clean=%s crash=%s" % (k, "same" if same else "DIFFERENT", clean[k], crashed[k]))
        bad += not same
    if (int(clean["cases"][0]) == 0 or clean["payout_cases"] != (str(APPROVE), str(APPROVE))
            or int(clean["education"][0]) == 0):
        log("the clean run opened %s cases and made %s payouts for %s cases: the test proves nothing"
            % (clean["cases"][0], clean["payouts"][0], clean["payout_cases"][0]))
        bad += 1
    if bad:
        log("FAIL: %d part(s) of the end state differ" % bad)
        return 1
    log("PASS: the crash run ends in the clean run's state")
    return 0


if __name__ == "__main__":
    sys.exit(main())
