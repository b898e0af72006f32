#!/usr/bin/env bash
# Slurm integration test: start a single-node Slurm on this machine, submit the demo study as
# a 3-task job array plus the dependent merge job (contrib/slurm/submit.sh), wait, and check
# that the merged output equals one local `scarscope batch` run byte for byte. Stops only
# the daemons it started.
#
# Needs root (it installs slurmctld, slurmd, slurm-client and munge with apt-get when they
# are missing, and runs the daemons). Works without systemd: munged runs as user munge,
# slurmctld -D and slurmd -D as root with proctrack/linuxproc and task/none.
# Set SCARSCOPE_SKIP_SLURM=1 to skip it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if [ "${SCARSCOPE_SKIP_SLURM:-0}" = 1 ]; then
  echo "slurm test skipped (SCARSCOPE_SKIP_SLURM=1)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "slurm test needs root (it installs and runs the Slurm daemons)" >&2
  exit 1
fi

need=()
for cmd in slurmctld slurmd sbatch munged; do
  command -v "$cmd" >/dev/null || need+=("$cmd")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing Slurm and munge (missing: ${need[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi

work=$(mktemp -d /tmp/scarscope-slurm.XXXXXX)
pids=()
cleanup() {
  status=$?
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "${munged_pid:-}" ]; then
    kill "$munged_pid" 2>/dev/null || true
  fi
  if [ "$status" -eq 0 ]; then rm -rf "$work"; else echo "slurm test failed; logs in $work" >&2; fi
  exit "$status"
}
trap cleanup EXIT

# munge: the key and run folder, then the daemon as user munge (unless a working one runs).
# Liveness is checked with a credential round trip, not pgrep: in a container whose PID 1
# does not reap, old munged processes linger as zombies.
munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_works; then
  install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
  install -d -o munge -g munge -m 0755 /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    if command -v mungekey >/dev/null; then
      runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
    else
      dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    fi
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  rm -f /run/munge/munged.pid
  # munged forks into the background; whatever its status, find the daemon it left (from
  # its pid file) so the cleanup stops it.
  runuser -u munge -- munged || echo "munged reported an error" >&2
  for _ in $(seq 50); do
    [ -s /run/munge/munged.pid ] && munged_pid=$(cat /run/munge/munged.pid)
    [ -n "${munged_pid:-}" ] && munge_works && break
    sleep 0.1
  done
  if [ -z "${munged_pid:-}" ] || ! munge_works; then
    echo "munged did not start (is /dev/null a character device? see /var/log/munge)" >&2
    exit 1
  fi
fi

host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024) - 256}' /proc/meminfo)
mkdir -p "$work/state" "$work/spool" "$work/logs"
conf="$work/slurm.conf"
cat > "$conf" <<EOF
ClusterName=scarscope-ci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=600
SlurmctldPort=${SCARSCOPE_SLURMCTLD_PORT:-6817}
SlurmdPort=${SCARSCOPE_SLURMD_PORT:-6818}
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/logs/slurmctld.log
SlurmdLogFile=$work/logs/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$conf

echo "== building scarscope"
cargo build --release --locked --quiet
export SCARSCOPE=$repo/target/release/scarscope

echo "== starting slurmctld and slurmd (single node $host, $cpus CPUs)"
slurmctld -D -i -f "$conf" >"$work/logs/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$conf" >"$work/logs/slurmd.out" 2>&1 &
pids+=($!)
state=""
for _ in $(seq 120); do
  state=$(sinfo -h -o %t 2>/dev/null | head -n1 || true)
  [ "$state" = idle ] && break
  sleep 0.5
done
if [ "$state" != idle ]; then
  echo "the Slurm node did not come up (state '$state')" >&2
  tail -n 20 "$work"/logs/*.log >&2 || true
  exit 1
fi

echo "== submitting the demo study as a 3-task array and a merge job"
# Shards use 1 CPU each so the three tasks can run side by side.
line=$(contrib/slurm/submit.sh fixtures/study "$work/out" 3 --cpus-per-task=1)
echo "$line"
merge=$(echo "$line" | sed -n 's/.*merge job \([0-9]*\).*/\1/p')

job_state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
final=""
for _ in $(seq 1800); do
  final=$(job_state "$merge")
  case "$final" in
    COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) break ;;
  esac
  sleep 1
done
if [ "$final" != COMPLETED ]; then
  echo "merge job $merge ended as '$final'" >&2
  cat "$work"/out/*.log >&2 || true
  exit 1
fi

echo "== local run for comparison"
"$SCARSCOPE" batch fixtures/study --out "$work/local" --jobs 2 --quiet || [ $? -eq 1 ]
if diff -r --exclude=.scarscope.lock "$work/local" "$work/out/merged" >"$work/diff.txt"; then
  echo "slurm test passed: merged 3-shard output equals the local run"
else
  echo "merged output differs from the local run:" >&2
  head -n 40 "$work/diff.txt" >&2
  exit 1
fi
