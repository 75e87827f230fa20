#!/bin/bash
# realprogs.t — real programs checkpointed mid-run, killed, restored, and
# producing the same output as an uninterrupted run: python3 in the middle of
# a computation, sqlite3 writing to an open database.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
command -v python3 >/dev/null && command -v sqlite3 >/dev/null || skip_all "needs python3 and sqlite3"
plan 9

d=$(mktemp -d /tmp/zeng-real.XXXXXX); on_exit "rm -rf $d"
py=$(command -v python3); py=$(readlink -f "$(python3 -c 'import sys; print(sys.executable)')")
cat > "$d/calc.py" <<'PY'
import hashlib
h = hashlib.sha256()
acc = 0
for i in range(12000000):
    acc = (acc * 31 + i * i) % 1000000007
    if i % 300000 == 0:
        h.update(str(acc).encode())
print(acc, h.hexdigest())
PY
want=$("$py" "$d/calc.py")
pod_start zpy "$py" "$d/calc.py" > "$d/py.out"; ok $? "python3 started"
sleep 0.3
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/py.img"; ok $? "python3 dumped mid-run"
[ -s "$d/py.out" ] && diag "python finished before the dump"
pod_restore "$d/py.img" zpyr; ok $? "python3 restored"
wait_for 30 test -s "$d/py.out"
is "$(cat "$d/py.out")" "$want" "python3 prints the same result"

cat > "$d/db.sql" <<'SQL'
CREATE TABLE t(x INTEGER, y TEXT);
BEGIN;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1500000)
INSERT INTO t SELECT i, hex(i * 7919) FROM c;
COMMIT;
SELECT count(*), sum(x), max(y) FROM t;
SQL
sqlite3 "$d/ref.db" < "$d/db.sql" > "$d/ref.out"
pod_start zsq sh -c "exec sqlite3 '$d/test.db' < '$d/db.sql'" > "$d/sq.out"; ok $? "sqlite3 started"
sleep 0.4
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/sq.img" 2> "$d/sq.err"; ok $? "sqlite3 dumped mid-run $(cat "$d/sq.err")"
[ -s "$d/sq.out" ] && diag "sqlite3 finished before the dump"
pod_restore "$d/sq.img" zsqr; ok $? "sqlite3 restored"
wait_for 30 test -s "$d/sq.out"
is "$(cat "$d/sq.out")" "$(cat "$d/ref.out")" "sqlite3 gives the same result"
is "$(sqlite3 "$d/test.db" 'PRAGMA integrity_check')" ok "the database is intact"
