#!/usr/bin/env python3
"""Notification channels of levee-notify on a private stack (standard library only).

    python3 tests/integration/test_notify.py

A real HTTP receiver (the SMS gateway side of a webhook) and a real SMTP
receiver run in this process on free ports. The receiver checks every
webhook's HMAC-SHA256 signature, answers 500 to the first attempts of each
delivery and 200 after, and drops a repeat of a delivery it accepted (by
X-Levee-Delivery), counting it.

1. channels and subscriptions through the CLI; bad input refused; no
   secret in the database.
2. routing: one Event of every kind (sent with `levee notify-test`) reaches
   exactly the recipients of its kind, in the inbox and per subscribed
   channel; the school comes from education_record, the household's address
   from its head's phone; an unknown kind is dead-lettered.
3. delivery: each webhook delivery accepted exactly once, signed, after
   retries with a growing backoff; the full phone only in the webhook's `to`;
   a permanently failing endpoint ends dead with the attempts and the last
   error as reason; a household without a phone is dead at once.
4. e-mail: headers (From, To, Date, Message-ID), RFC 2047 subject and the
   Chinese body, SMTP AUTH with the password from the environment.
5. rate limit: a channel limited to 4 per second never gets more in any
   second (counted from the receiver's timestamps), while a second
   levee-notify process delivers from the same table: the limit is a window
   in Redis that both share. The second process is running from the burst
   until the count, so it takes part in sections 2-4 too.
6. redelivery and kill -9: the same Event again (same and new message id)
   adds nothing; notify killed while delivering a burst, restarted: still
   exactly one accepted delivery per event and recipient.
7. the config is reloaded on SIGHUP (a bad file is refused and the old one
   kept); removing a channel dead-letters its pending deliveries.
"""

import base64
import copy
import email
import email.header
import email.utils
import hashlib
import hmac
import http.server
import json
import os
import re
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from lvstack import ROOT, Stack, StackError, free_port_base  # noqa: E402
from test_pipeline import Checks, id_check_char  # noqa: E402

HOOK_KEY = "hook-key-for-tests-only"
SMTP_USER, SMTP_PASSWORD = "levee", "smtp-password-for-tests-only"
FAIL_FIRST = 2          # the SMS receiver answers 500 to the first 2 attempts of a delivery
MAX_ATTEMPTS = 4
BACKOFF_BASE_MS = 300
RATE = 4                # the "fast" channel's limit per second
RATE_EVENTS = 12

REGION = "620521001001"
TOWN, COUNTY = REGION[:9], REGION[:6]
RATE_VILLAGE = "620521001002"
HEAD_PHONE = "13812345678"
HEAD_ID = "620521199001011" + "23"
HEAD_ID += id_check_char(HEAD_ID)
SCHOOLS = ("县第一中学", "县职业中学")

CK = Checks()
T0 = time.monotonic()


def section(title):
    print("\n== %s  [%.1f s]" % (title, time.monotonic() - T0), flush=True)


# ---- receivers ----------------------------------------------------------------

class Hooks:
    """What the HTTP receiver saw, per path."""

    def __init__(self):
        self.mu = threading.Lock()
        self.requests = []        # dicts: t, path, delivery, attempt, valid, body, status
        self.accepted = {}        # delivery id -> body (first accepted)
        self.repeats = 0          # requests for a delivery already accepted
        self.tries = {}           # delivery id -> attempts seen


