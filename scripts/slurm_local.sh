#!/usr/bin/env bash
# Stands up a one-node Slurm cluster on this machine (munge, slurmctld, slurmd from apt,
# no systemd) so the job scripts in jobs/ can be submitted with sbatch. Idempotent.
#   scripts/slurm_local.sh          install if needed, write slurm.conf, start daemons
#   scripts/slurm_local.sh stop     stop the daemons
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ "${1:-}" = "stop" ]; then
  $SUDO pkill -x slurmd 2>/dev/null || true
  $SUDO pkill -x slurmctld 2>/dev/null || true
  exit 0
fi

pkgs=(slurmctld slurmd slurm-client munge)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "slurm: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
conf=/etc/slurm/slurm.conf
$SUDO mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
$SUDO tee "$conf.tmp" >/dev/null <<EOF
# Written by protomodel scripts/slurm_local.sh: a single-node test cluster.
ClusterName=protomodel
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
$SUDO mv "$conf.tmp" "$conf"

# munge: a key, then the daemon.
if [ ! -s /etc/munge/munge.key ]; then
  $SUDO mkdir -p /etc/munge
  $SUDO dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
$SUDO chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge 2>/dev/null || true
$SUDO chmod 400 /etc/munge/munge.key
$SUDO mkdir -p /run/munge && $SUDO chown munge:munge /run/munge
pgrep -x munged >/dev/null || $SUDO -u munge /usr/sbin/munged 2>/dev/null || $SUDO runuser -u munge -- /usr/sbin/munged

# Restart the Slurm daemons so they read this configuration.
$SUDO pkill -x slurmd 2>/dev/null || true
$SUDO pkill -x slurmctld 2>/dev/null || true
sleep 1
$SUDO /usr/sbin/slurmctld -i
$SUDO /usr/sbin/slurmd
for _ in $(seq 1 30); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "slurm: node $host up ($cpus CPUs), partition debug"
    exit 0
  fi
  sleep 1
done
echo "slurm: the node did not come up; see /var/log/slurm/slurmctld.log and slurmd.log" >&2
sinfo >&2 || true
exit 1
