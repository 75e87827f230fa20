# proto/ — protobuf schemas.  Every proto/NAME.proto becomes
# $(BUILD)/proto/NAME.pb-c.{c,h} (protoc-c), compiled into $(LIBZAPC).
# Include the header as "proto/NAME.pb-c.h".  Drop a .proto file here and
# nothing else is needed.
PROTO_SRCS := $(wildcard proto/*.proto)
PROTO_C    := $(patsubst proto/%.proto,$(BUILD)/proto/%.pb-c.c,$(PROTO_SRCS))
PROTO_OBJS := $(PROTO_C:.c=.o)
GEN_HDRS   += $(PROTO_C:.c=.h)
OBJS       += $(PROTO_OBJS)

$(BUILD)/proto/%.pb-c.c $(BUILD)/proto/%.pb-c.h: proto/%.proto | $(BUILD)/.deps-ok
	@mkdir -p $(BUILD)/proto
	protoc-c --proto_path=. --c_out=$(BUILD) $<

$(BUILD)/proto/%.pb-c.o: $(BUILD)/proto/%.pb-c.c | $(GEN_HDRS)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# The generated code lives in the shared library archive.
$(LIBZAPC): $(PROTO_OBJS)
