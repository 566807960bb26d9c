# Shared by the bench scripts (sourced): a port base for a private stack.
# A port base no other stack holds: bases are multiples of 20 with a lock
# file held for the life of this script, as the integration tests do.

# Whether ports base..base+19 can all be bound on loopback now.
port_base_free() {
    python3 - "$1" <<'PY'
import socket, sys
base = int(sys.argv[1])
for port in range(base, base + 20):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
PY
}

pick_port_base() {
    local tries=0 base
    while [ $tries -lt 200 ]; do
        # Below the kernel's ephemeral ports (32768 up), where an outgoing
        # connection of another test cannot hold one of ours.
        base=$(( (1000 + RANDOM % 638) * 20 ))
        exec {lockfd}>"${TMPDIR:-/tmp}/levee-port-$base.lock"
        if flock -n "$lockfd" && port_base_free "$base"; then
            LEVEE_PORT_BASE=$base
            return 0
        fi
        exec {lockfd}>&-
        tries=$((tries + 1))
    done
    echo "bench: no free port base" >&2
    exit 1
}
