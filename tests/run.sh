#!/bin/sh
# Builds nimbus-sync and runs the whole test suite twice: once plainly and once under
# AddressSanitizer + UndefinedBehaviorSanitizer, both with -Werror. Unit tests run through
# meson; the simulator's self-test and the integration suite run through pytest against the
# built binary. Exits non-zero on the first failure.
set -eu
cd "$(dirname "$0")/.."
sh tests/deps.sh

run_suite() {
        name=$1; shift
        dir=build/$name
        if [ -f "$dir/build.ninja" ]; then
                # -Werror again: a build dir made by hand without it must not switch it off here.
                meson configure "$dir" -Dwerror=true "$@" >/dev/null
        else
                meson setup "$dir" --werror "$@" >/dev/null
        fi
        echo "== $name: build"
        meson compile -C "$dir"
        echo "== $name: unit tests"
        meson test -C "$dir" --suite unit --print-errorlogs
        # One pytest session per folder: each has its own conftest.py, and two in one session
        # would shadow each other.
        for suite in tests/sim tests/integration tests/daemon tests/packaging; do
                [ -d "$suite" ] || continue
                echo "== $name: $suite"
                NIMBUS_SYNC_BIN="$PWD/$dir/src/nimbus-sync" /usr/bin/python3 -m pytest -q \
                        -p no:cacheprovider "$suite"
        done
}

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
run_suite plain -Db_sanitize=none
run_suite asan -Db_sanitize=address,undefined
