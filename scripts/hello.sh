#!/usr/bin/env bash
# hello.sh: greet and show the job's environment (secrets filtered) - handy for tests.
echo "hello ${name:-world}"
echo "job_id=${SCRIPTMESH_JOB_ID:-none}"
echo "cwd=$(pwd)"
env | grep -v -i -E 'key|token|secret|password|passwd' | sort
