#!/bin/bash
# memfd.t — a sealed memfd keeps its name, content, offset and seals (growing
# it still fails); a memfd that is also mapped shared stays one file with
# its mapping (a write through the fd shows in the mapping, and the page
# written through the mapping is there); an open file unlinked before the
# checkpoint keeps its content, offset and mode and stays nameless.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
. "$(dirname "$0")/fdobj.sh"
need_root
plan 4
fdobj_run memfd zmf
is "$FDOBJ_OUT" "memfd=memfd link=/memfd:zt-data (deleted) seals=6 grow=-1 mapped=X,mapped deleted=content links=0 mode=640" \
	"memfd content, seals, sharing with its mapping; deleted file content"
