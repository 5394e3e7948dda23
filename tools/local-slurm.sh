#!/usr/bin/env bash
# local-slurm.sh — a REAL single-node SLURM cluster (munged + slurmctld + slurmd,
# optionally slurmdbd + MariaDB) from Debian 12's slurm-wlm 22.05.8 packages, for CI
# scripts and laptops, run as root WITHOUT systemd. Idempotent: re-run any sub-command.
# Verified on Debian 12 (bookworm), 2 cores, inside a container without cgroup delegation.
#
#   ./local-slurm.sh install   # apt-get install slurmctld slurmd slurm-client munge (~18 s)
#   ./local-slurm.sh start     # write /etc/slurm/slurm.conf, start daemons, wait for idle node (~1-5 s)
#   ./local-slurm.sh test      # sbatch a job, wait until it is COMPLETED (~2 s)
#   ./local-slurm.sh status    # pids + sinfo + squeue
#   ./local-slurm.sh pids      # 'name pid' per running daemon
#   ./local-slurm.sh stop      # stop the daemons by the PIDs in their pid files (never by name)
#   ./local-slurm.sh reset     # stop + wipe controller/slurmd state (job ids restart at 1)
#   ./local-slurm.sh up        # install + start + test (one-liner for CI)
#
# Tunables (environment):
#   SLURM_CPUS         CPUs advertised for the node           (default: max(nproc, 8))
#   SLURM_MEM_MB       RealMemory in MB                       (default: max(physical - 1024, 65536))
#                      Both may exceed the hardware: SlurmdParameters=config_overrides makes
#                      slurmd trust the config, so avpipe's profile (8 cores and 32 GB
#                      for extract) schedules on a small CI box; limits are not enforced anyway.
#   SLURM_PARTITION    name of the default (CPU) partition    (default: cpu)
#   SLURM_GPU_PARTITION name of the GPU partition, same node  (default: gpu)
#   SLURM_FAKE_GPUS    N>0: advertise N fake "gpu" GRES, so Snakemake `resources: gpu=1`
#                      (plugin -> `sbatch --gpus=1`) and `gres="gpu:1"` jobs are schedulable
#                      on a GPU-less box; jobs get CUDA_VISIBLE_DEVICES=0..N-1 (default: 1)
#
# avpipe copy of ../shared/tools/local-slurm.sh: CPU + GPU partitions named as in
# profiles/slurm, one fake GPU and config_overrides by default; `pids` prints the daemons'
# pids (tests/test_slurm.py stops exactly those).
#   SLURM_MIN_JOB_AGE  seconds a finished job stays visible to squeue (default: 3600)
#   SLURM_ACCOUNTING   none (default) | slurmdbd
#       none:     no database. `sacct` exits 1 ("Slurm accounting storage is disabled"), so run
#                 Snakemake with `--slurm-status-command squeue --slurm-no-account`.
#       slurmdbd: also installs + starts MariaDB and slurmdbd (+~190 MB, +~11 s install,
#                 ~1 s start); `sacct` works, so the plugin's defaults (status via sacct) and
#                 `--slurm-efficiency-report` work too.
#
# Snakemake (>= 8) with snakemake-executor-plugin-slurm, accounting=none:
#   snakemake --executor slurm --jobs 4 --slurm-status-command squeue --slurm-no-account \
#             --default-resources slurm_partition=cpu mem_mb=500 runtime=10
# (a profile directory with these keys in config.v8+.yaml does the same).
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
GRES_CONF=$CONF_DIR/gres.conf
DBD_CONF=$CONF_DIR/slurmdbd.conf
STATE_DIR=/var/lib/slurm
LOG_DIR=/var/log/slurm
MUNGE_RUN=/run/munge
MUNGE_PID=$MUNGE_RUN/munged.pid
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
DBD_PID=/run/slurmdbd.pid
MYSQL_RUN=/run/mysqld
MYSQL_PID=$MYSQL_RUN/mysqld.pid   # pid-file set in Debian's /etc/mysql/mariadb.conf.d/50-server.cnf

