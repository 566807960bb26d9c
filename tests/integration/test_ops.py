#!/usr/bin/env python3
"""Operations test: what ops teams rely on during the peak.

1. Every service serves GET /metrics in the Prometheus text format (checked
   line by line: HELP/TYPE before samples, valid names and labels, histogram
   buckets cumulative and ending in +Inf = _count) and GET /healthz (200 with
   a JSON status); other paths answer 404 and other methods 405, in JSON.
2. After a registry and a medical feed pass through, the figures say so:
   matching and dispatch handled messages with outcome ok, handler latency
   histograms have observations, and the ledger's fund balance gauge equals
   `levee funds`.
3. A Postgres outage: /healthz turns 503 (postgres: down) while it lasts,
   the services stay up and answer 200 again once Postgres is back, and
   work sent during the outage is done afterwards.
4. Logs are one JSON object per line with no unmasked ID number; SIGTERM
   stops a service cleanly (its log ends with "stopping").
5. A message that keeps failing while the database answers (a trigger
   raises a resource error for one household) is dead-lettered after
   LEVEE_MAX_ATTEMPTS tries with its reason, instead of blocking the queue:
   later alerts go through; `levee dead-letters` lists it; once the cause
   is removed, `levee replay` sends it again and the case opens; a second
   replay changes nothing.

Standard library only. Prints every check; exits 1 if any check failed.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lvstack import BUS_SERVICES, ROOT, SERVICES, Checks, Stack, free_port_base, wait_for  # noqa: E402

PLACE = {s: i for i, s in enumerate(BUS_SERVICES)}
CK = Checks("ops")
log = CK.log


def http(port, path, method="GET"):
    """(status, content type, body text) of a request to 127.0.0.1:port."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                 data=b"x" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode("utf-8")


NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABELS = r'(\{(%s="(?:[^"\\\n]|\\.)*")(,%s="(?:[^"\\\n]|\\.)*")*\})?' % (NAME, NAME)
SAMPLE = re.compile(r"^(%s)%s (-?[0-9.e+-]+|\+Inf|NaN)$" % (NAME, LABELS))


def parse_metrics(text):
    """{(name, labels text): value}, raising ValueError on a malformed line."""
    types, out = {}, {}
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            if name in types:
                raise ValueError("line %d: a second TYPE for %s" % (n, name))
            types[name] = kind
            continue
        m = SAMPLE.match(line)
        if not m:
            raise ValueError("line %d: not a sample: %r" % (n, line))
        name = m.group(1)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in types and base not in types:
            raise ValueError("line %d: %s before its TYPE" % (n, name))
        labels = line[len(name):line.rindex(" ")]
        out[(name, labels)] = float(m.group(m.lastindex))
    return types, out


def check_histograms(types, samples, svc):
    """Each histogram series: buckets non-decreasing, +Inf equals _count."""
    bad = []
    for name, kind in types.items():
        if kind != "histogram":
            continue
        series = {}
        for (n, labels), v in samples.items():
            if n == name + "_bucket":
                key = re.sub(r',?le="[^"]*"', "", labels)
                le = re.search(r'le="([^"]*)"', labels).group(1)
                series.setdefault(key, []).append((float("inf") if le == "+Inf" else float(le), v))
        for key, buckets in series.items():
            buckets.sort()
            counts = [v for _, v in buckets]
            total = samples.get((name + "_count", key.replace("{}", "")))
            if counts != sorted(counts) or buckets[-1][0] != float("inf") or counts[-1] != total:
                bad.append((name, key, buckets, total))
    CK.ok(not bad, "%s: histogram buckets are cumulative and +Inf = _count" % svc, bad[:2])


def metric(samples, name, **labels):
    for (n, text), v in samples.items():
        if n == name and all('%s="%s"' % kv in text for kv in labels.items()):
            return v
    return None


