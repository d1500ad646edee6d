#!/bin/sh
# rsh agent for scripts/hosts.sh: mpirun calls it as `AGENT HOST COMMAND...` to start its
# daemon on HOST; HOST 10.77.9.K is the namespace pmh(K-1), so the command runs there.
host=$1; shift
case "$host" in
  10.77.9.*) ns=pmh$(( ${host##*.} - 1 )) ;;
  *) echo "netns_rsh: unknown host $host (expected 10.77.9.K)" >&2; exit 1 ;;
esac
exec ip netns exec "$ns" sh -c "$*"
