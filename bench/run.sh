#!/bin/sh
# bench/run.sh — run every benchmark and compare with the previous run.
#
# Each bench/*.sh prints figures as lines
#     BENCH <name> <value> <unit> [<comment, e.g. the target>]
# (anything else it prints is shown as is).  This script runs them all (or
# the ones named on the command line), prints a table with the previous
# run's value and the change, and keeps this run in $ZAPC_BUILD/bench/ for
# the next comparison.  Benchmarks print figures; they do not pass or fail.
set -u
cd "$(dirname "$0")/.."
: "${ZAPC_BUILD:=$PWD/build}"
export ZAPC_BUILD ZAPC_SRC="$PWD" ZBIN="$ZAPC_BUILD/bin"
out=$ZAPC_BUILD/bench
mkdir -p "$out"
prev=$out/previous.txt
[ -f "$out/last.txt" ] && cp "$out/last.txt" "$prev"
now=$out/current.txt
: > "$now"

if [ $# -gt 0 ]; then list="$*"; else list=$(ls bench/*.sh 2>/dev/null | grep -v '/run.sh$'); fi
for b in $list; do
	echo "== $b"
	# each with the interpreter its first line names (cluster.sh is bash)
	interp=$(sed -n '1s/^#![[:space:]]*//p' "$b"); [ -n "$interp" ] || interp=sh
	timeout -k 5 900 $interp "$b" 2>&1 | while IFS= read -r line; do
		case "$line" in
		BENCH\ *) echo "$line" >> "$now"; echo "   ${line#BENCH }" ;;
		*) echo "   $line" ;;
		esac
	done
done

echo
echo "== summary (previous run in $prev)"
printf '%-44s %14s %14s %8s  %s\n' figure this previous change note
while read -r _ name val unit rest; do
	old=$( [ -f "$prev" ] && awk -v n="$name" '$2 == n { print $3 }' "$prev" | tail -1)
	chg=""
	if [ -n "$old" ]; then
		chg=$(awk -v a="$val" -v b="$old" 'BEGIN { if (b + 0 != 0) printf "%+.0f%%", (a - b) * 100 / b }')
	fi
	printf '%-44s %14s %14s %8s  %s\n' "$name" "$val $unit" "${old:+$old $unit}" "$chg" "$rest"
done < "$now"
# Keep figures of benchmarks not run this time, so a partial run compares too.
{ [ -f "$prev" ] && awk 'NR == FNR { seen[$2] = 1; next } !($2 in seen)' "$now" "$prev"; cat "$now"; } \
	> "$out/last.txt.new" && mv "$out/last.txt.new" "$out/last.txt"