CLUSTER=localci
NODE=$(hostname -s)
NPROC=$(nproc)
CPUS=${SLURM_CPUS:-$(( NPROC > 8 ? NPROC : 8 ))}
PHYS_MB=$(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo)
MEM_MB=${SLURM_MEM_MB:-$(( PHYS_MB - 1024 > 65536 ? PHYS_MB - 1024 : 65536 ))}
PARTITION=${SLURM_PARTITION:-cpu}
GPU_PARTITION=${SLURM_GPU_PARTITION:-gpu}
FAKE_GPUS=${SLURM_FAKE_GPUS:-1}
MIN_JOB_AGE=${SLURM_MIN_JOB_AGE:-3600}
ACCOUNTING=${SLURM_ACCOUNTING:-none}
DB_PASS=${SLURM_DB_PASS:-slurmci}   # local-only MariaDB account, bound to 127.0.0.1

case "$ACCOUNTING" in none|slurmdbd) ;; *) echo "SLURM_ACCOUNTING must be none|slurmdbd" >&2; exit 2 ;; esac

log() { printf '[local-slurm] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }
pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }   # $1 = pid file
wait_pidfile() {  # $1 = pid file
  for _ in $(seq 1 50); do pid_alive "$1" && return 0; sleep 0.2; done
  die "daemon did not write $1; see $LOG_DIR/*.log"
}

# ---------------------------------------------------------------- install
cmd_install() {
  need_root
  local pkgs="slurmctld slurmd slurm-client munge" missing="" p
  [ "$ACCOUNTING" = slurmdbd ] && pkgs="$pkgs slurmdbd mariadb-server"
  for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -z "$missing" ]; then log "already installed: $pkgs (slurm $(dpkg-query -W -f="\${Version}" slurmctld))"; return 0; fi
  local t0=$SECONDS
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends: ~3.5 MB of .debs for the base set (no MTA etc.). The postinst
  # scripts try to start services via invoke-rc.d; without systemd that is skipped
  # ("policy-rc.d denied execution of start"), which is what we want. munge's postinst
  # creates /etc/munge/munge.key.
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
  log "installed$missing in $((SECONDS - t0)) s (slurm $(dpkg-query -W -f="\${Version}" slurmctld))"
}

# ---------------------------------------------------------------- config
write_if_changed() {  # $1 = path, $2 = mode, stdin = content; returns 0 if the file changed
  local tmp; tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
  install -m "$2" "$tmp" "$1"; rm -f "$tmp"; return 0
}

