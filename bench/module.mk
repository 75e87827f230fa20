# bench/ — benchmark programs (run by bench/run.sh via the bench/*.sh scripts).
BENCH_PROGS := $(BUILD)/bin/bench-image
TEST_PROGS  += $(BENCH_PROGS)
OBJS        += $(call objs,bench/image_bench.c)

$(BUILD)/bin/bench-image: $(call objs,bench/image_bench.c) $(LIBZAPC)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# bench-walltime: times one command without the shell's own overhead
TEST_PROGS  += $(BUILD)/bin/bench-walltime
OBJS        += $(call objs,bench/walltime.c)
$(BUILD)/bin/bench-walltime: $(call objs,bench/walltime.c)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^
