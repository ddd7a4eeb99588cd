#!/usr/bin/env bash
# sleep.sh: sleep ${seconds:-30} in a child process - for timeout and cancel tests.
# Prints the child's pid so tests can check the whole process group is killed.
seconds="${seconds:-30}"
sleep "$seconds" &
child=$!
echo "child_pid=$child"
echo "sleeping ${seconds}s"
wait "$child"
echo "done sleeping"
