# tests/cluster — TLS/CA tests, the simulated cluster, MPI programs.
#
# cli/ca.c is built here only for the test driver and the TLS test; the
# zapc binary (cli/module.mk, foundation) links the same object.

CA_OBJ := $(call objs,cli/ca.c)
OBJS   += $(CA_OBJ) $(call objs,tests/cluster/ca-tool.c tests/cluster/tls_test.c \
	  bench/tls_throughput.c)

# `zapc ca` stand-in for tests (same cmd_ca).
TEST_PROGS += $(BUILD)/bin/ca-tool
$(BUILD)/bin/ca-tool: $(call objs,tests/cluster/ca-tool.c) $(CA_OBJ) $(LIBZAPC)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# lib/tls against real loopback peers (also runs under ASan/UBSan in make check).
UNIT_TESTS += $(BUILD)/tests/cluster/tls_test.t
$(BUILD)/tests/cluster/tls_test.t: $(call objs,tests/cluster/tls_test.c) $(CA_OBJ) $(LIBZAPC)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The simulated cluster's route hook in one process (simcluster route/unroute).
OBJS += $(call objs,tests/cluster/simroute.c)
TEST_PROGS += $(BUILD)/bin/zapc-simroute
$(BUILD)/bin/zapc-simroute: $(call objs,tests/cluster/simroute.c)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^

# Benchmark: plain TCP vs lib/tls throughput (bench/tls_throughput.c).
TEST_PROGS += $(BUILD)/bin/tls_throughput
$(BUILD)/bin/tls_throughput: $(call objs,bench/tls_throughput.c) $(CA_OBJ) $(LIBZAPC)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# MPI programs, built with MPICH's mpicc and without sanitizers (they run
# under mpiexec with an LD_PRELOAD shim, which ASan would refuse).
MPICC      ?= mpicc
MPI_CFLAGS := -std=gnu17 -O2 -g -Wall -Wextra -Werror
MPI_PROGS  := $(patsubst tests/cluster/mpi/%.c,$(BUILD)/tests/cluster/mpi/%, \
		$(filter-out tests/cluster/mpi/ucxforceclose.c,$(wildcard tests/cluster/mpi/*.c)))
MPI_SHIM   := $(BUILD)/tests/cluster/mpi/libucxforceclose.so
TEST_PROGS += $(MPI_PROGS) $(MPI_SHIM)

$(MPI_PROGS): $(BUILD)/tests/cluster/mpi/%: tests/cluster/mpi/%.c tests/cluster/mpi/mpitest.h \
		| $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	$(MPICC) $(MPI_CFLAGS) -I. -o $@ $< -lm

$(MPI_SHIM): tests/cluster/mpi/ucxforceclose.c | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	$(CC) -O2 -g -Wall -Wextra -Werror -shared -fPIC -o $@ $<

TESTS += $(wildcard tests/cluster/*.t)
