# Makefile — zapc, top level.
#
# Non-recursive GNU make: every folder contributes a module.mk that appends to
# the variables below; this file holds only the shared rules.  Targets:
#   make            build everything into $(BUILD)
#   make check      build, then run every test with prove (unit tests also under ASan/UBSan)
#   make demo       the main job on a simulated cluster on this machine
#   make bench      benchmarks (print figures; compare with the previous run)
#   make install    PREFIX=/usr/local DESTDIR=
#   make SAN=1      build with -fsanitize=address,undefined into build/san
#   make deps       install the Debian packages zapc needs (idempotent)

BUILD   ?= build
PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= gcc

ifeq ($(SAN),1)
BUILD    := build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif

PKGS     := libevent libevent_openssl libprotobuf-c openssl libzstd liblz4 \
            libnetfilter_queue libmnl libnl-3.0 libnl-route-3.0
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu17 -Wall -Wextra -Werror -Wno-unused-parameter \
            -fno-strict-aliasing $(SANFLAGS)
CPPFLAGS += -D_GNU_SOURCE -I. -I$(BUILD) -MMD -MP \
            $(shell pkg-config --cflags-only-I $(PKGS) 2>/dev/null)
LDFLAGS  += $(SANFLAGS)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread

# Filled in by the module.mk files.
BINS       :=   # programs installed to $(PREFIX)/bin
SBINS      :=   # programs installed to $(PREFIX)/sbin
LIBEXEC    :=   # helper programs installed to $(PREFIX)/lib/zapc
UNIT_TESTS :=   # compiled TAP tests, run by prove (also under SAN)
TEST_PROGS :=   # helper programs the shell tests run
TESTS      :=   # shell TAP tests (tests/*/*.t), run by prove
GEN_HDRS   :=   # generated headers every object may include
OBJS       :=

objs = $(patsubst %.c,$(BUILD)/%.o,$(1))
# Defined here, not in lib/module.mk: modules sorting before lib/ use it in prerequisites.
LIBZAPC := $(BUILD)/libzapc.a

.PHONY: all deps check unit demo bench install clean
all:

include $(sort $(wildcard */module.mk */*/module.mk))

all: $(BINS) $(SBINS) $(LIBEXEC) $(TEST_PROGS) $(UNIT_TESTS)
.SECONDARY:

# Dependencies: a stamp so a normal build asks dpkg only once per tree.
$(BUILD)/.deps-ok: scripts/deps.sh
	@sh scripts/deps.sh
	@mkdir -p $(@D) && touch $@
deps:
	@sh scripts/deps.sh

$(BUILD)/%.o: %.c | $(BUILD)/.deps-ok $(GEN_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

-include $(OBJS:.o=.d)

# Tests. The shell tests find the programs through ZAPC_BUILD.
export ZAPC_BUILD := $(abspath $(BUILD))
export ZAPC_SRC   := $(CURDIR)
PROVE := prove --exec '' --timer --failures

unit: $(UNIT_TESTS)
	$(PROVE) $(UNIT_TESTS)

check: all
	$(MAKE) --no-print-directory SAN=1 $(patsubst $(BUILD)/%,build/san/%,$(UNIT_TESTS))
	$(PROVE) $(UNIT_TESTS) $(patsubst $(BUILD)/%,build/san/%,$(UNIT_TESTS)) $(sort $(TESTS))

demo: all
	sh scripts/demo.sh

bench: all
	sh bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/lib/zapc
	$(if $(BINS),install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin)
	$(if $(SBINS),install -m 755 $(SBINS) $(DESTDIR)$(PREFIX)/sbin)
	$(if $(LIBEXEC),install -m 755 $(LIBEXEC) $(DESTDIR)$(PREFIX)/lib/zapc)

clean:
	rm -rf build
