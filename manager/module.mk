# manager/ — zapc-manager: coordinated checkpoint, restart and migration of
# jobs across nodes (docs/manager-protocol.md).
MANAGER_SRCS := manager/main.c manager/conn.c manager/ops.c
OBJS         += $(call objs,$(MANAGER_SRCS))
SBINS        += $(BUILD)/bin/zapc-manager

$(BUILD)/bin/zapc-manager: $(call objs,$(MANAGER_SRCS)) $(LIBZAPC)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Names and addresses are bounded on purpose (truncation is the intent).
$(call objs,$(MANAGER_SRCS)): CFLAGS += -Wno-format-truncation