write_config() {  # returns 0 if slurm.conf or gres.conf changed
  local changed=1 gres_types="" gres_node="" acct_lines
  if [ "$ACCOUNTING" = slurmdbd ]; then
    acct_lines="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux"
  else
    acct_lines="# No slurmdbd: sacct will NOT work; squeue --states=all shows finished jobs for MinJobAge s
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
  fi
  if [ "$FAKE_GPUS" -gt 0 ]; then gres_types="GresTypes=gpu"; gres_node="Gres=gpu:${FAKE_GPUS}"; fi
  mkdir -p "$CONF_DIR"
  write_if_changed "$CONF" 0644 <<EOF && changed=0
# Generated by local-slurm.sh — single-node SLURM cluster for CI / local testing.
ClusterName=${CLUSTER}
SlurmctldHost=${NODE}(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
SlurmUser=slurm
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=${STATE_DIR}/slurmctld
SlurmdSpoolDir=${STATE_DIR}/slurmd
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
# No cgroups: works in containers and CI runners without cgroup delegation.
# (Consequence: memory/CPU limits are NOT enforced, only used for scheduling.)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
# trust CPUs/RealMemory/Gres below even where the hardware has less (CI boxes)
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
# cons_tres + CR_Core_Memory: several jobs share the node (per core / per MB of RAM)
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
${acct_lines}
JobCompType=jobcomp/filetxt
JobCompLoc=${LOG_DIR}/jobcomp.log
# Finished jobs stay in slurmctld memory (visible to squeue --states=all) this long.
MinJobAge=${MIN_JOB_AGE}
SlurmctldTimeout=30
# Clients give up on an absent controller after ~MessageTimeout - 1 s (default 10 s). The
# Snakemake SLURM plugin runs `scontrol show config` when it is imported, i.e. in EVERY
# snakemake call on a machine with slurm-client installed: with the daemons stopped, the
# default would add 9 s to each; 3 s keeps it at 2 s and is ample on one node.
MessageTimeout=3
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
${gres_types}
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM_MB} ${gres_node} State=UNKNOWN
PartitionName=${PARTITION} Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=1000
PartitionName=${GPU_PARTITION} Nodes=${NODE} Default=NO MaxTime=INFINITE State=UP DefMemPerCPU=1000
EOF
  if [ "$FAKE_GPUS" -gt 0 ]; then
    # gres/gpu needs File= entries that are character/block devices: a count-only line
    # ("Name=gpu Count=1") makes slurmd report 0 GPUs and the node DRAINs ("gres/gpu count
    # reported lower than configured (0 < 1)"); regular files are rejected ("is not a valid
    # character or block device"). So mknod null-like char devices (major 1, minor 3).
    local d="$STATE_DIR/fakegpu" i files
    mkdir -p "$d"
    for i in $(seq 0 $((FAKE_GPUS - 1))); do
      [ -c "$d/nvidia$i" ] || { rm -f "$d/nvidia$i"; mknod -m 666 "$d/nvidia$i" c 1 3; }
    done
    files="$d/nvidia0"; [ "$FAKE_GPUS" -gt 1 ] && files="$d/nvidia[0-$((FAKE_GPUS - 1))]"
    write_if_changed "$GRES_CONF" 0644 <<EOF && changed=0
NodeName=${NODE} Name=gpu File=${files}
EOF
  elif [ -f "$GRES_CONF" ]; then
    rm -f "$GRES_CONF"; changed=0
  fi
  return $changed
}

# ---------------------------------------------------------------- daemons
start_munge() {
  mkdir -p "$MUNGE_RUN" /var/log/munge /var/lib/munge
  chown munge:munge "$MUNGE_RUN" /var/log/munge /var/lib/munge
  chmod 0755 "$MUNGE_RUN"
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
  fi
  if pid_alive "$MUNGE_PID"; then log "munged already running (pid $(cat "$MUNGE_PID"))"; return; fi
  rm -f "$MUNGE_RUN/munge.socket.2" "$MUNGE_RUN/munge.socket.2.lock" "$MUNGE_PID"
  # munged refuses to run as root (without --force): run it as its own user.
  runuser -u munge -- /usr/sbin/munged
  wait_pidfile "$MUNGE_PID"
  munge -n | unmunge >/dev/null || die "munge round-trip failed"
  log "munged started (pid $(cat "$MUNGE_PID"))"
}

