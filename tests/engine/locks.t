#!/bin/bash
# locks.t — file locks survive checkpoint/restore: an flock, POSIX WRITE and
# READ locks, an OFD lock and a child's own POSIX lock are held again by the
# restored processes (an outside checker finds each locked range busy and the
# rest free, /proc/locks names the restored pids) and the program goes on
# using them; a snapshot leaves the pod's locks as they were; a restore that
# finds a conflicting lock held outside the pod fails with one line and
# leaves nothing; leases and a flock kept only by a mapping fail the dump
# with the pod running on; sqlite3 in an exclusive transaction keeps others
# out across a checkpoint and commits afterwards.  A child blocked in
# F_SETLKW at the checkpoint waits again after restore and gets the lock.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 30

d=$(mktemp -d /tmp/zeng-locks.XXXXXX); on_exit "rm -rf $d"
LK=$ZBIN/zt-locks

# locks_of DIR [INIT]: the locks on DIR's files as "file KIND TYPE owner start
# end", the owner pid as init, or child for a child of INIT; waiters_of: the
# requests blocked on them ("->" lines) the same way
_locks() {
	kids=" $(cat /proc/$2/task/*/children 2>/dev/null) "
	for f in flock posix ofd child wait; do
		[ -e "$1/$f" ] || continue
		awk -v ino=":$(stat -c %i "$1/$f")" -v f=$f -v i="${2:-none}" -v kids="$kids" -v w="$3" '
			{ if (w) { if ($2 != "->") next; $1 = ""; $0 = $0 } else if ($2 == "->") next }
			substr($6, length($6) - length(ino) + 1) == ino {
				o = $5; if (o == i) o = "init"; else if (index(kids, " " o " ")) o = "child"
				print f, $2, $4, o, $7, $8 }' /proc/locks
	done | sort
}
locks_of() { _locks "$1" "$2" ""; }
waiters_of() { _locks "$1" "$2" 1; }
parent_of() { awk '/^PPid/ {print $2}' /proc/$1/status 2>/dev/null; }
# the checker: a result per attempt, from outside the pod
check_all() {
	dir=$1
	for a in "flock flock w 0 0" "posix posix w 100 100" "posix posix r 150 1" "posix posix w 250 10" \
		 "posix posix r 250 10" "posix posix w 0 100" "ofd ofd r 0 1" "child posix w 0 1" "child posix w 10 1"; do
		set -- $a
		t_timeout 10 "$LK" try "$dir/$1" "$2" "$3" "$4" "$5" 2>&1
	done | tr '\n' ' '
}
WANT_LOCKS="child POSIX WRITE child 0 9
flock FLOCK WRITE init 0 EOF
ofd OFDLCK WRITE -1 0 EOF
posix POSIX READ init 200 EOF
posix POSIX WRITE init 100 199
wait POSIX WRITE init 0 0"
# flock, write 100-199 (w, r), read 200-EOF (w busy, r ok), 0-99 free, OFD, the child's 0-9 and 10
WANT_CHECK="busy busy busy busy ok ok busy busy ok "

# --- checkpoint (the pod ends) and restore
pod_start zl "$LK" hold "$d"; ok $? "pod started"
wait_for 5 test -e "$d/ready"
is "$(locks_of "$d" "$POD_INIT")" "$WANT_LOCKS" "the program holds its six locks"
is "$(waiters_of "$d" "$POD_INIT")" "wait POSIX WRITE child 0 0" "a child waits for one of them in F_SETLKW"
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img"; ok $? "dump"
wait_for 5 pod_gone "$POD_CG"
is "$(locks_of "$d")" "" "the pod is gone and so are its locks"
is "$(t_timeout 10 "$ZBIN/zapc-engine" show "$d/img" | grep -c '^lock: ')" 6 "the image has the six locks"
pod_restore "$d/img" zlr; ok $? "restore"
is "$(locks_of "$d" "$RPOD_INIT")" "$WANT_LOCKS" "/proc/locks: the same locks, owned by the restored init and child"
is "$(waiters_of "$d" "$RPOD_INIT")" "wait POSIX WRITE child 0 0" "the restored waiter waits again"
is "$(check_all "$d")" "$WANT_CHECK" "from outside: every locked range is busy, the free ones can be taken"
owner=$(t_timeout 10 "$LK" owner "$d/child" 0 10)
is "$(t_timeout 10 "$LK" owner "$d/posix" 100 100) $(parent_of "$owner")" \
	"$RPOD_INIT $RPOD_INIT" "F_GETLK names the restored init and its child as the owners"
kill -USR1 "$RPOD_INIT"
wait_for 5 test -e "$d/released"; ok $? "the restored program runs and drops its WRITE lock on SIGUSR1"
wait_for 5 test -e "$d/waited"
is "$(locks_of "$d" "$RPOD_INIT" | grep ^wait) $(waiters_of "$d" "$RPOD_INIT")" "wait POSIX WRITE child 0 0 " \
	"the waiter got its lock when the restored init let go"
is "$(t_timeout 10 "$LK" try "$d/posix" posix w 100 100) $(t_timeout 10 "$LK" try "$d/posix" posix w 250 10)" \
	"ok busy" "the checker can take that range now; the READ lock is still held"

