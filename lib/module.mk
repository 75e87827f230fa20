# lib/ — small shared C linked into every zapc program as build/libzapc.a.
LIB_SRCS := $(wildcard lib/*.c)
OBJS     += $(call objs,$(LIB_SRCS))

$(LIBZAPC): $(call objs,$(LIB_SRCS))
	@mkdir -p $(@D)
	$(AR) rcs $@ $^
