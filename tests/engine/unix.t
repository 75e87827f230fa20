#!/bin/bash
# unix.t — AF_UNIX sockets across a checkpoint: stream, datagram and
# seqpacket socketpairs with data queued in both directions (kept in order,
# message boundaries kept), an accepted connection and its client, two
# clients waiting in a path listener's accept queue (accept() returns them
# in the original order), an abstract listener that accepts new clients, a
# bound datagram socket with queued datagrams and a socket connected to it,
# a half-closed stream (data, then EOF), and two bound datagram sockets
# connected to each other with a datagram queued each way, and a pipe end
# in flight (SCM_RIGHTS) that arrives as the same pipe.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
. "$(dirname "$0")/fdobj.sh"
need_root
plan 4
fdobj_run unix zux
is "$FDOBJ_OUT" "pair=hello,world! dgram=a,bb,ccc seq=m1,msg2 conn=req,resp pending=first,second reply=back abstract=0,1 bound=d1,d22,x1 half=bye,EOF named=p2,p1,p3 inflight=fdmsg,via,after" \
	"every socket, queue, connection and pending connection kept"