def make_http(hooks):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(n)
            ts = self.headers.get("X-Levee-Timestamp", "")
            want = "sha256=" + hmac.new(HOOK_KEY.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
            valid = hmac.compare_digest(want, self.headers.get("X-Levee-Signature", "")) and \
                ts.isdigit() and abs(int(ts) - time.time() * 1000) < 300000
            delivery = self.headers.get("X-Levee-Delivery", "")
            try:
                body = json.loads(raw.decode("utf-8"))
            except ValueError:
                body = None
            path = self.path
            with hooks.mu:
                tries = hooks.tries.get(delivery, 0) + 1
                hooks.tries[delivery] = tries
                if not valid:
                    status = 401
                elif path == "/dead":
                    status = 500
                elif path == "/sms" and tries <= FAIL_FIRST:
                    status = 500
                else:
                    status = 200
                    if delivery in hooks.accepted:
                        hooks.repeats += 1     # a repeat: answered 200, dropped
                    else:
                        hooks.accepted[delivery] = body
                hooks.requests.append({"t": time.monotonic(), "path": path, "delivery": delivery,
                                       "attempt": self.headers.get("X-Levee-Attempt"), "valid": valid,
                                       "body": body, "status": status})
            if path == "/sms":
                time.sleep(0.03)  # a little time in flight, so a kill can land mid-request
            out = b"gateway down" if status == 500 else b"ok"
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
            except OSError:
                pass  # the sender was killed mid-request: it will try again

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128  # the default backlog of 5 drops connections under a burst

    return Server(("127.0.0.1", 0), Handler)


class Mailbox:
    def __init__(self):
        self.mu = threading.Lock()
        self.messages = []   # dicts: user, mail_from, rcpt, data (bytes)
        self.auth_failures = 0


def make_smtp(box):
    """A minimal SMTP server: EHLO with AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, QUIT."""

    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line):
            self.wfile.write((line + "\r\n").encode())
            self.wfile.flush()

        def check_auth(self, b64):
            try:
                parts = base64.b64decode(b64).split(b"\0")
            except ValueError:
                return None
            if len(parts) == 3 and parts[1].decode() == SMTP_USER and parts[2].decode() == SMTP_PASSWORD:
                return SMTP_USER
            return None

        def handle(self):
            user, mail_from, rcpt = None, None, []
            self.reply("220 levee-test ESMTP")
            while True:
                line = self.rfile.readline(4096)
                if not line:
                    return
                cmd = line.decode("utf-8", "replace").rstrip("\r\n")
                verb = cmd.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    self.wfile.write(b"250-levee-test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n")
                    self.wfile.flush()
                elif verb == "HELO":
                    self.reply("250 levee-test")
                elif verb == "AUTH":
                    args = cmd.split(" ")
                    if args[1].upper() == "PLAIN":
                        if len(args) < 3:
                            self.reply("334 ")
                            args.append(self.rfile.readline().decode().strip())
                        user = self.check_auth(args[2])
                    elif args[1].upper() == "LOGIN":
                        self.reply("334 VXNlcm5hbWU6")
                        u = base64.b64decode(self.rfile.readline().strip()).decode()
                        self.reply("334 UGFzc3dvcmQ6")
                        p = base64.b64decode(self.rfile.readline().strip()).decode()
                        user = u if (u, p) == (SMTP_USER, SMTP_PASSWORD) else None
                    if user:
                        self.reply("235 2.7.0 Authentication successful")
                    else:
                        with box.mu:
                            box.auth_failures += 1
                        self.reply("535 5.7.8 Authentication credentials invalid")
                elif verb == "MAIL":
                    if not user:
                        self.reply("530 5.7.0 Authentication required")
                        continue
                    mail_from, rcpt = cmd[10:].strip(), []
                    self.reply("250 OK")
                elif verb == "RCPT":
                    rcpt.append(cmd[8:].strip())
                    self.reply("250 OK")
                elif verb == "DATA":
                    self.reply("354 End data with <CR><LF>.<CR><LF>")
                    data = []
                    while True:
                        ln = self.rfile.readline(65536)
                        if not ln or ln in (b".\r\n", b".\n"):
                            break
                        data.append(ln[1:] if ln.startswith(b"..") else ln)
                    with box.mu:
                        box.messages.append({"user": user, "mail_from": mail_from, "rcpt": rcpt,
                                             "data": b"".join(data)})
                    self.reply("250 OK queued")
                elif verb in ("RSET", "NOOP"):
                    self.reply("250 OK")
                elif verb == "QUIT":
                    self.reply("221 Bye")
                    return
                else:
                    self.reply("502 Command not implemented")

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 128

        def handle_error(self, request, client_address):
            pass  # a sender killed mid-session; it will try again

    return Server(("127.0.0.1", 0), Handler)


def serve(srv):
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


# ---- the stack ------------------------------------------------------------------