def part1_2(st, sample):
    log("part 1-2: /metrics and /healthz on every service, after a feed")
    for feed in ("registry", "medical"):
        st.levee("load", feed, os.path.join(sample, feed + ".csv"), timeout=300)
    st.levee("wait-idle", "--timeout", "180", timeout=200)
    funds = json.loads(st.levee("--json", "funds").stdout)
    special = [f for f in funds if f["fund_id"] == "special"][0]
    for svc in BUS_SERVICES:
        port = st.port_base + 15 + PLACE[svc]
        status, ctype, body = http(port, "/metrics")
        CK.eq(status, 200, "%s: GET /metrics" % svc)
        CK.ok(ctype.startswith("text/plain; version=0.0.4"), "%s: Prometheus content type" % svc, ctype)
        try:
            types, samples = parse_metrics(body)
            CK.ok(True, "%s: every line of /metrics parses" % svc)
        except ValueError as e:
            CK.ok(False, "%s: every line of /metrics parses" % svc, str(e))
            continue
        check_histograms(types, samples, svc)
        CK.ok((metric(samples, "levee_loop_turns_total", service=svc) or 0) > 0,
              "%s: levee_loop_turns_total counts the loop" % svc)
        CK.ok(metric(samples, "levee_relay_inflight", service=svc) is not None,
              "%s: levee_relay_inflight present" % svc)
        status, ctype, body = http(port, "/healthz")
        CK.eq((status, json.loads(body).get("status")), (200, "ok"), "%s: GET /healthz" % svc)
        CK.eq(http(port, "/nowhere")[0], 404, "%s: an unknown path is 404" % svc)
        status, ctype, body = http(port, "/metrics", method="POST")
        CK.eq((status, "error" in json.loads(body)), (405, True), "%s: POST is 405 with a JSON error" % svc)
        if svc in ("matching", "dispatch"):
            ok = sum(v for (n, t), v in samples.items()
                     if n == "levee_messages_total" and 'outcome="ok"' in t)
            CK.ok(ok > 0, "%s: levee_messages_total{outcome=ok} > 0 after the feeds" % svc, ok)
            obs = sum(v for (n, t), v in samples.items() if n == "levee_handle_seconds_count")
            CK.eq(obs >= ok, True, "%s: every handled message has a latency observation" % svc)
        if svc == "ledger":
            got = wait_for(lambda: metric(parse_metrics(http(port, "/metrics")[2])[1],
                                          "levee_fund_balance_fen", account="fund:special"),
                           timeout=30, what="the fund gauge")
            CK.eq(int(got), int(special["balance_fen"]), "ledger: levee_fund_balance_fen = levee funds")


def healthz(st, svc):
    status, _, body = http(st.port_base + 15 + PLACE[svc], "/healthz")
    return status, json.loads(body)