# --- a restore that finds a conflicting lock held outside the pod
echo 1 > "$RPOD_CG/cgroup.kill"
wait_for 5 pod_gone "$RPOD_CG"
t_timeout 60 "$LK" holdout "$d/posix" 150 10 > "$d/holdout" 2> /dev/null &
hpid=$!; on_exit "kill $hpid 2>/dev/null"
wait_for 5 grep -q held "$d/holdout"
hpid=$(awk '{print $2}' "$d/holdout")     # zt-locks itself
on_exit "kill $hpid 2>/dev/null"
cg=$CGROOT/$(uniq zlx); mkdir "$cg"; on_exit "_pod_cleanup_cg $cg"
t_timeout 60 "$ENGINE" restore -i "$d/img" --cgroup "$cg" > /dev/null 2> "$d/err"
ok $((! $?)) "restore fails while an outside process holds a conflicting lock"
is "$(wc -l < "$d/err") $(grep -c "restore: pid 1 fd [0-9]* ($d/posix): POSIX WRITE lock on bytes 100-199: .*outside the pod holds a conflicting lock" "$d/err")" \
	"1 1" "one line naming pid, fd, file and lock: $(cat "$d/err")"
wait_for 5 pod_gone "$cg"; ok $? "no process of the failed restore is left"
is "$(locks_of "$d" "$hpid") $(waiters_of "$d" "$hpid")" "posix POSIX WRITE init 150 159 " "no lock of the failed restore is left (its flock was taken, then released)"
kill "$hpid"

# --- a snapshot keeps the pod's locks as they were
d2=$d/snap; mkdir "$d2"
pod_start zls "$LK" hold "$d2"
wait_for 5 test -e "$d2/ready"
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/snap.img" --leave-running; ok $? "snapshot"
is "$(locks_of "$d2" "$POD_INIT") $(waiters_of "$d2" "$POD_INIT")" "$WANT_LOCKS wait POSIX WRITE child 0 0" \
	"the pod still holds exactly its six locks, its waiter still waits"
is "$(check_all "$d2")" "$WANT_CHECK" "from outside: the same ranges are busy after the snapshot"
cg=$CGROOT/$(uniq zlsr); mkdir "$cg"; on_exit "_pod_cleanup_cg $cg"
t_timeout 60 "$ENGINE" restore -i "$d/snap.img" --cgroup "$cg" > /dev/null 2> "$d/err2"
is "$? $(grep -c "($d2/flock): flock WRITE lock: .*conflicting lock" "$d/err2")" "1 1" \
	"a copy of the snapshot beside the running pod cannot take its locks: $(cat "$d/err2")"
is "$(locks_of "$d2" "$POD_INIT")" "$WANT_LOCKS" "... and the running pod keeps them"

# --- unsupported: a lease, a flock kept only by a mapping (the pod runs on)
touch "$d/leased" "$d/mapped"
pod_start zll "$LK" lease "$d/leased" > "$d/lease.out"
wait_for 5 grep -q held "$d/lease.out"
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/lease.img" 2> "$d/err3"
is "$? $(wc -l < "$d/err3") $(grep -c "dump: pid 1 fd [0-9]* ($d/leased): '.*LEASE.*' is a lease (F_SETLEASE): not supported" "$d/err3")" \
	"1 1 1" "a lease fails the dump with one line: $(cat "$d/err3")"
ino=$(stat -c %i "$d/leased")
is "$(kill -0 "$POD_INIT" && awk -v ino=":$ino" -v p="$POD_INIT" 'substr($6, length($6) - length(ino) + 1) == ino && $5 == p {print $2}' /proc/locks)" \
	"LEASE" "the pod runs on with its lease"
pod_start zlm "$LK" mapped "$d/mapped" > "$d/mapped.out"
wait_for 5 grep -q held "$d/mapped.out"
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/mapped.img" 2> "$d/err4"
is "$? $(wc -l < "$d/err4") $(grep -c "dump: pid 1: flock WRITE lock on inode .*:$(stat -c %i "$d/mapped") is not held through a file the pod has open" "$d/err4")" \
	"1 1 1" "a flock kept only by a mapping fails the dump with one line: $(cat "$d/err4")"

# --- sqlite3 in an exclusive transaction
if ! command -v sqlite3 > /dev/null; then
	for i in 1 2 3 4; do ok 1 "# SKIP sqlite3 not installed"; done
	exit 0
fi
db=$d/db
t_timeout 10 sqlite3 "$db" "create table t(x); insert into t values(1);"
mkfifo "$d/sql"
exec 7<>"$d/sql"           # our writer; the pod reads its commands from the FIFO
# (a background job's stdin is /dev/null: the redirection is the pod's own)
pod_start zlq sh -c 'exec sqlite3 "$0" < "$1" > "$2" 2>&1' "$db" "$d/sql" "$d/sql.out"
printf 'BEGIN EXCLUSIVE;\nINSERT INTO t VALUES(42);\n' >&7
wait_for 5 sh -c "! sqlite3 '$db' 'select 1' > /dev/null 2>&1"
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/sql.img"; ok $? "dump of sqlite3 in a transaction"
wait_for 5 pod_gone "$POD_CG"
pod_restore "$d/sql.img" zlqr
is "$(t_timeout 10 sqlite3 "$db" 'select count(*) from t' 2>&1 | grep -o 'database is locked')" "database is locked" \
	"another sqlite3 finds the restored one's database locked"
printf 'COMMIT;\n' >&7
wait_for 5 sh -c "sqlite3 '$db' 'select count(*) from t' 2>/dev/null | grep -qx 2"
is "$(t_timeout 10 sqlite3 "$db" 'select x from t order by x' 2>&1 | tr '\n' ' ')" "1 42 " \
	"after the restored sqlite3 commits, the other one sees its row"
is "$(t_timeout 10 sqlite3 "$db" 'pragma integrity_check' 2>&1)" "ok" "the database is intact"
exec 7>&-
