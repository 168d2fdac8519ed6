#!/usr/bin/env bash
# A one-node SLURM cluster on this machine (slurmctld + slurmd + munged), for trying tunelab's SLURM
# paths on a laptop and for the `slurm` tests in CI. Run as root:
#
#   scripts/slurm_local.sh install   # apt-get the Debian packages (slurmctld, slurmd, slurm-client, munge)
#   scripts/slurm_local.sh up        # write /etc/slurm/slurm.conf, start the daemons, wait for the node
#   scripts/slurm_local.sh status    # sinfo + squeue; exit 0 when the node accepts jobs
#   scripts/slurm_local.sh down      # stop the daemons this script started
#
# Commands chain (`install up`). Every command is idempotent: `up` on a running cluster only checks
# it. The node is this host (NodeName from `hostname -s`, CPUs from nproc, RealMemory 90% of RAM),
# with select/cons_tres and no accounting (so `sacct` has nothing to say: see docs/scaling.md).
set -euo pipefail

CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd
LOGS=/var/log/slurm
RUN=/run/slurm
MUNGE_KEY=/etc/munge/munge.key
MUNGE_PID=/run/munge/munged.pid
NODE="$(hostname -s)"
UP_TIMEOUT_S="${SLURM_LOCAL_UP_TIMEOUT_S:-60}"

log() { echo "slurm_local: $*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then log "run as root (it writes $CONF and starts daemons)"; exit 2; fi
}

cmd_install() {
  need_root
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
     && command -v munged >/dev/null; then
    return 0
  fi
  command -v apt-get >/dev/null || { log "no apt-get: install slurmctld, slurmd and munge by hand"; exit 2; }
  log "installing slurmctld slurmd slurm-client munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
}

write_conf() {
  local cpus mem_mb
  cpus="$(nproc)"
  mem_mb="$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)"
  mkdir -p "$CONF_DIR" "$STATE" "$SPOOL" "$LOGS" "$RUN"
  cat >"$CONF.tmp" <<EOF
# Written by tunelab's scripts/slurm_local.sh: a one-node cluster on $NODE.
# Addresses are 127.0.0.1, so the host name need not resolve.
# Addresses are 127.0.0.1: the host name need not resolve.
ClusterName=tunelab-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job may start again this many seconds after its requeue (SLURM's default is 120).
AuthInfo=cred_expire=10
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# No cgroups needed (containers, laptops): processes are tracked by parent id.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
# Accounting off: no slurmdbd. sacct then has no records (submitit says "Bypassing sacct error").
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
# Batch jobs may be requeued after a preemption signal (docs/reliability.md).
JobRequeue=1
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=10
MinJobAge=600
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  if cmp -s "$CONF.tmp" "$CONF" 2>/dev/null; then rm -f "$CONF.tmp"; return 1; fi
  mv "$CONF.tmp" "$CONF"  # changed: running daemons must restart to read it
}

start_munge() {
  if [ -f "$MUNGE_PID" ] && kill -0 "$(cat "$MUNGE_PID")" 2>/dev/null; then return 0; fi
  if [ ! -s "$MUNGE_KEY" ]; then
    log "generating $MUNGE_KEY"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then mungekey --create --keyfile="$MUNGE_KEY" --force; else
      dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none; fi
  fi
  chown munge:munge "$MUNGE_KEY" && chmod 0400 "$MUNGE_KEY"
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged
}

daemon_running() {  # $1: pid file
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

node_state() {
  sinfo --noheader --nodes="$NODE" --format=%T 2>/dev/null | head -n1 | tr -d '*'
}

cluster_ready() {
  case "$(node_state)" in idle|mixed|allocated|completing) return 0 ;; *) return 1 ;; esac
}

slurmd_registered_since() {  # $1: epoch seconds; slurmctld restores an old node state before that
  local started
  started="$(scontrol show node "$NODE" 2>/dev/null | grep -o 'SlurmdStartTime=[^ ]*' | cut -d= -f2)"
  [ -n "$started" ] && [ "$started" != None ] && [ "$(date -d "$started" +%s)" -ge "$1" ]
}

cmd_up() {
  need_root
  command -v slurmctld >/dev/null || { log "SLURM is not installed: run '$0 install' first"; exit 2; }
  if write_conf && daemon_running "$RUN/slurmctld.pid"; then
    log "$CONF changed: restarting the daemons"
    stop_pidfile "$RUN/slurmd.pid" slurmd
    stop_pidfile "$RUN/slurmctld.pid" slurmctld
  fi
  start_munge
  daemon_running "$RUN/slurmctld.pid" || /usr/sbin/slurmctld
  local since=0
  if ! daemon_running "$RUN/slurmd.pid"; then since="$(date +%s)"; /usr/sbin/slurmd; fi
  local deadline=$((SECONDS + UP_TIMEOUT_S)) resumed=0
  until cluster_ready && slurmd_registered_since "$((since - 1))"; do
    local state
    state="$(node_state)"
    if [ "$resumed" = 0 ] && [[ "$state" == down* || "$state" == drain* ]]; then
      scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true  # left down by an earlier stop
      resumed=1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "node $NODE not ready after ${UP_TIMEOUT_S}s (state '${state:-none}'); see $LOGS/"
      exit 1
    fi
    sleep 1
  done
  log "up: node $NODE ($(nproc) CPUs) in partition debug"
}

stop_pidfile() {  # $1: pid file, $2: name
  if daemon_running "$1"; then
    local pid
    pid="$(cat "$1")"
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    log "stopped $2 ($pid)"
  fi
  rm -f "$1"
}

cmd_down() {
  need_root
  if command -v scancel >/dev/null && cluster_ready; then
    scancel --full --user=root 2>/dev/null || true  # jobs of the tests; their processes end with slurmd
  fi
  stop_pidfile "$RUN/slurmd.pid" slurmd
  stop_pidfile "$RUN/slurmctld.pid" slurmctld
  stop_pidfile "$MUNGE_PID" munged
}

cmd_status() {
  if cluster_ready; then
    sinfo
    squeue
    return 0
  fi
  log "not up (node state '$(node_state)')"
  return 1
}

[ $# -ge 1 ] || { sed -n '2,12p' "$0"; exit 2; }
for cmd in "$@"; do
  case "$cmd" in
    install) cmd_install ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) log "unknown command '$cmd' (install|up|down|status)"; exit 2 ;;
  esac
done