start_mariadb_slurmdbd() {
  mkdir -p "$MYSQL_RUN"; chown mysql:root "$MYSQL_RUN"
  if pid_alive "$MYSQL_PID"; then
    log "mariadbd already running (pid $(cat "$MYSQL_PID"))"
  else
    # mariadbd does not daemonise: background it, detached from our stdio.
    setsid runuser -u mysql -- /usr/sbin/mariadbd </dev/null >>"$LOG_DIR/mariadbd.log" 2>&1 &
    for _ in $(seq 1 120); do mariadb -e 'select 1' >/dev/null 2>&1 && break; sleep 0.25; done
    mariadb -e 'select 1' >/dev/null 2>&1 || die "mariadbd did not come up; see $LOG_DIR/mariadbd.log"
    log "mariadbd started (pid $(cat "$MYSQL_PID"))"
  fi
  mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
              CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '${DB_PASS}';
              ALTER USER 'slurm'@'localhost' IDENTIFIED BY '${DB_PASS}';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  # slurmdbd refuses a slurmdbd.conf that is not mode 600 and owned by SlurmUser.
  local dbd_changed=0
  write_if_changed "$DBD_CONF" 0600 <<EOF && dbd_changed=1
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=slurm
LogFile=${LOG_DIR}/slurmdbd.log
PidFile=${DBD_PID}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=${DB_PASS}
StorageLoc=slurm_acct_db
EOF
  chown slurm:slurm "$DBD_CONF"
  if [ $dbd_changed = 1 ] && pid_alive "$DBD_PID"; then stop_pidfile slurmdbd "$DBD_PID"; fi
  if pid_alive "$DBD_PID"; then log "slurmdbd already running (pid $(cat "$DBD_PID"))"; return; fi
  slurmdbd; wait_pidfile "$DBD_PID"
  # sacctmgr only talks to slurmdbd when slurm.conf says accounting_storage/slurmdbd
  for _ in $(seq 1 60); do sacctmgr -n show cluster >/dev/null 2>&1 && break; sleep 0.5; done
  log "slurmdbd started (pid $(cat "$DBD_PID"))"
}

wait_node_idle() {
  local state=""
  for _ in $(seq 1 60); do
    state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1 || true)
    case "$state" in
      idle*|mixed*|allocated*|completing*) log "node $NODE is $state"; return 0 ;;
      # e.g. DRAIN kept in the state files from an earlier bad config; ReturnToService=2
      # handles plain DOWN, but DRAIN needs an explicit resume
      down*|drain*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 1
  done
  sinfo -R || true
  die "node $NODE did not become idle (state='$state'); see $LOG_DIR/*.log"
}

cmd_start() {
  need_root
  command -v slurmctld >/dev/null || die "slurm not installed: run '$0 install' first"
  if [ "$ACCOUNTING" = slurmdbd ]; then
    command -v slurmdbd >/dev/null && command -v mariadbd >/dev/null \
      || die "SLURM_ACCOUNTING=slurmdbd: run 'SLURM_ACCOUNTING=slurmdbd $0 install' first"
  fi
  local t0=$SECONDS reconf=0
  write_config && reconf=1
  mkdir -p "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd" "$LOG_DIR"
  chown slurm:slurm "$STATE_DIR/slurmctld" "$LOG_DIR"
  start_munge
  if [ $reconf = 1 ] && { pid_alive "$CTLD_PID" || pid_alive "$SLURMD_PID"; }; then
    log "slurm.conf/gres.conf changed: restarting slurmctld + slurmd"
    stop_pidfile slurmd "$SLURMD_PID"; stop_pidfile slurmctld "$CTLD_PID"
  fi
  [ "$ACCOUNTING" = slurmdbd ] && start_mariadb_slurmdbd
  if pid_alive "$CTLD_PID"; then
    log "slurmctld already running (pid $(cat "$CTLD_PID"))"
  else
    slurmctld; wait_pidfile "$CTLD_PID"          # daemonises; with slurmdbd it registers the cluster
    log "slurmctld started (pid $(cat "$CTLD_PID"))"
  fi
  if pid_alive "$SLURMD_PID"; then
    log "slurmd already running (pid $(cat "$SLURMD_PID"))"
  else
    slurmd -N "$NODE"; wait_pidfile "$SLURMD_PID"  # daemonises
    log "slurmd started (pid $(cat "$SLURMD_PID"))"
  fi
  wait_node_idle
  log "cluster up in $((SECONDS - t0)) s (accounting=$ACCOUNTING): $(sinfo -h -o '%P %a %D %T cpus(A/I/O/T)=%C mem=%mMB gres=%G')"
}

