#!/usr/bin/env bash
# A multi-host test bed on one machine: N network namespaces ("hosts" pmh0…pmhN-1, addresses
# 10.77.9.1…N) on a bridge that lives in a namespace of its own (pmsw), each host's egress
# shaped by the kernel's token bucket (tbf, burst 4 KB) at its own rate, and mpirun launched
# across them (TCP between ranks, orted started in each host's namespace by an rsh agent).
# Every address exists only inside the namespaces this script makes; everything it made is
# torn down when it ends, also on failure or Ctrl-C. This kernel has no netem, so latency
# cannot come from the kernel: add latency with the emulator (--link …:LATENCY) only.
#
#   scripts/hosts.sh run N RATES -- PROTOMODEL ARGS...    e.g. scripts/hosts.sh run 2 80mbit,80mbit -- train --steps 20
#   scripts/hosts.sh check                                 exit 0 if namespaces can be made here (else prints why)
#
# RATES: one per host, comma-separated (tc units: 80mbit, 1gbit, …), "off" for no shaping, or
# PREV/NEXT for a rate toward the host before and one toward the host after (one rank per
# host: a link per pipeline boundary), e.g. 20mbit,20mbit/200mbit,200mbit.
# Environment: MPIRUN_EXTRA (more mpirun flags), NP_PER_HOST (ranks per host, default 1),
# HOSTS_TBF_LATENCY (the tbf queue as a delay, default 500ms).
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=pmh
SWITCH=pmsw
SUBNET=10.77.9

can_make_namespaces() {
  [ "$(id -u)" -eq 0 ] || { echo "hosts: needs root (CAP_NET_ADMIN) to make network namespaces"; return 1; }
  command -v ip >/dev/null && command -v tc >/dev/null || { echo "hosts: needs ip and tc (Debian: iproute2)"; return 1; }
  ip netns add pmcheck$$ 2>/dev/null || { echo "hosts: this machine refuses 'ip netns add' (no CAP_NET_ADMIN in this container?)"; return 1; }
  ip netns del pmcheck$$
}

made=()
teardown() {
  local n
  for n in "${made[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  made=()
}

up() {  # N RATES
  local n=$1 rates=$2 i
  for i in $(seq 0 $((n - 1))) sw; do
    local ns; [ "$i" = sw ] && ns=$SWITCH || ns=$PREFIX$i
    if ip netns list | grep -qw "$ns"; then
      echo "hosts: namespace $ns already exists (another test bed running? remove it with: ip netns del $ns)" >&2; return 1
    fi
  done
  ip netns add $SWITCH; made+=($SWITCH)
  ip -n $SWITCH link add br0 type bridge
  ip -n $SWITCH link set br0 up
  ip -n $SWITCH link set lo up
  IFS=, read -r -a rate <<< "$rates"
  for i in $(seq 0 $((n - 1))); do
    local ns=$PREFIX$i
    ip netns add "$ns"; made+=("$ns")
    ip -n "$ns" link set lo up
    ip -n "$ns" link add eth0 type veth peer name "p$i" netns $SWITCH
    ip -n "$ns" addr add "$SUBNET.$((i + 1))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n $SWITCH link set "p$i" master br0
    ip -n $SWITCH link set "p$i" up
    local r=${rate[$i]:-${rate[0]:-off}}
    if [[ "$r" == */* ]]; then
      # PREV/NEXT: one rate toward host i−1 and one toward host i+1 (a link per boundary),
      # as htb classes chosen by destination address; anything else is unshaped.
      local prev=${r%/*} next=${r#*/}
      ip netns exec "$ns" tc qdisc add dev eth0 root handle 1: htb default 30
      ip netns exec "$ns" tc class add dev eth0 parent 1: classid 1:30 htb rate 10gbit
      if [ "$i" -gt 0 ] && [ "$prev" != off ]; then
        ip netns exec "$ns" tc class add dev eth0 parent 1: classid 1:10 htb rate "$prev" burst 4kb cburst 4kb
        ip netns exec "$ns" tc filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst "$SUBNET.$i/32" flowid 1:10
      fi
      if [ "$i" -lt $((n - 1)) ] && [ "$next" != off ]; then
        ip netns exec "$ns" tc class add dev eth0 parent 1: classid 1:20 htb rate "$next" burst 4kb cburst 4kb
        ip netns exec "$ns" tc filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst "$SUBNET.$((i + 2))/32" flowid 1:20
      fi
    elif [ "$r" != off ]; then
      # Token bucket on the host's egress; a 4 KB burst so small messages are shaped too.
      ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$r" burst 4kb latency ${HOSTS_TBF_LATENCY:-500ms}
    fi
  done
}

run() {  # N RATES -- args
  local n=$1 rates=$2; shift 3
  trap teardown EXIT
  trap 'teardown; exit 130' INT TERM
  up "$n" "$rates"
  local hosts="" i per=${NP_PER_HOST:-1}
  for i in $(seq 1 "$n"); do hosts+="${hosts:+,}$SUBNET.$i:$per"; done
  source scripts/env.sh
  # mpirun runs inside host 0; the agent starts orted inside the other hosts' namespaces.
  # --bind-to none: every "host" sees the same cores, binding would pin each rank to core 0.
  # --mca rtc ^hwloc: that component only serves binding, and a daemon in a namespace once
  # crashed inside it (hwloc_shmem_topology_write, Open MPI 4.1.4) before any rank started.
  ip netns exec ${PREFIX}0 mpirun --oversubscribe --bind-to none --mca rtc ^hwloc -np $((n * per)) --host "$hosts" \
    --mca plm_rsh_agent "$PWD/scripts/netns_rsh.sh" --mca btl tcp,self \
    --mca btl_tcp_if_include $SUBNET.0/24 --mca oob_tcp_if_include $SUBNET.0/24 \
    -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM \
    ${MPIRUN_EXTRA:-} "$PWD/.build/release/protomodel" "$@"
}

case "${1:-}" in
  check) can_make_namespaces ;;
  run)
    [ $# -ge 4 ] && [ "$4" = "--" ] || { echo "usage: scripts/hosts.sh run N RATES -- PROTOMODEL ARGS..." >&2; exit 2; }
    can_make_namespaces >&2 || exit 3
    run "$2" "$3" "${@:4}" ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
