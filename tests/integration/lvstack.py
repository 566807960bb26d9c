"""A local Levee stack for integration tests (Python 3 standard library only).

    from lvstack import Stack, free_port_base

    with Stack(free_port_base()) as st:
        st.levee("import", "--source", "medical", path)
        st.wait_for(lambda: st.scalar("SELECT count(*) FROM record") == "20000")

Every stack gets its own home (a fresh temporary directory unless one is
given) and its own ports, so tests can run in parallel under ctest -j.
Environment passed through from the caller: LEVEE_BIN, LEVEE_POLICY,
LEVEE_NO_SERVICES, LEVEE_SERVICES.
"""

import errno
import fcntl
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LEVEE = os.path.join(ROOT, "scripts", "levee")
SERVICES = ("ingest", "matching", "dispatch", "ledger", "notify", "gateway")
# The services that run the main loop of common/lv_service.c: the bus, the
# policy (reloaded on SIGHUP), /metrics and /healthz at port base +15..+19.
BUS_SERVICES = SERVICES[:5]
PORTS_PER_STACK = 20
FIELD_SEP = "\x1f"
RECORD_SEP = "\x1e"

# Lock files held for the life of this process so that two test processes
# never pick the same port base at the same time.
_held_port_locks = []


class StackError(RuntimeError):
    """A levee or psql command failed; the message carries its output."""


def _ports_free(base, count=PORTS_PER_STACK):
    for port in range(base, base + count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port_base(lo=20000, hi=60000, tries=500):
    """A base in [lo, hi) whose ports base..base+19 are all free on 127.0.0.1.

    Bases are multiples of 20, so two stacks never share a port, and a base is
    reserved for this process with a lock file. Bases below the kernel's
    ephemeral port range are preferred (outgoing connections cannot take them).
    """
    eph_lo, eph_hi = _ephemeral_range()
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    first = -(-lo // PORTS_PER_STACK) * PORTS_PER_STACK
    bases = list(range(first, hi - PORTS_PER_STACK + 1, PORTS_PER_STACK))
    rng.shuffle(bases)
    outside = [b for b in bases if b + PORTS_PER_STACK <= eph_lo or b > eph_hi]
    inside = [b for b in bases if not (b + PORTS_PER_STACK <= eph_lo or b > eph_hi)]
    for base in (outside + inside)[:tries]:
        lock_path = os.path.join(tempfile.gettempdir(), "levee-port-%d.lock" % base)
        try:
            fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o666)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                continue
            raise
        if _ports_free(base):
            _held_port_locks.append(fd)
            return base
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    raise StackError("no free port base in %d..%d" % (lo, hi))


def _svc(name):
    short = name[len("levee-"):] if name.startswith("levee-") else name
    if short not in SERVICES:
        raise ValueError("unknown service %r (one of %s)" % (name, ", ".join(SERVICES)))
    return short


class Stack:
    """One local stack: PostgreSQL, Redis and the services, driven by scripts/levee."""

    def __init__(self, port_base, home=None):
        self.port_base = int(port_base)
        self._own_home = home is None
        self.home = os.path.abspath(home) if home else tempfile.mkdtemp(prefix="levee-it-")
        env = dict(os.environ)
        for k in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE", "PGOPTIONS"):
            env.pop(k, None)
        env.update({
            "LEVEE_HOME": self.home,
            "LEVEE_PORT_BASE": str(self.port_base),
            "LEVEE_PG": "host=127.0.0.1 port=%d user=levee dbname=levee" % self.port_base,
            "LEVEE_REDIS_HOST": "127.0.0.1",
            "LEVEE_REDIS_PORT": str(self.port_base + 1),
        })
        env.setdefault("LEVEE_BIN", os.path.join(ROOT, "build", "bin"))
        env.setdefault("LEVEE_POLICY", os.path.join(ROOT, "policy", "default.json"))
        self.env = env
        self.http_port = int(env.get("LEVEE_HTTP_PORT") or self.port_base + 14)

    def admin_token(self):
        """The province-wide token of the HTTP API that `levee up` wrote."""
        with open(os.path.join(self.home, "admin.token"), encoding="ascii") as f:
            return f.read().strip()

    # -- lifetime -------------------------------------------------------------

    def up(self, timeout=180):
        self.levee("up", timeout=timeout)
        return self

    def down(self, purge=True, timeout=120):
        args = ["down", "--purge"] if purge else ["down"]
        try:
            self.levee(*args, timeout=timeout)
        finally:
            if purge and self._own_home:
                shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self):
        try:
            self.up()
        except BaseException:
            self.down(purge=True)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self.down(purge=True)
        return False

    # -- commands -------------------------------------------------------------

    def levee(self, *args, check=True, timeout=120, input=None):
        """Runs scripts/levee with this stack's environment; returns a CompletedProcess."""
        cmd = [LEVEE] + [str(a) for a in args]
        cp = subprocess.run(cmd, env=self.env, input=input, capture_output=True,
                            text=True, timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
        if check and cp.returncode != 0:
            raise StackError("levee %s: exit %d\n--- stdout\n%s--- stderr\n%s"
                             % (" ".join(cmd[1:]), cp.returncode, cp.stdout, cp.stderr))
        return cp

    def psql(self, sql, params=None, timeout=60):
        """Runs SQL; returns the rows of its query as tuples of strings.

        Commands before the query (CREATE, INSERT ...) print nothing, so
        "INSERT ...; SELECT ..." works; two queries in one call do not mix
        well, make two calls. NULL comes back as ''. Parameters are psql variables: write :'name'
        for a literal or :"name" for an identifier, and pass {"name": value};
        values are never pasted into the SQL text.
        """
        cmd = ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(self.port_base),
               "-U", "levee", "-d", "levee", "-A", "-P", "footer=off", "-F", FIELD_SEP, "-R", RECORD_SEP,
               "-v", "ON_ERROR_STOP=1"]
        stdin = None
        if params:
            for name, value in params.items():
                if not name.isidentifier():
                    raise ValueError("bad parameter name %r" % name)
                if value is None:
                    raise ValueError("parameter %r is None: write NULL in the SQL" % name)
                if isinstance(value, bool):
                    value = "true" if value else "false"
                cmd += ["-v", "%s=%s" % (name, value)]
            # Variables are interpolated only in SQL that psql reads itself, not with -c.
            cmd += ["-f", "-"]
            stdin = sql
        else:
            cmd += ["-c", sql]
        cp = subprocess.run(cmd, env=self.env, input=stdin, capture_output=True, text=True,
                            timeout=timeout, stdin=None if stdin is not None else subprocess.DEVNULL)
        if cp.returncode != 0:
            raise StackError("psql failed (exit %d): %s\nSQL: %s" % (cp.returncode, cp.stderr.strip(), sql))
        # Unaligned output with a header line, so that "no rows" and "one row
        # holding one empty value" differ: header RS row RS row ... LF.
        out = cp.stdout
        if out.endswith("\n"):
            out = out[:-1]
        if out == "":
            return []  # a command without a result set
        return [tuple(rec.split(FIELD_SEP)) for rec in out.split(RECORD_SEP)[1:]]

    def scalar(self, sql, params=None, timeout=60):
        """The first column of the first row as a string, or None when there is no row."""
        rows = self.psql(sql, params, timeout=timeout)
        return rows[0][0] if rows and rows[0] else None

    def start(self, svc):
        return self.levee("start", _svc(svc))

    def stop(self, svc):
        return self.levee("stop", _svc(svc))

    def kill(self, svc):
        return self.levee("kill", _svc(svc))

    def restart(self, svc):
        return self.levee("restart", _svc(svc))

    def status(self):
        return self.levee("status").stdout

    def log(self, svc):
        """The text of a service's log ('' if it has none yet)."""
        path = os.path.join(self.home, "log", "levee-%s.log" % _svc(svc))
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    @staticmethod
    def wait_for(fn, timeout=30.0, interval=0.2, what=None):
        """Calls fn until it returns something truthy; returns that value.

        Raises TimeoutError after `timeout` seconds, naming `what` (or fn) and
        the last value or exception seen.
        """
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                value = fn()
                if value:
                    return value
                last = value
            except (StackError, subprocess.SubprocessError, OSError) as e:
                last = e
            if time.monotonic() >= deadline:
                raise TimeoutError("timed out after %.1fs waiting for %s (last: %r)"
                                   % (timeout, what or getattr(fn, "__name__", "condition"), last))
            time.sleep(interval)