stop_pidfile() {  # $1 = name, $2 = pid file
  if pid_alive "$2"; then
    local pid; pid=$(cat "$2")
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then log "$1 ($pid) ignored TERM, sending KILL"; kill -KILL "$pid"; fi
    log "$1 stopped (pid $pid)"
  else
    log "$1 not running"
  fi
  rm -f "$2"
}

cmd_stop() {
  need_root
  stop_pidfile slurmd "$SLURMD_PID"
  stop_pidfile slurmctld "$CTLD_PID"     # its child slurmscriptd exits with it
  if pid_alive "$DBD_PID"; then stop_pidfile slurmdbd "$DBD_PID"; fi
  if pid_alive "$MYSQL_PID"; then
    local pid; pid=$(cat "$MYSQL_PID")   # mariadbd removes its own pid file on exit
    kill -TERM "$pid"; for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    log "mariadbd stopped (pid $pid)"
  fi
  stop_pidfile munged "$MUNGE_PID"
}

cmd_reset() {
  cmd_stop
  rm -rf "${STATE_DIR:?}/slurmctld/"* "${STATE_DIR:?}/slurmd/"* "${STATE_DIR:?}/fakegpu"
  log "slurm state wiped (the accounting database, if any, is kept)"
}

cmd_pids() {  # "name pid" per running daemon, for callers that stop them by pid
  local p
  for p in "munged:$MUNGE_PID" "mariadbd:$MYSQL_PID" "slurmdbd:$DBD_PID" "slurmctld:$CTLD_PID" "slurmd:$SLURMD_PID"; do
    if pid_alive "${p#*:}"; then echo "${p%%:*} $(cat "${p#*:}")"; fi
  done
}

cmd_status() {
  local p
  for p in "munged:$MUNGE_PID" "mariadbd:$MYSQL_PID" "slurmdbd:$DBD_PID" "slurmctld:$CTLD_PID" "slurmd:$SLURMD_PID"; do
    if pid_alive "${p#*:}"; then echo "${p%%:*}: running (pid $(cat "${p#*:}"))"; else echo "${p%%:*}: stopped"; fi
  done
  if pid_alive "$CTLD_PID"; then sinfo; squeue --states=all; fi
}

cmd_test() {
  local jid st="" out; out=$(mktemp)
  jid=$(sbatch --parsable -J local-slurm-test -o "$out" --mem=100 -t 1 \
        --wrap 'echo "hello from job $SLURM_JOB_ID on $(hostname), cpus=$SLURM_CPUS_ON_NODE"')
  for _ in $(seq 1 60); do
    st=$(squeue -h -j "$jid" --states=all -o %T 2>/dev/null || true)
    case "$st" in
      COMPLETED) break ;;
      FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL) cat "$out"; die "test job $jid: $st" ;;
    esac
    sleep 1
  done
  [ "$st" = COMPLETED ] || die "test job $jid not completed (state '$st')"
  log "test job $jid COMPLETED: $(cat "$out")"; rm -f "$out"
  if grep -q '^AccountingStorageType=accounting_storage/slurmdbd' "$CONF"; then
    for _ in $(seq 1 20); do
      st=$(sacct -n -X -P -j "$jid" -o State 2>/dev/null || true)
      [ "$st" = COMPLETED ] && break; sleep 0.5
    done
    [ "$st" = COMPLETED ] || die "sacct does not report job $jid as COMPLETED (got '$st')"
    log "sacct reports job $jid $st"
  fi
}

case "${1:-}" in
  install) cmd_install ;;
  start)   cmd_start ;;
  stop)    cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  reset)   cmd_reset ;;
  status)  cmd_status ;;
  pids)    cmd_pids ;;
  test)    cmd_test ;;
  up)      cmd_install; cmd_start; cmd_test ;;
  *) sed -n '2,40p' "$0"; exit 2 ;;
esac
