# agent/engine — zapc-engine, the checkpoint/restart engine (one program per operation).
# proto/image.proto is compiled into $(LIBZAPC) by proto/module.mk; the pod
# mount set-up is shared with the agent (agent/pod_mounts.c).
ENGINE_SRCS  := $(wildcard agent/engine/*.c)
LIBEXEC      += $(BUILD)/bin/zapc-engine
OBJS         += $(call objs,$(ENGINE_SRCS))

# libnetstate.a by path: netstate/module.mk (NETSTATE_LIB) is read after this file
$(BUILD)/bin/zapc-engine: $(call objs,$(ENGINE_SRCS) agent/pod_mounts.c) $(BUILD)/libnetstate.a $(LIBZAPC)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -Wl,-z,now -o $@ $^ $(LDLIBS)
