# Shared by the bench scripts (sourced): a port base for a private stack.
# A port base no other stack holds: bases are multiples of 20 with a lock
# file held for the life of this script, as the integration tests do.
pick_port_base() {
    local tries=0 base
    while [ $tries -lt 200 ]; do
        base=$(( (1000 + RANDOM % 1500) * 20 ))
        exec {lockfd}>"${TMPDIR:-/tmp}/levee-port-$base.lock"
        if flock -n "$lockfd"; then
            LEVEE_PORT_BASE=$base
            return 0
        fi
        exec {lockfd}>&-
        tries=$((tries + 1))
    done
    echo "bench: no free port base" >&2
    exit 1
}
