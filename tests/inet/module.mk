# tests/inet — TCP/UDP sockets of pods through zapc checkpoint/restore
# (agent/engine/inet.c).  zi_stream is the peer, the pod's programs and the
# bench's client in one program.
INET_TEST_SRCS := $(wildcard tests/inet/*.c)
INET_TEST_BINS := $(patsubst tests/inet/%.c,$(BUILD)/bin/%,$(INET_TEST_SRCS))
TEST_PROGS += $(INET_TEST_BINS)
TESTS      += $(wildcard tests/inet/*.t)
OBJS       += $(call objs,$(INET_TEST_SRCS))

$(INET_TEST_BINS): $(BUILD)/bin/%: $(BUILD)/tests/inet/%.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^
