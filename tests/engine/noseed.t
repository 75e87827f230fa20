#!/bin/bash
# noseed.t — the restore path without zapc-restore-seed (ZAPC_RESTORE_SEED=0:
# every task a fork of the engine that drops the engine's memory itself,
# docs/engine.md "Creating the tasks") keeps the process tree of tree.t:
# pids, parents, sessions, groups, a zombie, a stopped process, the counter.
ZAPC_RESTORE_SEED=0 exec "$(dirname "$0")/tree.t"
