#!/bin/sh
# Builds the libFuzzer targets with clang, AddressSanitizer and UndefinedBehaviorSanitizer (leak
# detection on) and runs each for ${FUZZ_SECONDS:-60} seconds, starting from the committed seed
# corpus in tests/fuzz/corpus/<target>/. New inputs go to a temporary folder, never into the
# committed corpus. Fails if any target crashes, leaks, times out or breaks a check, printing the input
# (base64) and the command that reproduces it. .ci/run calls this; it also works by hand:
#   FUZZ_SECONDS=300 tests/fuzz/run.sh            # longer
#   FUZZ_TARGETS=fuzz_config tests/fuzz/run.sh    # one target
set -eu
cd "$(dirname "$0")/../.."

BUILD=${FUZZ_BUILD_DIR:-build/fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-"fuzz_roster_yaml fuzz_roster_csv fuzz_config fuzz_api_json fuzz_graph_json"}
ARTIFACTS=$BUILD/artifacts

# clang and its libFuzzer runtime (Debian 12: clang 14, libclang-rt-14-dev), when missing.
have_libfuzzer() {
        command -v clang >/dev/null 2>&1 || return 1
        probe=$(mktemp -d)
        printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n);\n%s\n' \
                'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d && n; }' >"$probe/p.c"
        status=0
        clang -fsanitize=fuzzer,address "$probe/p.c" -o "$probe/p" 2>/dev/null || status=1
        rm -rf "$probe"
        return $status
}

sh tests/deps.sh
if ! have_libfuzzer; then
        echo "Installing: clang libclang-rt-dev" >&2
        SUDO=""
        [ "$(id -u)" -eq 0 ] || SUDO=sudo
        export DEBIAN_FRONTEND=noninteractive
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq --no-install-recommends clang libclang-rt-dev >/dev/null
fi

if [ ! -f "$BUILD/build.ninja" ]; then
        CC=clang meson setup "$BUILD" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
set --
for t in $TARGETS; do set -- "$@" "tests/fuzz/$t"; done
echo "== fuzz: build"
ninja -C "$BUILD" "$@"

export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
mkdir -p "$ARTIFACTS"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM

dict_of() {
        case $1 in
        fuzz_roster_csv) echo tests/fuzz/csv.dict ;;
        fuzz_api_json | fuzz_graph_json) echo tests/fuzz/json.dict ;;
        *) echo tests/fuzz/yaml.dict ;;
        esac
}

report_crash() {
        t=$1
        echo "!! $t failed; the last lines of its log:"
        tail -n 60 "$WORK/$t.log"
        for a in "$ARTIFACTS/$t"-*; do
                [ -f "$a" ] || continue
                echo "!! input $a (base64):"
                base64 "$a"
                echo "!! reproduce: $BUILD/tests/fuzz/$t $a"
        done
}

failed=""
for t in $TARGETS; do
        echo "== fuzz: $t for ${SECONDS_EACH}s"
        rm -f "$ARTIFACTS/$t"-*
        mkdir -p "$WORK/$t"
        # The first folder receives new inputs; the committed corpus is only read.
        if "$BUILD/tests/fuzz/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
                -max_len=65536 -print_final_stats=1 -dict="$(dict_of "$t")" \
                -artifact_prefix="$ARTIFACTS/$t-" "$WORK/$t" "tests/fuzz/corpus/$t" >"$WORK/$t.log" 2>&1; then
                grep -E '^stat::number_of_executed_units|^#[0-9]+[[:space:]]+DONE' "$WORK/$t.log" || true
        else
                report_crash "$t"
                failed="$failed $t"
        fi
done
if [ -n "$failed" ]; then
        echo "== fuzz: FAILED:$failed"
        exit 1
fi
echo "== fuzz: all targets ran ${SECONDS_EACH}s without a finding"
