# agent/ — zapc-agent (API server, pods) and zapc-init (pid 1 of every pod).
# agent/engine/ has its own module.mk.  pod_mounts.o can be linked alone by
# other programs (zapc-engine): it needs only libc and lib/log.
AGENT_SRCS := agent/main.c agent/server.c agent/pod.c agent/pod_mounts.c agent/peer.c \
              agent/cgroup.c agent/netlink.c agent/ops.c
INIT_SRCS  := agent/init.c
OBJS       += $(call objs,$(AGENT_SRCS) $(INIT_SRCS))
SBINS      += $(BUILD)/bin/zapc-agent
LIBEXEC    += $(BUILD)/bin/zapc-init
POD_MOUNTS_OBJ := $(call objs,agent/pod_mounts.c)

# libnetstate.a by path (netstate/module.mk is read later): the agent loads
# netstate's BPF reader once for its dump engines (ops.c bpf_loader)
$(BUILD)/bin/zapc-agent: $(call objs,$(AGENT_SRCS)) $(BUILD)/libnetstate.a $(LIBZAPC)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The same agent with plain-TCP migration streams, for bench/cluster.sh's
# like-with-like TLS comparison only (peer.c plain_streams); not installed.
TEST_PROGS += $(BUILD)/bin/zapc-agent-plainbench
OBJS       += $(BUILD)/agent/peer-plainbench.o
$(BUILD)/agent/peer-plainbench.o: agent/peer.c | $(BUILD)/.deps-ok $(GEN_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -DZAPC_BENCH_PLAIN_STREAMS -c -o $@ $<
$(BUILD)/bin/zapc-agent-plainbench: $(call objs,$(filter-out agent/peer.c,$(AGENT_SRCS))) \
		$(BUILD)/agent/peer-plainbench.o $(BUILD)/libnetstate.a $(LIBZAPC)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/zapc-init: $(call objs,$(INIT_SRCS))
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^
