#!/bin/sh
# Run the avd-shell end-to-end tests (node:test) against a real avd.
#
#   webview-shell/tests/run-tests.sh [FILE...]
#
# AVD_BIN (default ../../daemon/avd) and AVD_SHELL_BIN (default ../avd-shell)
# name the binaries.  The project's tests/run-node-tests.sh finds or installs
# the ws package.  Without Xvfb the display tests are reported as skipped.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

: "${AVD_BIN:=$repo/daemon/avd}"
: "${AVD_SHELL_BIN:=$here/../avd-shell}"
export AVD_BIN AVD_SHELL_BIN

if [ $# -eq 0 ]; then
	set -- "$here/shell.test.js"
fi
exec sh "$repo/tests/run-node-tests.sh" "$@"
