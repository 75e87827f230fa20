#!/bin/sh
# bench/image_crc.sh — throughput of the image container's checksum and
# writer against the memcpy floor measured in the same run.
exec "$ZBIN/bench-image"
