#!/bin/sh
echo "coverage collection through Bazel is not supported in the offline build" >&2
exit 1
