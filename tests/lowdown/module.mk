# tests/lowdown — incremental images, dirty tracking, compression (docs/incremental.md).
LOWDOWN_TEST_SRCS := $(wildcard tests/lowdown/*.c)
LOWDOWN_TEST_BINS := $(patsubst tests/lowdown/%.c,$(BUILD)/bin/zt-lowdown-%,$(LOWDOWN_TEST_SRCS))
TEST_PROGS += $(LOWDOWN_TEST_BINS)
TESTS      += $(wildcard tests/lowdown/*.t)
OBJS       += $(call objs,$(LOWDOWN_TEST_SRCS))

$(BUILD)/bin/zt-lowdown-%: $(BUILD)/tests/lowdown/%.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ -lzstd
