# tests/engine — the engine's shell tests and the programs they checkpoint.
ENGINE_TEST_SRCS := $(wildcard tests/engine/*.c)
ENGINE_TEST_BINS := $(patsubst tests/engine/%.c,$(BUILD)/bin/zt-%,$(ENGINE_TEST_SRCS))
TEST_PROGS += $(ENGINE_TEST_BINS)
TESTS      += $(wildcard tests/engine/*.t)
OBJS       += $(call objs,$(ENGINE_TEST_SRCS))

$(BUILD)/bin/zt-%: $(BUILD)/tests/engine/%.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ -lpthread

# bench/engine_memcpy.c: the memcpy floor printed by bench/engine_bench.sh
TEST_PROGS += $(BUILD)/bin/bench-engine-memcpy
OBJS       += $(call objs,bench/engine_memcpy.c)
$(BUILD)/bin/bench-engine-memcpy: $(BUILD)/bench/engine_memcpy.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^

# bench/engine_fillfloor.c: the fresh-memory floor printed by bench/engine_bench.sh
TEST_PROGS += $(BUILD)/bin/bench-engine-fillfloor
OBJS       += $(call objs,bench/engine_fillfloor.c)
$(BUILD)/bin/bench-engine-fillfloor: $(BUILD)/bench/engine_fillfloor.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ -lpthread

# tests/engine/tools/cowedit.c: rewrites the pages a process shares with its
# parent in an image, with valid checksums (cowshare.t: lying images)
TEST_PROGS += $(BUILD)/bin/zt-cowedit
OBJS       += $(call objs,tests/engine/tools/cowedit.c)
$(BUILD)/bin/zt-cowedit: $(BUILD)/tests/engine/tools/cowedit.o $(LIBZAPC)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ -lprotobuf-c
