#!/usr/bin/env python3
"""Runs the transfer engine's tests against a private PostgreSQL.

    run_transfer.py path/to/test_transfer

Starts a stack with no services (`levee up` starts PostgreSQL and Redis and
applies db/), runs the test binary with LEVEE_PG pointing at it, tears the
stack down and exits with the binary's exit code.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
os.environ["LEVEE_NO_SERVICES"] = "1"

from lvstack import Stack, free_port_base  # noqa: E402


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: run_transfer.py TEST_BINARY\n")
        return 2
    binary = os.path.abspath(sys.argv[1])
    started = time.monotonic()
    with Stack(free_port_base()) as st:
        print("run_transfer: postgres up in %.1fs (%s)"
              % (time.monotonic() - started, st.env["LEVEE_PG"]), flush=True)
        env = dict(st.env)
        t0 = time.monotonic()
        rc = subprocess.run([binary], env=env, stdin=subprocess.DEVNULL, timeout=240).returncode
        print("run_transfer: %s exited %d after %.1fs" % (os.path.basename(binary), rc,
                                                          time.monotonic() - t0), flush=True)
    # Killed by a signal: report it the way a shell would.
    return 128 - rc if rc < 0 else rc


if __name__ == "__main__":
    sys.exit(main())
