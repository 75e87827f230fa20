# tests/unit — one C file per unit test, each a TAP program linked with libzapc.
UNIT_SRCS  := $(wildcard tests/unit/*.c)
UNIT_TESTS += $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%.t,$(UNIT_SRCS))
OBJS       += $(call objs,$(UNIT_SRCS))

$(BUILD)/tests/unit/%.t: $(BUILD)/tests/unit/%.o $(LIBZAPC)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
