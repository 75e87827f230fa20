#!/bin/bash
# show.t — `zapc-engine show` summarises an image (processes, threads, memory
# regions, fds, sizes) as text and as JSON, and rejects a damaged image.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 6

d=$(mktemp -d /tmp/zeng-show.XXXXXX); on_exit "rm -rf $d"
pod_start zw "$ZBIN/zt-threads" > "$d/out" || exit 1
sleep 0.2
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img" --leave-running --name showpod; ok $? "dump"
"$ENGINE" show "$d/img" > "$d/text"; ok $? "show"
grep -q '^process 1 .* zt-threads, 5 threads' "$d/text" && grep -q 'vdso' "$d/text" && grep -q 'fd 1: file' "$d/text"
ok $? "text lists the process, its threads, memory regions and fds"
"$ENGINE" show "$d/img" --json > "$d/json"
python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
p = j["processes"][0]
assert j["pod"] == "showpod" and p["pid"] == 1 and p["threads"] == 5 and j["threads"] == 5
assert any(v["kind"] == "vdso" for v in p["vmas"]) and any(f["fd"] == 1 for f in p["fds"])
assert p["page_bytes"] > 0 and j["image_bytes"] > p["page_bytes"]' "$d/json"; ok $? "JSON has the same facts"
head -c 5000 "$d/img" > "$d/trunc"
"$ENGINE" show "$d/trunc" > /dev/null 2> "$d/err"; rc=$?
[ $rc -ne 0 ] && [ "$(wc -l < "$d/err")" = 1 ]; ok $? "a truncated image is rejected: $(cat "$d/err")"
kill -0 "$POD_INIT"; ok $? "the pod still runs (--leave-running)"
