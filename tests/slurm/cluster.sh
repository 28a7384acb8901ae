# shellcheck shell=bash
# A throwaway one-node Slurm for tests/slurm_test.sh (sourced): munged, slurmctld and slurmd run as the
# current user from a private state directory, on free ports, so nothing of the host's own Slurm or
# MUNGE (if any) is touched. Plugins that need cgroups or a database are off (containers often have
# neither): proctrack/linuxproc, task/none, no accounting.
#   slurm_start DIR   writes DIR/slurm.conf, starts the daemons, exports SLURM_CONF, waits for an idle node
#   slurm_stop        cancels the jobs, stops the daemons slurm_start started, then kills any process
#                     left with this cluster's SLURM_CONF in its environment (job steps); safe twice
slurm_pids=()
slurm_dir=

# Two distinct TCP ports nobody listens on now (the kernel's picks, both held until both are known).
free_ports() {
  python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])'
}

slurm_tools=(munged mungekey slurmctld slurmd sbatch squeue scontrol scancel sinfo)
slurm_missing() {
  local t
  for t in "${slurm_tools[@]}"; do command -v "$t" >/dev/null || { echo "$t"; return 0; }; done
  return 1
}

# slurm_have: 0 when the daemons and clients are there (installed now with apt-get when root), 1 when
# they are missing and this is no root with apt-get, 2 when the installation failed (its log on stdout).
slurm_have() {
  export PATH=$PATH:/usr/sbin:/sbin
  slurm_missing >/dev/null || return 0
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  echo "installing slurm-wlm and munge (apt-get)"
  local log
  log=$(mktemp)
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge ||
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge; }; } >"$log" 2>&1
  if slurm_missing >/dev/null; then
    tail -n 20 "$log"
    echo "no $(slurm_missing) after apt-get install slurm-wlm munge"
    rm -f "$log"
    return 2
  fi
  rm -f "$log"
}

slurm_write_conf() {
  local dir=$1 node=$2 cpus=$3 mem_mb=$4 user ports
  user=$(id -un)
  read -ra ports <<<"$(free_ports)"
  cat >"$dir/slurm.conf" <<EOF
ClusterName=gentest
SlurmctldHost=$node(127.0.0.1)
SlurmUser=$user
SlurmdUser=$user
SlurmctldPort=${ports[0]}
SlurmdPort=${ports[1]}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/socket,cred_expire=${SLURM_TEST_CRED_EXPIRE:-5}
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=1${SLURM_TEST_SCHED_PARAMS:+,$SLURM_TEST_SCHED_PARAMS}
${SLURM_TEST_DEPEND_PARAMS:+DependencyParameters=$SLURM_TEST_DEPEND_PARAMS}
ReturnToService=2
MinJobAge=600
KillWait=5
InactiveLimit=0
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
}

# munged on a private socket with a fresh key; --force because root (or a world-readable /tmp) is refused.
slurm_start_munge() {
  local dir=$1
  mkdir -p "$dir/munge" && chmod 755 "$dir/munge"
  mungekey --create --keyfile="$dir/munge/key" >/dev/null 2>&1 ||
    { dd if=/dev/urandom of="$dir/munge/key" bs=1024 count=1 2>/dev/null && chmod 600 "$dir/munge/key"; }
  munged --force --socket="$dir/munge/socket" --key-file="$dir/munge/key" --pid-file="$dir/munge/pid" \
    --log-file="$dir/munge/log" --seed-file="$dir/munge/seed" || return 1
  for _ in $(seq 50); do [ -S "$dir/munge/socket" ] && [ -s "$dir/munge/pid" ] && break; sleep 0.1; done
  slurm_pids+=("$(cat "$dir/munge/pid")")
}

# slurm_wait_idle SECONDS: the node answers and is idle.
slurm_wait_idle() {
  local state
  for _ in $(seq $(($1 * 5))); do
    slurm_alive || { echo "a Slurm daemon exited"; return 1; }
    state=$(sinfo -h -N -o %T 2>/dev/null | head -1)
    [ "$state" = idle ] && return 0
    sleep 0.2
  done
  echo "the node is not idle after $1 s (state: ${state:-no answer})"
  return 1
}

