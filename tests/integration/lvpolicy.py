"""Helpers of the policy tests (test_shadow, test_policy_reload): checks that
keep going after a failure, the shipped policy's rules written out here
independently, policy files derived from the shipped one, and the sample.
Python 3 standard library only."""

import json
import os
import subprocess
import sys
import traceback

from lvstack import ROOT

POVERTY = (2, 3)  # poverty line = line x 2/3
WATCH = (6, 5)    # yellow watch = line x 6/5
FAILURES = []


def check(cond, what, detail=None):
    if cond:
        print("  ok    %s" % what)
    else:
        print("  FAIL  %s%s" % (what, "" if detail is None else "\n        %s" % detail))
        FAILURES.append(what)
    sys.stdout.flush()
    return bool(cond)


def eq(got, want, what):
    return check(got == want, what, None if got == want else "got %r\n        want %r" % (got, want))


def verdict(income, members, rigid, exited, line):
    """(in_scope, category, grade) by the shipped rules with this income line."""
    after = income - rigid
    if after < line * members:
        under = income < line * members
        category = ("脱贫不稳定户" if exited else "边缘易致贫户") if under else "突发严重困难户"
        red = after * POVERTY[1] < line * POVERTY[0] * members or rigid >= income
        return True, category, "red" if red else "orange"
    if after * WATCH[1] < line * WATCH[0] * members:
        return False, None, "yellow"
    return False, None, None


def write_policy(path, versions):
    """Writes the shipped policy with its versions replaced by versions(v0),
    where v0 is a copy of the shipped version; atomically (rename), so a
    service reloading it never reads half a file."""
    with open(os.path.join(ROOT, "policy", "default.json"), encoding="utf-8") as f:
        doc = json.load(f)
    doc["versions"] = versions(doc["versions"][0])
    tmp = path + ".new"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=2)
    os.replace(tmp, path)


def line_of(path, needle):
    """The first line of the file that contains needle."""
    with open(path, encoding="utf-8") as f:
        return next(i for i, text in enumerate(f, start=1) if needle in text)


def gen_sample(out, households, medical, seed, county="620521"):
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen-sample"), "--households",
                    str(households), "--medical", str(medical), "--county", county, "--seed",
                    str(seed), "--out", out], check=True, capture_output=True, timeout=120)


def finish(body):
    """Runs body(), reports every failure; returns the exit status."""
    try:
        body()
    except Exception:
        traceback.print_exc()
        FAILURES.append("exception")
    print("\n%s: %d failure(s)" % ("FAILED" if FAILURES else "PASSED", len(FAILURES)))
    for f in FAILURES:
        print("  - %s" % f)
    return 1 if FAILURES else 0