def part3(st, sample):
    log("part 3: a Postgres outage")
    st.levee("stop", "postgres")
    for svc in ("matching", "dispatch", "ledger"):
        try:
            got = wait_for(lambda: healthz(st, svc)[0] == 503 and healthz(st, svc), timeout=60,
                           what="%s unhealthy" % svc)
            CK.eq(got[1].get("postgres"), "down", "%s: /healthz 503 while Postgres is down" % svc)
        except TimeoutError as e:
            CK.ok(False, "%s: /healthz 503 while Postgres is down" % svc, str(e))
    st.levee("start", "postgres")
    for svc in BUS_SERVICES:
        try:
            wait_for(lambda: healthz(st, svc)[0] == 200, timeout=90, what="%s healthy" % svc)
            CK.ok(True, "%s: /healthz 200 again once Postgres is back" % svc)
        except TimeoutError as e:
            CK.ok(False, "%s: /healthz 200 again once Postgres is back" % svc, str(e))
    alive = st.status()
    CK.ok(all("levee-%s" % s in alive for s in SERVICES), "every service survived the outage", alive)
    # Work after the outage goes through: 500 more settlements of known people.
    n0 = int(st.scalar("SELECT count(*) FROM medical_expense"))
    with open(os.path.join(sample, "medical.csv"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    more = os.path.join(sample, "medical-more.csv")
    with open(more, "w", encoding="utf-8") as f:
        f.write("\n".join([lines[0]] + [l.replace("YB", "YC", 1) for l in lines[1:501]]) + "\n")
    st.levee("load", "medical", more, timeout=300)
    st.levee("wait-idle", "--timeout", "180", timeout=200)
    n1 = int(st.scalar("SELECT count(*) FROM medical_expense"))
    CK.eq(n1 - n0, 500, "a feed loaded after the outage is matched (%d → %d settlements)" % (n0, n1))


def part4(st):
    log("part 4: logs and a clean stop")
    idnum = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")
    for svc in BUS_SERVICES:
        lines = [l for l in st.log(svc).splitlines() if l.strip()]
        bad = []
        for l in lines:
            try:
                if not isinstance(json.loads(l), dict):
                    bad.append(l)
            except ValueError:
                bad.append(l)
        CK.ok(lines and not bad, "%s: %d log lines, each one JSON object" % (svc, len(lines)), bad[:2])
        CK.ok(not any(idnum.search(l) for l in lines), "%s: no unmasked ID number in the log" % svc,
              [l for l in lines if idnum.search(l)][:2])
    st.stop("notify")
    last = [json.loads(l) for l in st.log("notify").splitlines() if l.strip()][-1]
    CK.ok("stopping" in json.dumps(last, ensure_ascii=False), "notify: SIGTERM → its log ends with stopping",
          last)
    CK.ok(re.search(r"levee-notify\s+stopped", st.status()), "notify is gone", st.status())


def big_bill(st, tmp, tag, households):
    """A medical file with one 100,000 元 self-paid bill per household."""
    path = os.path.join(tmp, "bill-%s.csv" % tag)
    rows = ["record_id,id_number,name,settle_date,total_cost,compliant_cost,reimbursed,self_paid"]
    for i, hid in enumerate(households):
        idn, name = st.psql("SELECT id_number, name FROM person WHERE household_id = :'h' "
                            "ORDER BY id_number LIMIT 1", {"h": hid})[0]
        rows.append("%s%04d,%s,%s,2026-10-30,120000.00,110000.00,10000.00,100000.00" % (tag, i, idn, name))
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
    return path


def has_case(st, hid):
    return st.scalar("SELECT count(*) FROM hcase WHERE household_id = :'h'", {"h": hid}) != "0"


def part5(st, tmp):
    log("part 5: a message that keeps failing is dead-lettered, then replayed")
    x, y = [r[0] for r in st.psql(
        "SELECT household_id FROM household h WHERE NOT EXISTS (SELECT 1 FROM hcase c "
        "WHERE c.household_id = h.household_id) ORDER BY household_id LIMIT 2")]
    st.psql("CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.household_id = '%s' THEN RAISE EXCEPTION 'test: disk full' "
            "USING ERRCODE = '53100'; END IF; RETURN NEW; END $$; "
            "CREATE TRIGGER test_refuse BEFORE INSERT ON timeline FOR EACH ROW "
            "EXECUTE FUNCTION test_refuse()" % x)
    st.levee("load", "medical", big_bill(st, tmp, "XB", [x]), timeout=120)
    try:
        row = wait_for(lambda: st.psql("SELECT id, consumer, reason FROM dead_letter "
                                       "WHERE consumer = 'dispatch'"), timeout=120,
                       what="the dead letter")[0]
        CK.ok("3" in row[2] and "failed" in row[2], "dispatch dead-lettered it after 3 tries, with the reason",
              row)
    except TimeoutError as e:
        CK.ok(False, "dispatch dead-lettered it after 3 tries, with the reason", str(e))
        return
    CK.ok(not has_case(st, x), "no case for %s while its alert is dead" % x)
    st.levee("load", "medical", big_bill(st, tmp, "YB9", [y]), timeout=120)
    try:
        wait_for(lambda: has_case(st, y), timeout=120, what="a case for %s" % y)
        CK.ok(True, "a later alert (household %s) goes through: the queue is not blocked" % y)
    except TimeoutError as e:
        CK.ok(False, "a later alert goes through: the queue is not blocked", str(e))
    listed = json.loads(st.levee("--json", "dead-letters", "--consumer", "dispatch").stdout)
    CK.eq([str(r["id"]) for r in listed], [row[0]], "levee dead-letters lists it")
    st.psql("DROP TRIGGER test_refuse ON timeline")
    cp = st.levee("--json", "replay", row[0], check=False)
    CK.eq((cp.returncode, json.loads(cp.stdout or "{}").get("status")), (0, "ok"),
          "levee replay %s once the cause is gone" % row[0])
    CK.ok(has_case(st, x), "and the case for %s opens" % x)
    cp = st.levee("--json", "replay", row[0], check=False)
    CK.eq((cp.returncode, json.loads(cp.stdout or "{}").get("status")), (0, "dup"),
          "a second replay is a no-op")
    CK.eq(st.scalar("SELECT count(*) FROM hcase WHERE household_id = :'h'", {"h": x}), "1",
          "one case, not two")


def main():
    with tempfile.TemporaryDirectory(prefix="levee-ops-") as tmp:
        sample = os.path.join(tmp, "sample")
        subprocess.run([os.path.join(ROOT, "scripts", "gen-sample"), "--households", "600", "--medical",
                        "4000", "--seed", "11", "--out", sample], check=True, stdout=subprocess.DEVNULL)
        os.environ["LEVEE_MAX_ATTEMPTS"] = "3"
        os.environ["LEVEE_RESEND_MS"] = "500"
        with Stack(free_port_base()) as st:
            log("stack up at port base %d" % st.port_base)

            def body():
                part1_2(st, sample)
                part3(st, sample)
                part5(st, tmp)
                part4(st)
            CK.run(body, st, tail=1500)
    return CK.report()


if __name__ == "__main__":
    sys.exit(main())
