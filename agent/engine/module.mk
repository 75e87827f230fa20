# agent/engine — zapc-engine, the checkpoint/restart engine (one program per operation).
# proto/image.proto is compiled into $(LIBZAPC) by proto/module.mk; the pod
# mount set-up is shared with the agent (agent/pod_mounts.c).
ENGINE_SRCS  := $(wildcard agent/engine/*.c)
LIBEXEC      += $(BUILD)/bin/zapc-engine
OBJS         += $(call objs,$(ENGINE_SRCS))

# Start-up is part of every checkpoint and restore: every shared library
# costs its mappings, relocations and first-touch faults (~10 us each on
# this VM).  So no libcrypto (lib/sha256.c), and the libraries that ship an
# archive are linked in statically; libmnl and libnfnetlink have none.
ENGINE_LDLIBS := -Wl,-Bstatic -levent -lprotobuf-c -lzstd -lnetfilter_queue -Wl,-Bdynamic \
		 -lmnl -lnfnetlink -lpthread

# libnetstate.a by path: netstate/module.mk (NETSTATE_LIB) is read after this file
$(BUILD)/bin/zapc-engine: $(call objs,$(ENGINE_SRCS) agent/pod_mounts.c) $(BUILD)/libnetstate.a $(LIBZAPC)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -Wl,-z,now -Wl,--as-needed -o $@ $^ $(ENGINE_LDLIBS)

# zapc-restore-seed: the tiny static program the restored tasks are forked
# from (seed.h).  Freestanding: no libc, no sanitizers, its own flags; linked
# at SEED_BASE (seed.h: its text, scratch, stack and plan share one leaf page table).
SEED_BIN := $(BUILD)/bin/zapc-restore-seed
LIBEXEC  += $(SEED_BIN)
$(SEED_BIN): agent/engine/seed/seed.c agent/engine/seed.h
	@mkdir -p $(@D)
	$(CC) -I. -O2 -g -std=gnu17 -Wall -Wextra -Werror -static -nostdlib -ffreestanding -fno-builtin \
		-fno-stack-protector -fpie -no-pie -fcf-protection=none -mgeneral-regs-only \
		-Wl,-Ttext-segment=0x7f8000000000 -o $@ $<
