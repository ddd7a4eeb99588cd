#!/usr/bin/env bash
# fail.sh: write to stdout and stderr, then exit 3 - for failure-path tests.
echo "about to fail"
echo "something went wrong" >&2
exit 3
