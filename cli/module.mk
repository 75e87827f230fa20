# cli/ — zapc, the command line.  One file per command group (cli/pod.c, ...),
# each registered by one line in the table of cli/main.c.  New files in cli/
# are picked up automatically.
CLI_SRCS := $(wildcard cli/*.c)
OBJS     += $(call objs,$(CLI_SRCS))
BINS     += $(BUILD)/bin/zapc

$(BUILD)/bin/zapc: $(call objs,$(CLI_SRCS)) $(LIBZAPC)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
