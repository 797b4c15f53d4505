#!/usr/bin/env bash
# A one-node SLURM cluster with accounting (slurmdbd + MariaDB) on this machine,
# for the integration test. Needs root and Debian's slurm-wlm, munge, slurmdbd,
# mariadb-server. Usage: cluster.sh start | stop | status
set -euo pipefail
HOST=$(hostname -s)
# pid files of the daemons start() launches, in the order stop() ends them
PIDFILES="/run/slurmd.pid /run/slurmctld.pid /run/slurmdbd.pid /run/mysqld/mysqld.pid /run/munge/munged.pid"

wait_for() {  # wait_for SECONDS command...
  local limit=$1; shift
  for _ in $(seq 1 $((limit * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for: $*" >&2; return 1
}

BACKUP=/etc/slurm/.iliasknn-backup  # the machine's own slurm configuration, if it had one

start() {
  local cpus mem
  if [ ! -d "$BACKUP" ]; then
    mkdir -p "$BACKUP"
    for f in slurm.conf slurmdbd.conf; do if [ -f "/etc/slurm/$f" ]; then cp -p "/etc/slurm/$f" "$BACKUP/"; fi; done
  fi
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm /run/munge /run/mysqld
  chown slurm: /var/lib/slurm/slurmctld /var/log/slurm
  chown munge: /run/munge
  chown mysql: /run/mysqld
  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=iliasknn
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
MinJobAge=300
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  cat > /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=iliasknn
StorageLoc=slurm_acct_db
PidFile=/run/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
CONF
  chown slurm: /etc/slurm/slurmdbd.conf
  chmod 600 /etc/slurm/slurmdbd.conf
  stop_daemons  # leftovers of an earlier run that was not stopped
  rm -rf /var/lib/slurm/slurmctld/* /var/lib/slurm/slurmd/*  # a fresh cluster: no jobs from earlier runs

  [ -f /etc/munge/munge.key ] || { mungekey --create; chown munge: /etc/munge/munge.key; chmod 600 /etc/munge/munge.key; }
  runuser -u munge -- /usr/sbin/munged
  wait_for 10 sh -c 'munge -n | unmunge'

  (mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid > /var/log/slurm/mariadb.log 2>&1 &)
  wait_for 30 mariadb-admin ping
  mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'iliasknn';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

  /usr/sbin/slurmdbd
  wait_for 30 sacctmgr -n list cluster
  sacctmgr -i add cluster iliasknn >/dev/null 2>&1 || true

  /usr/sbin/slurmctld
  /usr/sbin/slurmd
  wait_for 30 sh -c 'sinfo -h -o %t | grep -qx idle'
  echo "SLURM up: $(sinfo -h -o '%P %t %c CPUs %m MB')"
}

stop() {
  stop_daemons
  # Put the machine's own configuration back (or none): with a slurm.conf whose
  # controller is down, every scontrol call, and so every Snakemake start (the
  # SLURM plugin calls it on import), waits about 9 s.
  if [ -d "$BACKUP" ]; then
    rm -f /etc/slurm/slurm.conf /etc/slurm/slurmdbd.conf
    cp -p "$BACKUP"/* /etc/slurm/ 2>/dev/null || true
    rm -rf "$BACKUP"
  fi
}

stop_daemons() {
  # slurmd, slurmctld, slurmdbd, mariadbd, munged: each by the pid in its pid file
  for pidfile in $PIDFILES; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      echo "stopped $(basename "$pidfile" .pid) ($pid)"
    fi
    rm -f "$pidfile"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo; squeue ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
