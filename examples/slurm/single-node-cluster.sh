#!/usr/bin/env bash
# A one-machine Slurm cluster (controller and node on 127.0.0.1), to try the job-array example or test it:
#
#   sudo apt-get install slurm-wlm munge                    # Debian's packages (the tests' CI installs them)
#   examples/slurm/single-node-cluster.sh start /tmp/slurm  # config, state and logs in that folder
#   export SLURM_CONF=/tmp/slurm/slurm.conf                 # for sbatch, squeue, sinfo, scancel
#   examples/slurm/single-node-cluster.sh stop /tmp/slurm   # stops the daemons it started, by their process ids
#
# Run as root. Settings that work in a container: process tracking without cgroups, no task plugin, no
# accounting. `start` waits (at most 60 s) until the node is idle.
set -euo pipefail
action=${1:?usage: single-node-cluster.sh start|stop FOLDER}
folder=${2:?usage: single-node-cluster.sh start|stop FOLDER}
mkdir -p "$folder"
folder=$(cd "$folder" && pwd)

stop() {
  for name in slurmd slurmctld munged; do
    if [ -f "$folder/$name.pid" ]; then
      kill "$(cat "$folder/$name.pid")" 2>/dev/null || true
      rm -f "$folder/$name.pid"
    fi
  done
}

if [ "$action" = stop ]; then
  stop
  exit 0
fi

host=$(hostname)
cpus=$(nproc)
memory_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p "$folder/state" "$folder/spool" "$folder/munge"
chown munge:munge "$folder/munge" 2>/dev/null || true
cat > "$folder/slurm.conf" <<CONF
ClusterName=single
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmctldPort=${SLURMCTLD_PORT:-6817}
SlurmdPort=${SLURMD_PORT:-6818}
AuthType=auth/munge
AuthInfo=socket=$folder/munge/munge.socket
StateSaveLocation=$folder/state
SlurmdSpoolDir=$folder/spool
SlurmctldPidFile=$folder/slurmctld.pid
SlurmdPidFile=$folder/slurmd.pid
SlurmctldLogFile=$folder/slurmctld.log
SlurmdLogFile=$folder/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
MpiDefault=none
SchedulerType=sched/builtin
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

stop  # anything left from an earlier start in this folder
munged --socket="$folder/munge/munge.socket" --pid-file="$folder/munged.pid" \
  --log-file="$folder/munged.log" --seed-file="$folder/munge/munge.seed" --force
slurmctld -f "$folder/slurm.conf"
slurmd -f "$folder/slurm.conf"

export SLURM_CONF="$folder/slurm.conf"
for _ in $(seq 60); do
  if sinfo --noheader --states=idle --format=%N 2>/dev/null | grep -q .; then
    echo "Slurm is up: export SLURM_CONF=$folder/slurm.conf"
    exit 0
  fi
  sleep 1
done
echo "single-node-cluster.sh: the node did not become idle in 60 s; see $folder/*.log" >&2
stop
exit 1
