#!/usr/bin/env python3
"""The policy file is reloaded on SIGHUP without a restart (standard library only).

    python3 tests/integration/test_policy_reload.py

1. A stack runs with a policy file of its own (a copy of the shipped one);
   the registry of a small sample is loaded and every household judged.
2. The file is replaced by a broken one (a rule naming an unknown fact) and
   every service gets SIGHUP: each logs that it refused the reload, with the
   file's line and the key path, and keeps running on the old policy.
3. The medical feed is loaded while matching and ingest get SIGHUP again and
   again (the broken file still in place): every accepted settlement is
   processed and every household's stored verdict is the old policy's, as
   computed here from the stored facts.
4. The file is replaced by a valid one with a 6,000 元 line and SIGHUP sent:
   the services log the reload, and matching judges every household again
   by the new line, with no new data (policy version, verdict and
   explanation); the households the new line changes show it.

Checks keep going after a failure; the exit status is 1 when any failed.
"""

import json
import os
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from lvpolicy import check, finish, gen_sample, line_of, verdict, write_policy  # noqa: E402
from lvstack import BUS_SERVICES as SERVICES, Stack, free_port_base  # noqa: E402

COUNTY = "620521"
SEED = 777
HOUSEHOLDS = 200
MEDICAL = 20000
def states(st):
    """hid -> (facts, stored verdict, policy version, explanation)."""
    rows = st.psql("SELECT s.household_id, h.household_type, s.income_fen, s.members, s.rigid_fen, "
                   "s.in_scope, coalesce(s.category, ''), coalesce(s.grade, ''), s.policy_version, "
                   "s.explanation FROM household_state s JOIN household h USING (household_id)")
    out = {}
    for hid, htype, inc, mem, rig, scope, cat, grade, ver, ex in rows:
        out[hid] = ((int(inc), int(mem), int(rig), htype == "脱贫户"),
                    (scope == "t", cat or None, grade or None), ver, ex)
    return out


def mismatches(st, line, version, only=None):
    bad = []
    for hid, (facts, stored, ver, _) in states(st).items():
        if only is not None and hid not in only:
            continue
        want = verdict(*facts, line)
        if stored != want or ver != version:
            bad.append((hid, facts, stored, ver, want))
    return bad


def edited(edit):
    """The shipped version, changed by edit(v) in place."""
    def versions(v0):
        edit(v0)
        return [v0]
    return versions


def hup(st, services):
    """SIGHUP to each service's processes: its urgent lane's too, if it has one."""
    for svc in services:
        for name in (svc, svc + "-urgent"):
            path = os.path.join(st.home, "run", "levee-%s.pid" % name)
            if name == svc or os.path.exists(path):
                with open(path) as f:
                    os.kill(int(f.read().strip()), signal.SIGHUP)


def run(st, tmp, policy):
    print("\n== 1. registry loaded under the shipped policy")
    out = os.path.join(tmp, "sample")
    gen_sample(out, HOUSEHOLDS, MEDICAL, SEED, COUNTY)
    st.levee("load", "registry", os.path.join(out, "registry.csv"), timeout=300)
    st.levee("wait-idle", "--timeout", "300", timeout=320)
    st.wait_for(lambda: int(st.scalar("SELECT count(*) FROM household_state")) == HOUSEHOLDS,
                timeout=120, what="every household judged")

    print("\n== 2. a broken policy file is refused, the old one kept")

    def broken(v):
        v["rules"]["grade"][0]["when"] = "in_scope and incme < line * members"
    write_policy(policy, edited(broken))
    line = line_of(policy, "incme")
    hup(st, SERVICES)
    for svc in SERVICES:
        log = st.wait_for(lambda: "policy reload refused" in st.log(svc) and st.log(svc), timeout=60,
                          what="%s refuses the reload" % svc)
        check("keeping the old one" in log and "line %d, at versions[0].rules.grade[0].when" % line in log
              and "incme" in log, "%s logs why, with line %d and the key path" % (svc, line),
              [l for l in log.splitlines() if "reload" in l][-1:])
    status = st.status()
    check(all("levee-%s" % s in status and "running" in status.split("levee-%s" % s)[1].split("\n")[0]
              for s in SERVICES), "every service still runs", status)

    print("\n== 3. work in flight while SIGHUP keeps coming")
    stop = threading.Event()
    sent = [0]

    def keep_hupping():
        while not stop.is_set():
            try:
                hup(st, SERVICES)
                sent[0] += 1
            except OSError:
                pass
            time.sleep(0.02)
    t = threading.Thread(target=keep_hupping)
    t.start()
    try:
        doc = json.loads(st.levee("load", "medical", os.path.join(out, "medical.csv"), "--json",
                                  timeout=300).stdout)
        st.levee("wait-idle", "--timeout", "300", timeout=320)
    finally:
        stop.set()
        t.join()
    print("  %d rounds of SIGHUP during the load" % sent[0])
    check(doc["status"] == "done" and doc["accepted"] == MEDICAL, "the medical feed is accepted whole",
          doc)
    st.wait_for(lambda: int(st.scalar("SELECT count(*) FROM medical_expense")) == MEDICAL, timeout=120,
                what="every settlement processed")
    check(int(st.scalar("SELECT count(*) FROM medical_expense")) == MEDICAL,
          "every accepted settlement is processed (%d)" % MEDICAL)
    bad = mismatches(st, 520000, "2024.1")
    check(not bad, "every household's verdict is the old policy's (5,200 元, 2024.1)", bad[:3])

    print("\n== 4. a valid new file is taken on SIGHUP")
    reloads = {svc: st.log(svc).count("policy reloaded") for svc in SERVICES}

    # Households the new line changes, found before the switch.
    before = states(st)
    movers = [hid for hid, (facts, stored, _, _) in before.items()
              if verdict(facts[0], facts[1], facts[2], facts[3], 600000) != stored]
    check(len(movers) >= 3, "the sample has households the new line would change (%d)" % len(movers))

    def raised(v):
        v["version"] = "2024.1-raised"
        v["income_line_fen"] = 600000
    write_policy(policy, edited(raised))
    hup(st, SERVICES)
    for svc in SERVICES:
        st.wait_for(lambda: st.log(svc).count("policy reloaded") > reloads[svc], timeout=60,
                    what="%s reloads" % svc)
    check(True, "every service logs the reload")
    # The switch: matching judges every household again by the new version,
    # with no new data needed.
    st.wait_for(lambda: st.scalar("SELECT count(*) FROM household_state "
                                  "WHERE policy_version <> '2024.1-raised'") == "0",
                timeout=120, what="every household judged by 2024.1-raised")
    bad = mismatches(st, 600000, "2024.1-raised")
    check(not bad, "after the reload every household follows the 6,000 元 line and names the version",
          bad[:3])
    after = states(st)
    ex = [after[h][3] for h in movers if "< 600000 * " in after[h][3]]
    check(movers and len(ex) == len(movers), "the changed households' explanations show the new line",
          after[movers[0]][3] if movers else None)


def main():
    def body():
        with tempfile.TemporaryDirectory(prefix="levee-reload-") as tmp:
            policy = os.path.join(tmp, "policy.json")
            write_policy(policy, edited(lambda v: None))
            st = Stack(free_port_base())
            st.env["LEVEE_POLICY"] = policy
            with st:
                run(st, tmp, policy)
    return finish(body)


if __name__ == "__main__":
    sys.exit(main())