# Every daemon slurm_start started still runs.
slurm_alive() {
  local p
  for p in "${slurm_pids[@]}"; do kill -0 "$p" 2>/dev/null || return 1; done
}

slurm_start() {
  local dir=$1 node cpus mem
  node=$(uname -n | cut -d. -f1)
  cpus=$(nproc)
  mem=$(awk '/^MemTotal:/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
  slurm_dir=$dir
  mkdir -p "$dir/state" "$dir/spool" "$dir/run" "$dir/log"
  slurm_write_conf "$dir" "$node" "$cpus" "$mem"
  export SLURM_CONF=$dir/slurm.conf
  slurm_start_munge "$dir" || { echo "munged did not start: $(cat "$dir/munge/log" 2>/dev/null)"; return 1; }
  # Each in a session of its own: a signal to the test's process group (Ctrl-C, timeout) reaches the
  # test, whose EXIT trap then stops the cluster in order, not the daemons under their running jobs.
  setsid slurmctld -D -i -f "$SLURM_CONF" >"$dir/log/slurmctld.stderr" 2>&1 &
  slurm_pids+=($!)
  setsid slurmd -D -f "$SLURM_CONF" -N "$node" >"$dir/log/slurmd.stderr" 2>&1 &
  slurm_pids+=($!)
  slurm_wait_idle "${SLURM_TEST_START_TIMEOUT:-60}" || { slurm_logs "$dir"; return 1; }
}

slurm_logs() {
  local f
  for f in "$1"/log/* "$1"/munge/log; do
    [ -s "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }
  done
}

# The pids of the processes whose environment has this cluster's SLURM_CONF: the daemons, slurmstepd
# and the jobs (sbatch exports the submitter's environment), and nothing else on the machine. Builtins
# only: a command run here would carry the mark itself.
slurm_marked_pids() {
  local f v vars marker="SLURM_CONF=$slurm_dir/slurm.conf"
  for f in /proc/[0-9]*/environ; do
    { mapfile -d '' vars <"$f"; } 2>/dev/null || continue
    for v in "${vars[@]}"; do
      [ "$v" = "$marker" ] && { f=${f#/proc/}; echo "${f%/environ}"; break; }
    done
  done
  return 0
}

# SIGTERM, then SIGKILL after 10 s, to the given pids; waits until they are gone.
slurm_kill() {
  local p alive
  for p in "$@"; do kill "$p" 2>/dev/null; done
  for _ in $(seq 100); do
    alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.1
  done
  for p in "$@"; do kill -9 "$p" 2>/dev/null; done
  return 0
}

# The marked processes but the daemons: slurmstepd and the jobs' own.
slurm_job_pids() {
  local p
  for p in $(slurm_marked_pids); do
    case "$(cat "/proc/$p/comm" 2>/dev/null)" in munged | slurmctld | slurmd | slurmscriptd | '') ;; *) echo "$p" ;; esac
  done
}

# Cancels every job and waits (15 s at most) until the steps have ended: killed under a live slurmd
# they could not report their end and would linger.
slurm_drain() {
  scancel --user="$(id -un)" 2>/dev/null
  local end=$((SECONDS + 15))
  while [ $SECONDS -lt $end ]; do
    [ -z "$(squeue -h 2>/dev/null)" ] && [ -z "$(slurm_job_pids)" ] && return 0
    sleep 0.2
  done
}

slurm_stop() {
  [ -n "$slurm_dir" ] || return 0
  [ ${#slurm_pids[@]} -gt 0 ] && slurm_alive && slurm_drain
  [ ${#slurm_pids[@]} -gt 0 ] && slurm_kill "${slurm_pids[@]}"
  slurm_pids=()
  local left
  for _ in $(seq 30); do  # slurmscriptd ends a moment after slurmctld
    left=$(slurm_marked_pids)
    [ -z "$left" ] && break
    sleep 0.1
  done
  if [ -n "$left" ]; then
    echo "note: killing processes left by the test cluster: $(ps -o pid=,args= -p "${left//$'\n'/,}" | tr '\n' ';')"
    # shellcheck disable=SC2086
    slurm_kill $left
  fi
  slurm_dir=
}
