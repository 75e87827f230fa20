#!/bin/sh
# xvfb.t — a desktop in a pod: an X server (Xvfb) with two clients, xlogo and an
# xterm (a pty of the pod's devpts and a shell in it), checkpointed, killed and
# restored.  A screenshot taken after the restore equals the one taken before;
# the restored xterm's shell then prints a line and the X server draws it (the
# screen changes), so server, client connections and pty all work on.
# Screenshots are taken from inside the pod (`zapc pod exec`): an X connection
# from outside would be a unix socket with its peer outside the pod.
. "${ZAPC_SRC:-.}/tests/lib.sh"
need_root
for p in Xvfb xterm xlogo xwd xwininfo; do
	command -v $p > /dev/null || skip_all "needs $p (make deps)"
done
plan 7

Z="t_timeout 30 $ZBIN/zapc"
agent_start zxv || exit 1
d=$(mktemp -d /tmp/zapc-xvfb.XXXXXX)
D=:$(( 50 + $$ % 900 ))
on_exit "rm -rf '$d' /tmp/.X11-unix/X${D#:} /tmp/.X${D#:}-lock"

cat > "$d/session.sh" <<SH
Xvfb $D -nolisten tcp -screen 0 320x240x24 -nocursor > $d/xvfb.log 2>&1 &
for i in \$(seq 100); do [ -e /tmp/.X11-unix/X${D#:} ] && break; sleep 0.05; done
xlogo -display $D -geometry 100x100+0+0 &
xterm -display $D -geometry 30x6+110+0 -e sh -c 'echo hello from zapc; while [ ! -e $d/go ]; do sleep 0.1; done; echo after the restore; exec sleep 100000' &
wait
SH
$Z pod create desk -- sh "$d/session.sh" > /dev/null
ok $? "a pod runs Xvfb, xlogo and an xterm"
shot() { $Z pod exec desk -- sh -c "xwd -root -display $D -silent | md5sum" | cut -d' ' -f1; }
mapped() { [ "$($Z pod exec desk -- xwininfo -display $D -root -children 2>/dev/null | grep -c '"xlogo"\|"xterm"')" -ge 2 ]; }
wait_for 15 mapped
ok $? "both clients' windows are on the screen"
sleep 1
s1=$(shot)
[ "$(shot)" = "$s1" ] || { sleep 1; s1=$(shot); }

$Z checkpoint desk -o "$d/img" > "$d/ck.out" 2>&1 && $Z restore "$d/img" > "$d/rs.out" 2>&1
ok $? "the desktop is checkpointed (pod killed) and restored $(cat "$d/ck.out" "$d/rs.out" | grep zapc: | head -1)"
s2=$(shot)
is "$s2" "$s1" "the screen after the restore equals the screen before (xwd checksum)"
mapped
ok $? "the X server still lists both clients' windows"
touch "$d/go"
changed() { [ "$(shot)" != "$s2" ]; }
wait_for 5 changed
ok $? "the restored xterm's shell prints and the X server draws it (the screen changes)"
$Z pod destroy desk > /dev/null
ok $? "pod destroyed"