def wait_for(fn, timeout=30.0, interval=0.2, what=None):
    """Module-level alias of Stack.wait_for."""
    return Stack.wait_for(fn, timeout, interval, what)


class Checks:
    """A test's checks: each printed as it is made, all counted, the failures
    listed at the end. Thread-safe. `run` wraps a test's body: an exception
    becomes a failure, with the tails of the named services' logs."""

    def __init__(self, tag):
        import threading
        self.tag = tag
        self.t0 = time.monotonic()
        self.failed = []
        self.passed = 0
        self._mu = threading.Lock()

    def log(self, msg):
        print("[%s %5.1fs] %s" % (self.tag, time.monotonic() - self.t0, msg), flush=True)

    def ok(self, cond, what, detail=None):
        with self._mu:
            if cond:
                self.passed += 1
                self.log("  ok    %s" % what)
            else:
                self.failed.append(what)
                self.log("  FAIL  %s%s" % (what, "" if detail is None else "  -- %s" % (detail,)))
        return bool(cond)

    def eq(self, got, want, what):
        return self.ok(got == want, "%s (= %r)" % (what, want), "got %r" % (got,))

    def run(self, body, st, services=SERVICES, tail=3000):
        try:
            body()
        except Exception as e:  # noqa: BLE001 -- reported as a failure, with the logs
            import traceback
            traceback.print_exc()
            self.ok(False, "the test ran to its end", "%s: %s" % (type(e).__name__, e))
            for svc in services:
                self.log("--- tail of levee-%s.log\n%s" % (svc, st.log(svc)[-tail:]))

    def report(self):
        """Prints the summary; returns the exit code (1 if any check failed)."""
        self.log("%d checks passed, %d failed, %.1f s"
                 % (self.passed, len(self.failed), time.monotonic() - self.t0))
        for f in self.failed:
            self.log("FAILED: %s" % f)
        return 1 if self.failed else 0
