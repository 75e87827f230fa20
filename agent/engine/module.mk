# agent/engine — zapc-engine, the checkpoint/restart engine (one program per operation).
#
# proto/image.proto is generated here for now (only this one file, so it cannot
# clash with the generic proto/module.mk rule when that lands: an explicit rule
# wins over a pattern rule).  When merging, the lead may drop the two rules below
# and link the generic proto objects instead.
ENGINE_SRCS  := $(wildcard agent/engine/*.c)
ENGINE_PROTO_C := $(BUILD)/proto/image.pb-c.c
ENGINE_PROTO_H := $(BUILD)/proto/image.pb-c.h
ENGINE_PROTO_O := $(BUILD)/proto/image.pb-c.o
GEN_HDRS     += $(ENGINE_PROTO_H)
LIBEXEC      += $(BUILD)/bin/zapc-engine
OBJS         += $(call objs,$(ENGINE_SRCS))

$(ENGINE_PROTO_C) $(ENGINE_PROTO_H) &: proto/image.proto
	@mkdir -p $(BUILD)
	protoc-c --c_out=$(BUILD) $<

$(ENGINE_PROTO_O): $(ENGINE_PROTO_C)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# libnetstate.a by path: netstate/module.mk (NETSTATE_LIB) is read after this file
$(BUILD)/bin/zapc-engine: $(call objs,$(ENGINE_SRCS)) $(ENGINE_PROTO_O) $(BUILD)/libnetstate.a $(LIBZAPC)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
