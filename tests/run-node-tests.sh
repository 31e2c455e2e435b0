#!/bin/sh
# Run node:test files against a real avd.
#
#   tests/run-node-tests.sh DIR|FILE...
#
# Every DIR contributes its *.test.js files (not recursive), every FILE
# itself.  The script makes sure the packages tests/package.json lists (`ws`,
# `playwright-core`) can be loaded: when one cannot be resolved from tests/,
# it runs `npm ci` with tests/package.json and tests/package-lock.json into a
# writable directory ($AVD_TEST_NODE_DIR, else tests/ itself when writable,
# else a cache directory under $TMPDIR, outside the build tree) and passes it
# on through NODE_PATH.  So it also works from the read-only source copy that
# `make distcheck` uses.
#
# Tests that import client-js/avd.js (an ES module, which NODE_PATH does not
# reach) want client-js/node_modules/ws: when it is missing and client-js/ is
# writable, `npm ci` runs there too.  When it cannot be installed, those
# tests hand client-js the `ws` of tests/ instead.
#
# Environment:
#   AVD_BIN                  the avd binary (default: ./daemon/avd or
#                            ../daemon/avd from the current directory, else
#                            the one next to this script's tests/ directory)
#   AVD_TEST_NODE_DIR        where to install node modules if needed
#   AVD_TEST_CONCURRENCY     test files run at once (default 1)
#   AVD_TEST_REPORTER        node test reporter (default spec)
set -eu

here=$(cd "$(dirname "$0")" && pwd)

if [ $# -eq 0 ]; then
	set -- "$here/integration"
fi

if ! command -v node >/dev/null 2>&1; then
	echo "run-node-tests.sh: node is not installed" >&2
	exit 1
fi

# --- the avd binary --------------------------------------------------------
if [ -z "${AVD_BIN:-}" ]; then
	for cand in "$PWD/daemon/avd" "$PWD/../daemon/avd" "$here/../daemon/avd"; do
		if [ -x "$cand" ]; then
			AVD_BIN=$cand
			break
		fi
	done
fi
if [ -n "${AVD_BIN:-}" ]; then
	case $AVD_BIN in
	/*) ;;
	*) AVD_BIN="$PWD/$AVD_BIN" ;;
	esac
	if [ ! -x "$AVD_BIN" ]; then
		echo "run-node-tests.sh: AVD_BIN=$AVD_BIN is not an executable" >&2
		exit 1
	fi
	export AVD_BIN
else
	echo "run-node-tests.sh: no avd binary found (build it or set AVD_BIN)" >&2
	exit 1
fi

# --- the test packages ---------------------------------------------------
# Every package tests/package.json depends on.
deps=$(node -e 'const p = require(process.argv[1]);
console.log(Object.keys({ ...p.dependencies, ...p.devDependencies }).join(" "));' "$here/package.json")
[ -n "$deps" ] || deps=ws

deps_ok() {
	# shellcheck disable=SC2086
	(cd "$here" && node -e 'for (const d of process.argv.slice(1)) require.resolve(d);' $deps) >/dev/null 2>&1
}

# True when every package is installed in $1/node_modules.
deps_in() {
	for d in $deps; do
		[ -d "$1/node_modules/$d" ] || return 1
	done
}

# A directory counts as writable only when its mode says so: root may write
# anywhere, but the read-only source copy of `make distcheck` stays untouched.
dir_writable() {
	[ -w "$1" ] && [ -n "$(find "$1" -maxdepth 0 -perm -u+w 2>/dev/null)" ]
}

if ! deps_ok; then
	if [ -n "${AVD_TEST_NODE_DIR:-}" ]; then
		dest=$AVD_TEST_NODE_DIR
	elif dir_writable "$here"; then
		dest=$here
	else
		# outside the build tree, so distcleancheck finds nothing left over
		dest="${TMPDIR:-/tmp}/avd-test-node-deps-$(id -u)"
	fi
	mkdir -p "$dest"
	dest=$(cd "$dest" && pwd)
	if ! deps_in "$dest" ||
		! cmp -s "$here/package-lock.json" "$dest/package-lock.json"; then
		if [ "$dest" != "$here" ]; then
			cp "$here/package.json" "$here/package-lock.json" "$dest/"
			chmod u+w "$dest/package.json" "$dest/package-lock.json"
		fi
		echo "run-node-tests.sh: installing test dependencies into $dest" >&2
		PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$dest" --no-audit --no-fund --loglevel=error >&2
	fi
	NODE_PATH="$dest/node_modules${NODE_PATH:+:$NODE_PATH}"
	export NODE_PATH
	if ! deps_ok; then
		echo "run-node-tests.sh: the test packages ($deps) still cannot be loaded" >&2
		exit 1
	fi
fi

# --- client-js's own packages --------------------------------------------------
cj="$here/../client-js"
if [ -f "$cj/package-lock.json" ] && [ ! -d "$cj/node_modules/ws" ] && dir_writable "$cj"; then
	echo "run-node-tests.sh: installing client-js dependencies into $(cd "$cj" && pwd)" >&2
	(cd "$cj" && npm ci --no-audit --no-fund --loglevel=error) >&2 ||
		echo "run-node-tests.sh: npm ci in client-js failed; client-js tests use the ws of tests/" >&2
fi

# --- the test files --------------------------------------------------------
files=
for arg in "$@"; do
	if [ -d "$arg" ]; then
		for f in "$arg"/*.test.js; do
			[ -e "$f" ] && files="$files $f"
		done
	elif [ -f "$arg" ]; then
		files="$files $arg"
	else
		echo "run-node-tests.sh: no such file or directory: $arg" >&2
		exit 1
	fi
done
if [ -z "$files" ]; then
	echo "run-node-tests.sh: no test files in $*" >&2
	exit 1
fi

concurrency=${AVD_TEST_CONCURRENCY:-1}
reporter=${AVD_TEST_REPORTER:-spec}

echo "run-node-tests.sh: avd=$AVD_BIN node=$(node --version)" >&2
# shellcheck disable=SC2086
exec node --test --test-concurrency="$concurrency" --test-reporter="$reporter" $files
