#!/usr/bin/env bash
# Single-node SLURM cluster for tests (Debian 12, root, no systemd): munge, slurmctld, slurmd,
# optional slurmdbd + MariaDB for sacct. Daemons are started by hand and stopped by PID.
# usage: ci_slurm.sh up|down
#   SLURM_CI_DIR  state dir              (default /tmp/slurmci)
#   SLURM_CI_DBD  1 = slurmdbd+MariaDB   (default 0: no accounting, sacct disabled)
set -euo pipefail
D=${SLURM_CI_DIR:-/tmp/slurmci}
DBD=${SLURM_CI_DBD:-0}
H=$(hostname -s)

waitfor() {  # waitfor <seconds> <cmd...>
  local n=$1; shift
  for _ in $(seq $((n * 2))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "timeout waiting for: $*" >&2; return 1
}

up() {
  export DEBIAN_FRONTEND=noninteractive
  local pkgs="munge slurmctld slurmd slurm-client"
  [ "$DBD" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $pkgs >/dev/null   # daemons are NOT auto-started (policy-rc.d)
  mkdir -p "$D"/{munge,state/ctld,state/d,log,run}
  chmod 755 "$D/munge"                    # munged insists the socket dir is world-executable
  [ -f "$D/munge/munge.key" ] || mungekey -c -k "$D/munge/munge.key"
  local sock="$D/munge/munge.socket.2"
  munged --socket="$sock" --key-file="$D/munge/munge.key" --log-file="$D/log/munged.log" \
         --pid-file="$D/run/munged.pid" --seed-file="$D/munge/munged.seed"
  waitfor 10 munge -n --socket="$sock"

  local acct="AccountingStorageType=accounting_storage/none"
  [ "$DBD" = 1 ] && acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStoragePass=$sock"     # munge socket for the ctld->dbd persistent connection
  local mem=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
  local cpus=$(nproc)
  # Must be the compiled-in default path: the slurm-jobstep plugin strips SLURM_* (incl. SLURM_CONF)
  # from the env of the inner srun, so a SLURM_CONF elsewhere breaks every job.
  cat > /etc/slurm/slurm.conf <<EOF
ClusterName=ci
SlurmctldHost=$H(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
StateSaveLocation=$D/state/ctld
SlurmdSpoolDir=$D/state/d
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
$acct
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=300
NodeName=$H NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  if [ "$DBD" = 1 ]; then
    mariadb-install-db --user=root --datadir="$D/mysql" --auth-root-authentication-method=socket \
                       --skip-test-db >"$D/log/mysql-install.log" 2>&1
    nohup mariadbd --user=root --datadir="$D/mysql" --socket="$D/run/mysqld.sock" \
          --pid-file="$D/run/mysqld.pid" --bind-address=127.0.0.1 --port=3306 \
          --log-error="$D/log/mysqld.log" >/dev/null 2>&1 &
    waitfor 30 mariadb --socket="$D/run/mysqld.sock" -uroot -e 'select 1'
    mariadb --socket="$D/run/mysqld.sock" -uroot -e "
      CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmci';
      GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
    cat > /etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
AuthInfo=socket=$sock
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$D/log/slurmdbd.log
PidFile=$D/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=slurmci
StorageLoc=slurm_acct_db
EOF
    chmod 600 /etc/slurm/slurmdbd.conf
    slurmdbd
    waitfor 30 sacctmgr -n show cluster
  fi
  slurmctld
  slurmd
  waitfor 30 bash -c "sinfo -h -o %T | grep -qx idle"
  srun -t 1 hostname
}

down() {
  for p in slurmd slurmctld slurmdbd mysqld munged; do
    f="$D/run/$p.pid"; [ -f "$f" ] || continue
    pid=$(cat "$f"); kill "$pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    rm -f "$f"
  done
  rm -f /etc/slurm/slurm.conf /etc/slurm/slurmdbd.conf
}

"${1:?usage: $0 up|down}"
