# netstate/ — socket state capture/restore and the traffic hold (docs/netstate.md).
# Built as $(BUILD)/libnetstate.a; the engine/agent link it with $(LIBZAPC).
NETSTATE_SRCS := $(wildcard netstate/*.c)
NETSTATE_LIB  := $(BUILD)/libnetstate.a
OBJS          += $(call objs,$(NETSTATE_SRCS))

# proto/netstate.proto is compiled into $(LIBZAPC) by proto/module.mk.
$(NETSTATE_LIB): $(call objs,$(NETSTATE_SRCS))
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

all: $(NETSTATE_LIB)

# Test programs (tests/netstate/*.c) and benchmarks (bench/netstate_*.c).
NETSTATE_TPROGS := $(patsubst tests/netstate/%.c,$(BUILD)/bin/%,$(wildcard tests/netstate/*.c))
NETSTATE_BENCH  := $(patsubst bench/%.c,$(BUILD)/bin/%,$(wildcard bench/netstate_*.c))
TEST_PROGS += $(NETSTATE_TPROGS) $(NETSTATE_BENCH)
OBJS       += $(call objs,$(wildcard tests/netstate/*.c) $(wildcard bench/netstate_*.c))
TESTS      += $(wildcard tests/netstate/*.t)

$(NETSTATE_TPROGS): $(BUILD)/bin/%: $(BUILD)/tests/netstate/%.o $(NETSTATE_LIB) $(LIBZAPC)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(NETSTATE_BENCH): $(BUILD)/bin/%: $(BUILD)/bench/%.o $(NETSTATE_LIB) $(LIBZAPC)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The record validator's unit test runs with the unit tests (also under SAN).
UNIT_TESTS += $(BUILD)/bin/ns_validate

# The BPF reader (docs/netstate.md, "BPF reader"): bpf/tcpstate.bpf.c
# compiled with clang for the BPF target (CO-RE: no vmlinux.h needed) and
# embedded in libnetstate by bpf_obj.S.  Loaded with libbpf (dlopen, see bpf.c).
NETSTATE_BPF_OBJ := $(BUILD)/netstate/tcpstate.bpf.o
$(NETSTATE_BPF_OBJ): netstate/bpf/tcpstate.bpf.c netstate/bpf_rec.h | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	clang -target bpf -O2 -g -Wall -Werror -I. -I/usr/include/$(shell $(CC) -dumpmachine) -c -o $@ $<
$(BUILD)/netstate/bpf_obj.o: netstate/bpf_obj.S $(NETSTATE_BPF_OBJ)
	@mkdir -p $(@D)
	$(CC) -DNS_BPF_OBJ='"$(NETSTATE_BPF_OBJ)"' -c -o $@ $<
$(NETSTATE_LIB): $(BUILD)/netstate/bpf_obj.o
# libbpf itself is dlopen()ed by bpf.c when the reader is prepared (not linked: start-up cost).