class T:
    def __init__(self, st, hooks, box, tmp, cfg_path, cfg):
        self.st, self.hooks, self.box, self.tmp = st, hooks, box, tmp
        self.cfg_path, self.cfg = cfg_path, cfg

    def j(self, *args):
        return json.loads(self.st.levee(*(list(args) + ["--json"])).stdout)

    def rc(self, *args):
        cp = self.st.levee(*args, check=False)
        return cp.returncode, cp.stdout + cp.stderr

    def event(self, kind, event_id, region=REGION, household="H001", assignee="inv-1", extra=()):
        args = ["notify-test", kind, region, "--event-id", event_id, "--household", household,
                "--case", household + "-1", "--assignee", assignee, "--grade", "red",
                "--title", "%s: 户 %s" % (kind, household),
                "--body", "户主 %s 电话 %s, 请关注。" % (HEAD_ID, HEAD_PHONE)] + list(extra)
        return self.rc(*args)

    def rows(self, sql, params=None):
        return self.st.psql(sql, params)

    def settle(self, timeout=90):
        """Waits until no delivery is pending."""
        self.st.wait_for(lambda: self.st.scalar(
            "SELECT count(*) FROM notify_delivery WHERE status = 'pending'") == "0",
            timeout=timeout, interval=0.3, what="no pending delivery")

    def deliveries(self, where="true", params=None):
        return self.rows("SELECT event_id, recipient, channel_id, status, attempts, address, "
                         "coalesce(last_error, ''), delivery_id FROM notify_delivery WHERE " + where +
                         " ORDER BY event_id, recipient, channel_id", params)

    # -- 1 ----------------------------------------------------------------------

    def setup(self, http_port, smtp_port):
        section("1. channels, subscriptions, seed data")
        st = self.st
        secret_file = os.path.join(self.tmp, "down.key")
        with open(secret_file, "w") as f:
            f.write(HOOK_KEY + "\n")
        base = "http://127.0.0.1:%d" % http_port
        for args in (("sms", "webhook", base + "/sms", "--secret-env", "LEVEE_TEST_HOOK_KEY"),
                     ("mail", "email", "smtp://127.0.0.1:%d" % smtp_port, "--from", "levee@county.example",
                      "--user", SMTP_USER, "--secret-env", "LEVEE_TEST_SMTP_PASSWORD"),
                     ("down", "webhook", base + "/dead", "--secret-file", secret_file),
                     ("fast", "webhook", base + "/rate", "--secret-env", "LEVEE_TEST_HOOK_KEY",
                      "--rate", str(RATE))):
            rc, out = self.rc("channel", "add", *args)
            CK.eq(rc, 0, "channel add %s %s" % (args[0], args[1]))
        for who, ch, addr in (("household:*", "sms", "@phone"), ("town:" + TOWN, "sms", "13900000001"),
                              ("village:" + REGION, "mail", "cadre@village.example"),
                              ("school:*", "mail", "school@edu.example"),
                              ("investigator:inv-1", "sms", "13900000003"),
                              ("county:" + COUNTY, "down", "13900000009"),
                              ("village:" + RATE_VILLAGE, "fast", "13900000002")):
            rc, out = self.rc("subscribe", who, ch, addr)
            CK.eq(rc, 0, "subscribe %s %s" % (who, ch))
        bad = (("subscribe", "mayor:1", "sms", "139"), ("subscribe", "town:" + TOWN, "sms", "@phone"),
               ("subscribe", "village:" + REGION, "mail", "not-an-address"),
               ("subscribe", "town:" + TOWN, "nosuch", "1"),
               ("channel", "add", "x", "webhook", base + "/x"),
               ("channel", "add", "x", "webhook", "http://user:pw@127.0.0.1/x", "--secret-env", "K"),
               ("channel", "add", "inbox", "webhook", base, "--secret-env", "K"),
               ("channel", "add", "x", "email", "smtp://127.0.0.1:1", "--user", "u"),
               ("deliveries", "--status", "lost"))
        for args in bad:
            rc, out = self.rc(*args)
            CK.check(rc in (1, 2), "refused: levee %s" % " ".join(args), out)
        chans = {c["channel_id"]: c for c in self.j("channel", "list")}
        CK.eq(sorted(chans), ["down", "fast", "mail", "sms"], "channel list")
        CK.eq(chans["sms"]["secret_ref"], "env:LEVEE_TEST_HOOK_KEY", "a channel names where its secret is")
        dump = "".join(",".join(r) for r in self.rows("SELECT * FROM notify_channel"))
        CK.check(HOOK_KEY not in dump and SMTP_PASSWORD not in dump, "no secret stored in the database")
        subs = self.j("subscriptions")
        CK.check(any(s["recipient"] == "town:" + TOWN and s["address"] == "139****0001" for s in subs),
                 "subscriptions list masks phones", subs)

        # A household with a head and a phone, one without a phone, two schools.
        st.psql("INSERT INTO household (household_id, region_code, county, household_type, updated_ms) "
                "VALUES ('H001', :'r', :'c', '一般农户', 0), ('H002', :'r', :'c', '一般农户', 0);"
                "INSERT INTO person (id_number, household_id, county, name, relation, phone, updated_ms) "
                "VALUES (:'id', 'H001', :'c', '张三', '户主', :'ph', 0)",
                {"r": REGION, "c": COUNTY, "id": HEAD_ID, "ph": HEAD_PHONE})
        # Three students' records from the education feed (两所学校).
        st.psql("INSERT INTO education_record (record_id, household_id, county, id_number, name, "
                "event_ms, stage, cost_fen, school) VALUES "
                "('E1', 'H001', :'c', 's1', '张一', 0, '高中', 300000, :'a'), "
                "('E2', 'H001', :'c', 's2', '张二', 0, '初中', 100000, :'a'), "
                "('E3', 'H001', :'c', 's3', '张三', 0, '大学', 800000, :'b')",
                {"a": SCHOOLS[0], "b": SCHOOLS[1], "c": COUNTY})

    # -- 2 ----------------------------------------------------------------------

    ROUTES = {
        "case_opened": {("town", "sms"), ("village", "mail")},
        "case_approved": {("town", "sms"), ("village", "mail"), ("school0", "mail"), ("school1", "mail"),
                          ("household", "sms")},
        "case_rejected": {("village", "mail")},
        "task_assigned": {("investigator", "sms")},
        "task_overdue": {("investigator", "sms"), ("county", "down")},
        "payout_posted": {("household", "sms"), ("town", "sms")},
        "red_alert": {("county", "down")},
        "case_eliminated": {("town", "sms"), ("village", "mail")},
        "visit_reminder": {("village", "mail")},
    }
    WHO = {"town": "town:" + TOWN, "village": "village:" + REGION, "county": "county:" + COUNTY,
           "investigator": "investigator:inv-1", "household": "household:H001",
           "school0": "school:" + SCHOOLS[0], "school1": "school:" + SCHOOLS[1]}

    def routing(self):
        section("2. routing per event kind")
        for kind in self.ROUTES:
            rc, out = self.event(kind, "ev-" + kind)
            CK.check(rc == 0, "notify-test %s accepted" % kind, out)
        for kind, want in self.ROUTES.items():
            inbox = {r[0] for r in self.rows("SELECT recipient FROM inbox WHERE event_id = :'e'",
                                             {"e": "ev-" + kind})}
            CK.eq(inbox, {self.WHO[w] for w, _ in want}, "%s: inbox recipients" % kind)
            got = {(r[1], r[2]) for r in self.deliveries("event_id = :'e'", {"e": "ev-" + kind})}
            CK.eq(got, {(self.WHO[w], c) for w, c in want}, "%s: deliveries per recipient and channel" % kind)
        names = dict(self.rows("SELECT recipient, recipient_name FROM inbox WHERE event_id = 'ev-case_approved'"))
        CK.eq(names.get("town:" + TOWN), TOWN + " 乡镇民政办", "the town's 民政办 by name")
        hh = self.deliveries("event_id = 'ev-case_approved' AND recipient = 'household:H001'")
        CK.check(hh and hh[0][5] == HEAD_PHONE, "the household is reached at its head's phone", hh)
        rc, out = self.event("no_such_kind", "ev-unknown")
        CK.eq(rc, 1, "an event kind without a route is refused")
        CK.check(self.st.scalar("SELECT reason FROM dead_letter WHERE consumer = 'notify' AND msg_id = 'ev-unknown'")
                 or False, "... and dead-lettered with its reason")
        rc, out = self.event("task_assigned", "ev-noassignee", assignee="")
        CK.eq(rc, 1, "task_assigned without an assignee is refused (no recipient)")
        # A household without a phone: its delivery is dead at once, with the reason.
        rc, out = self.event("payout_posted", "ev-nophone", household="H002")
        nophone = self.deliveries("event_id = 'ev-nophone' AND recipient = 'household:H002'")
        CK.check(rc == 0 and nophone and nophone[0][3] == "dead" and "no phone" in nophone[0][6],
                 "a household without a phone: dead at once, reason given", nophone)
        # Masking: the inbox holds no full ID number or phone.
        leaks = [r for r in self.rows("SELECT title || ' ' || body FROM inbox") if HEAD_ID in r[0] or HEAD_PHONE in r[0]]
        CK.check(not leaks, "no full ID number or phone in the inbox", leaks[:2])
        masked = self.st.scalar("SELECT body FROM inbox WHERE event_id = 'ev-case_opened' LIMIT 1") or ""
        CK.check(HEAD_ID[:6] + "********" + HEAD_ID[14:] in masked and "138****5678" in masked,
                 "ID and phone masked in the inbox text", masked)

    # -- 3 ----------------------------------------------------------------------

    def delivery(self):
        section("3. webhook delivery: signature, retries, backoff, dead letters")
        self.settle()
        rows = self.deliveries("event_id LIKE 'ev-%'")
        sms = [r for r in rows if r[2] == "sms" and r[0] != "ev-nophone"]
        CK.check(sms and all(r[3] == "sent" for r in sms), "every SMS delivery sent (%d)" % len(sms),
                 [r for r in sms if r[3] != "sent"])
        CK.check(all(r[4] == str(FAIL_FIRST + 1) for r in sms),
                 "each took %d attempts (the receiver failed the first %d)" % (FAIL_FIRST + 1, FAIL_FIRST),
                 [(r[0], r[1], r[4]) for r in sms])
        with self.hooks.mu:
            reqs = list(self.hooks.requests)
            accepted = dict(self.hooks.accepted)
        CK.check(reqs and all(r["valid"] for r in reqs), "every webhook request carries a valid HMAC signature",
                 [r for r in reqs if not r["valid"]][:2])
        ids = {r[7] for r in sms}
        CK.eq({d for d in accepted if d in ids}, ids, "the receiver accepted each SMS delivery")
        per = {}
        for r in reqs:
            if r["delivery"] in ids:
                per.setdefault(r["delivery"], []).append(r)
        CK.check(all(len(v) == FAIL_FIRST + 1 for v in per.values()),
                 "no delivery sent again after it was accepted", {k: len(v) for k, v in per.items()})
        CK.check(all([x["attempt"] for x in v] == ["1", "2", "3"] for v in per.values()),
                 "X-Levee-Attempt counts 1, 2, 3 under one X-Levee-Delivery id")
        # Each wait is at least its backoff (base, then twice the base); late
        # ticks on a busy machine only lengthen waits, so the growth is
        # checked on the means.
        gaps = [(v[1]["t"] - v[0]["t"], v[2]["t"] - v[1]["t"]) for v in per.values() if len(v) == 3]
        base = BACKOFF_BASE_MS / 1000
        CK.check(gaps and all(g1 >= 0.95 * base and g2 >= 0.95 * 2 * base for g1, g2 in gaps),
                 "no retry before its backoff: %.1f s, then %.1f s" % (base, 2 * base),
                 ["%.2f/%.2f" % g for g in gaps])
        if gaps:
            m1, m2 = (sum(g[i] for g in gaps) / len(gaps) for i in (0, 1))
            # The lower bounds above already fail a backoff that does not
            # double; one late scan on a loaded machine can stretch the first
            # waits, so the means are only asked to grow.
            CK.check(m2 > m1, "the backoff grows (mean waits %.2f s, then %.2f s)" % (m1, m2))
        body = next((accepted[r[7]] for r in sms if r[0] == "ev-case_approved" and r[1] == "household:H001"), None)
        CK.check(body and body.get("to") == HEAD_PHONE, "the SMS body carries the full phone in 'to'", body)
        CK.check(body and HEAD_PHONE not in body.get("text", "") and HEAD_ID not in body.get("text", "")
                 and "您家 (户 H001)" in body.get("text", ""),
                 "... and a masked, household-worded text", body and body.get("text"))
        CK.check(body and body.get("kind") == "case_approved" and body.get("household_id") == "H001"
                 and body.get("delivery_id") in ids, "the body names kind, household and delivery id", body)
        dead = [r for r in rows if r[2] == "down"]
        CK.check(len(dead) == 2 and all(r[3] == "dead" and r[4] == str(MAX_ATTEMPTS) for r in dead),
                 "a permanently failing endpoint: dead after %d attempts" % MAX_ATTEMPTS, dead)
        CK.check(dead and all("HTTP 500" in r[6] and "gave up after %d attempts" % MAX_ATTEMPTS in r[6] for r in dead),
                 "... with the last error as reason", [r[6] for r in dead])
        # A row whose last allowed attempt never got an answer (the sender was
        # killed during it) is dead-lettered, not tried once more.
        self.st.psql("INSERT INTO notify_delivery (delivery_id, event_id, recipient, channel_id, county, kind, "
                     "address, subject, body, status, attempts, next_attempt_ms, last_error, created_ms) VALUES "
                     "('d-exhausted', 'ev-exhausted', :'t', 'sms', :'c', 'case_opened', '13900000001', '', 'x', "
                     "'pending', :'n', 0, 'HTTP 500: gateway down', 0)",
                     {"t": "town:" + TOWN, "c": COUNTY, "n": str(MAX_ATTEMPTS)})
        try:
            self.st.wait_for(lambda: self.st.scalar("SELECT status FROM notify_delivery "
                                                    "WHERE delivery_id = 'd-exhausted'") == "dead", timeout=20)
        except TimeoutError:
            pass
        ex = self.deliveries("delivery_id = 'd-exhausted'")
        with self.hooks.mu:
            tried = "d-exhausted" in self.hooks.tries
        CK.check(ex and ex[0][3] == "dead" and "the last one unanswered" in ex[0][6] and ex[0][4] == str(MAX_ATTEMPTS)
                 and not tried, "attempts used up by a crash: dead-lettered, not sent again", ex)
        listed = self.j("deliveries", "--status", "dead")
        CK.check(any(d["channel_id"] == "down" and "HTTP 500" in (d["reason"] or "") for d in listed)
                 and all(d["status"] == "dead" for d in listed),
                 "levee deliveries --status dead lists them with reasons", listed[:2])
        text = self.st.levee("deliveries", "--status", "dead").stdout
        CK.check("HTTP 500" in text and HEAD_PHONE not in text, "the text listing shows reasons, phones masked")
        log = self.st.log("notify")
        CK.check(HEAD_PHONE not in log and HEAD_ID not in log and HOOK_KEY not in log,
                 "no full phone, ID number or secret in notify's log")

    # -- 4 ----------------------------------------------------------------------

    def mail(self):
        section("4. e-mail over SMTP")
        with self.box.mu:
            msgs = list(self.box.messages)
            auth_failures = self.box.auth_failures
        CK.eq(auth_failures, 0, "SMTP AUTH with the password from the environment")
        parsed = [(m, email.message_from_bytes(m["data"])) for m in msgs]
        cadre = [p for m, p in parsed if m["rcpt"] == ["<cadre@village.example>"]]
        opened = [p for p in cadre if "新增监测识别对象" in self.subject(p)]
        CK.eq(len(opened), 1, "the village cadre got one e-mail for case_opened")
        if opened:
            p = opened[0]
            raw = p["Subject"]
            CK.check("=?UTF-8?B?" in raw and all(ord(c) < 128 for c in raw), "Subject is RFC 2047 encoded", raw)
            CK.eq(self.subject(p), "【防返贫监测】新增监测识别对象: 户 H001", "Subject decodes to the Chinese template")
            CK.eq(p["From"], "<levee@county.example>", "From")
            CK.eq(p["To"], "<cadre@village.example>", "To")
            date = email.utils.parsedate_to_datetime(p["Date"])
            CK.check(date and abs(date.timestamp() - time.time()) < 600, "Date is an RFC 5322 date of now", p["Date"])
            CK.check(re.fullmatch(r"<d-[0-9a-f]{32}@county\.example>", p["Message-ID"] or ""), "Message-ID",
                     p["Message-ID"])
            CK.check(p.get_content_charset() == "utf-8", "text/plain; charset=UTF-8")
            text = p.get_payload(decode=True).decode("utf-8")
            CK.check(REGION + " 村委会 (村干部)" in text and "请配合入户核查" in text and "预警等级: 红色报警" in text,
                     "the body is the Chinese template with the recipient's name and grade", text)
            CK.check(HEAD_ID not in text and HEAD_PHONE not in text and "138****5678" in text,
                     "ID and phone masked in the e-mail body", text)
        schools = [p for m, p in parsed if m["rcpt"] == ["<school@edu.example>"]]
        CK.eq(len(schools), 2, "each of the household's two schools got its e-mail")
        CK.check(schools and all(self.subject(p) == "【防返贫监测】学生家庭纳入监测: 户 H001" for p in schools),
                 "the school's wording", [self.subject(p) for p in schools])
        mail_ids = {r[0] for r in self.rows("SELECT delivery_id FROM notify_delivery WHERE channel_id = 'mail' "
                                            "AND event_id LIKE 'ev-%' AND status = 'sent'")}
        seen = {p["X-Levee-Delivery"] for m, p in parsed}
        CK.check(mail_ids and mail_ids <= seen, "every e-mail delivery arrived (%d)" % len(mail_ids))

    @staticmethod
    def subject(p):
        return str(email.header.make_header(email.header.decode_header(p["Subject"] or "")))

    # -- 5 ----------------------------------------------------------------------

    def second_notify(self):
        """Starts another levee-notify on the same database and Redis (its own
        bus endpoint and metrics port): both senders claim due rows."""
        ports = []
        for _ in range(2):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                ports.append(s.getsockname()[1])
        self.second_ep = "tcp://127.0.0.1:%d" % ports[0]
        env = dict(self.st.env, LEVEE_EP_NOTIFY=self.second_ep, LEVEE_METRICS_PORT=str(ports[1]))
        self.second_log = os.path.join(self.tmp, "levee-notify-2.log")
        log = open(self.second_log, "wb")
        self.second = subprocess.Popen([os.path.join(env["LEVEE_BIN"], "levee-notify")], env=env, cwd=ROOT,
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.st.wait_for(lambda: "notify config" in open(self.second_log, encoding="utf-8").read(),
                         timeout=30, what="the second levee-notify started")

    def stop_second_notify(self):
        if getattr(self, "second", None) and self.second.poll() is None:
            self.second.terminate()
            self.second.wait(timeout=30)

    def rate_events(self):
        """The burst goes to the second levee-notify while the first is
        stopped (SIGSTOP, idle: nothing of its own was due), so the second
        surely delivers; once it has, the first resumes and both share the
        channel's window in Redis."""
        self.second_notify()
        with open(os.path.join(self.st.home, "run", "levee-notify.pid")) as f:
            first = int(f.read().strip())
        ep = self.st.env.get("LEVEE_EP_NOTIFY")
        os.kill(first, signal.SIGSTOP)
        try:
            self.st.env["LEVEE_EP_NOTIFY"] = self.second_ep
            for i in range(RATE_EVENTS):
                rc, out = self.event("visit_reminder", "rate-%02d" % i, region=RATE_VILLAGE)
                if rc:
                    CK.check(False, "rate event %d accepted" % i, out)
            try:
                self.st.wait_for(lambda: "deliveries recorded" in open(self.second_log, encoding="utf-8").read(),
                                 timeout=30, what="the second levee-notify's first delivery")
            except TimeoutError as ex:
                CK.check(False, "the second levee-notify delivers", ex)
        finally:
            if ep is None:
                del self.st.env["LEVEE_EP_NOTIFY"]
            else:
                self.st.env["LEVEE_EP_NOTIFY"] = ep
            os.kill(first, signal.SIGCONT)

    def rate(self):
        section("5. rate limit per channel")
        self.settle()
        with self.hooks.mu:
            times = sorted(r["t"] for r in self.hooks.requests if r["path"] == "/rate")
        CK.eq(len(times), RATE_EVENTS, "the rate-limited channel delivered all %d" % RATE_EVENTS)
        # The most requests in any window a bit shorter than a second (network jitter aside).
        most = max((sum(1 for u in times if t <= u < t + 0.9) for t in times), default=0)
        CK.check(most <= RATE, "never more than %d per second (most in any 0.9 s: %d)" % (RATE, most))
        span = times[-1] - times[0] if times else 0
        CK.check(span >= (RATE_EVENTS / RATE - 1) * 0.8,
                 "%d deliveries at %d/s took %.2f s" % (RATE_EVENTS, RATE, span))
        CK.check(self.second.poll() is None, "the second levee-notify ran through the burst")
        with open(self.second_log, encoding="utf-8") as f:
            second = f.read()
        CK.check("deliveries recorded" in second, "the second levee-notify delivered too", second[-600:])
        self.stop_second_notify()

    # -- 6 ----------------------------------------------------------------------

    def redelivery(self):
        section("6a. the same event again")
        before = self.rows("SELECT (SELECT count(*) FROM inbox), (SELECT count(*) FROM notify_delivery)")
        rc, out = self.event("case_approved", "ev-case_approved")
        CK.check(rc == 0 and ("dup" in out or "重复" in out), "same message id: acknowledged as a duplicate", out)
        rc, out = self.event("case_approved", "ev-case_approved", extra=("--msg-id", "again-1"))
        CK.check(rc == 0 and "0 deliveries" in out, "new message id, same event: nothing new", out)
        after = self.rows("SELECT (SELECT count(*) FROM inbox), (SELECT count(*) FROM notify_delivery)")
        CK.eq(after, before, "inbox and delivery rows unchanged")
        self.settle()
        with self.hooks.mu:
            late = [r for r in self.hooks.requests if r["body"] and r["body"].get("event_id") == "ev-case_approved"
                    and r["status"] == 200 and r["delivery"] in self.hooks.accepted]
        per = {}
        for r in late:
            per[r["delivery"]] = per.get(r["delivery"], 0) + 1
        CK.check(per and all(v == 1 for v in per.values()), "still one accepted request per delivery", per)

    def crash(self, n=15):
        section("6b. kill -9 of notify while delivering")
        for i in range(n):
            rc, out = self.event("case_opened", "crash-%02d" % i, household="H001")
            if rc:
                CK.check(False, "crash event %d accepted" % i, out)

        def some_accepted():
            with self.hooks.mu:
                k = sum(1 for b in self.hooks.accepted.values() if b and b.get("event_id", "").startswith("crash-"))
            return k >= 2 and k

        try:
            k = self.st.wait_for(some_accepted, timeout=60, interval=0.05, what="some crash deliveries accepted")
        except TimeoutError as e:
            CK.check(False, "deliveries under way before the kill", e)
            k = 0
        pending = self.st.scalar("SELECT count(*) FROM notify_delivery WHERE event_id LIKE 'crash-%' "
                                 "AND status = 'pending'")
        self.st.kill("notify")
        print("  killed notify with %d SMS accepted and %s deliveries pending" % (k, pending))
        CK.check(pending and int(pending) > 0, "the kill landed while deliveries were pending (%s)" % pending)
        time.sleep(0.5)
        self.st.start("notify")
        self.settle(timeout=120)
        rows = self.deliveries("event_id LIKE 'crash-%'")
        CK.eq(len(rows), 2 * n, "one delivery row per event, recipient and channel (%d)" % (2 * n))
        CK.check(all(r[3] == "sent" for r in rows), "all sent after the restart",
                 [r for r in rows if r[3] != "sent"][:3])
        sms = {r[7]: r for r in rows if r[2] == "sms"}
        with self.hooks.mu:
            acc = {d: b for d, b in self.hooks.accepted.items() if b and b.get("event_id", "").startswith("crash-")}
            repeats = self.hooks.repeats
        CK.eq(set(acc), set(sms), "exactly one accepted SMS per event and recipient")
        CK.eq(sorted(b["event_id"] for b in acc.values()), ["crash-%02d" % i for i in range(n)],
              "... one per event")
        print("  repeats the receiver dropped by X-Levee-Delivery: %d" % repeats)
        with self.box.mu:
            got = [email.message_from_bytes(m["data"]) for m in self.box.messages]
        mail_ids = {r[7] for r in rows if r[2] == "mail"}
        CK.eq({p["X-Levee-Delivery"] for p in got} & mail_ids, mail_ids, "every e-mail of the burst arrived")

    # -- 7 ----------------------------------------------------------------------

    def reload(self):
        section("7. config reload on SIGHUP; removing a channel")
        pid = int(open(os.path.join(self.st.home, "run", "levee-notify.pid")).read().strip())

        def hup_with(text, logline, event_id):
            """Writes the config file, sends SIGHUP, waits for the log line; the new event's inbox title."""
            with open(self.cfg_path, "w", encoding="utf-8") as f:
                f.write(text)
            os.kill(pid, signal.SIGHUP)
            self.st.wait_for(lambda: logline in self.st.log("notify"), timeout=20, what=logline)
            self.event("visit_reminder", event_id)
            return self.st.scalar("SELECT title FROM inbox WHERE event_id = :'e'", {"e": event_id})

        cfg = copy.deepcopy(self.cfg)
        cfg["templates"]["visit_reminder"]["inbox"]["title"] = "走访提醒 (新措辞): {title}"
        title = hup_with(json.dumps(cfg, ensure_ascii=False), "notify config reloaded", "ev-reload")
        CK.eq(title, "走访提醒 (新措辞): visit_reminder: 户 H001", "the new wording after SIGHUP")
        title = hup_with('{"delivery": {"max_attempts": 0}}', "reload refused", "ev-reload-2")
        CK.eq(title, "走访提醒 (新措辞): visit_reminder: 户 H001", "a bad file is refused, the running config stays")
        CK.check("delivery.max_attempts" in self.st.log("notify"), "the refusal names the key")

        rc, out = self.event("red_alert", "ev-removed")
        rc, out = self.rc("channel", "remove", "down")
        CK.eq(rc, 0, "channel remove down")
        row = self.deliveries("event_id = 'ev-removed'")
        CK.check(row and row[0][3] == "dead" and "channel removed" in row[0][6],
                 "a removed channel's pending delivery is dead-lettered with the reason", row)
        CK.eq(self.st.scalar("SELECT count(*) FROM notify_subscription WHERE channel_id = 'down'"), "0",
              "... and its subscriptions go with it")


def test_config(tmp):
    """The shipped config with a delivery policy fast enough for a test."""
    with open(os.path.join(ROOT, "config", "notify.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    cfg["delivery"].update({"max_attempts": MAX_ATTEMPTS, "backoff_base_ms": BACKOFF_BASE_MS,
                            "backoff_max_ms": 5000, "connect_timeout_ms": 1000, "timeout_ms": 3000,
                            "rate_per_s": 50, "batch": 50, "max_inflight": 16})
    path = os.path.join(tmp, "notify.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False)
    return path, cfg


def main():
    tmp = tempfile.mkdtemp(prefix="levee-notify-")
    hooks, box = Hooks(), Mailbox()
    http_srv, smtp_srv = make_http(hooks), make_smtp(box)
    http_port, smtp_port = serve(http_srv), serve(smtp_srv)
    cfg_path, cfg = test_config(tmp)
    st = Stack(free_port_base())
    st.env.update({"LEVEE_NOTIFY_CONFIG": cfg_path, "LEVEE_TEST_HOOK_KEY": HOOK_KEY,
                   "LEVEE_TEST_SMTP_PASSWORD": SMTP_PASSWORD})
    try:
        st.up()
        print("stack up in %.1f s (port base %d); receivers: http %d, smtp %d"
              % (time.monotonic() - T0, st.port_base, http_port, smtp_port))
        t = T(st, hooks, box, tmp, cfg_path, cfg)
        try:
            t.setup(http_port, smtp_port)
            t.rate_events()
            t.routing()
            t.delivery()
            t.mail()
            t.rate()
            t.redelivery()
            t.crash()
            t.reload()
        except (StackError, TimeoutError, KeyError, TypeError, IndexError, ValueError, OSError) as e:
            CK.failures.append("aborted: %s" % e)
            print("\nABORTED: %s" % e)
            traceback.print_exc()
        finally:
            t.stop_second_notify()
        if CK.failures:
            print("\n-- levee-notify log (last lines)\n%s" % "\n".join(st.log("notify").splitlines()[-25:]))
    finally:
        st.down()
        http_srv.shutdown()
        smtp_srv.shutdown()
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n%d checks, %d failed, %.1f s" % (CK.count, len(CK.failures), time.monotonic() - T0))
    for f in CK.failures:
        print("  failed: %s" % f)
    print("FAIL" if CK.failures else "PASS")
    return 1 if CK.failures else 0


if __name__ == "__main__":
    sys.exit(main())
