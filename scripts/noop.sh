#!/bin/sh
# noop.sh: do nothing successfully - for benchmarks.
exit 0
