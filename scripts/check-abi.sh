#!/usr/bin/env bash
# scripts/check-abi.sh: the checks behind `make check-abi` (run from the
# Makefile after `make all`, in the repository root).
#   (a) include/evpl/evpl.h is what the generator writes now;
#   (b) the header's functions are exactly libevpl.so's exports, and the
#       library exports nothing else;
#  (b2) rdma-core, libxlio, liburing and libnuma are neither NEEDED nor
#       undefined symbols (loaded at run time or linked in statically);
#   (c) ctests/abi_layout.c (layouts and constants) compiles, links and runs;
#   (d) the header compiles alone: C99 and C11 with gcc and clang, C++ with g++;
#   (e) ../shared/spec/abi_check_t1.c and abi_check_t23.c, once every function each names is exported.
# Every check runs; the script fails at the end if any failed.
set -u

CC=${CC:-gcc}
CXX=${CXX:-g++}
CLANG=${CLANG:-clang}
SWIFT=${SWIFT:-swift}
WARN="-Wall -Wextra -Werror"
HEADER=include/evpl/evpl.h
LIB=build/lib/libevpl.so
OUT=build/abi
T1=${T1:-$(pwd)/../shared/spec/abi_check_t1.c}
T23=${T23:-$(pwd)/../shared/spec/abi_check_t23.c}
RPATH="-Wl,-rpath,$(pwd)/build/lib"

mkdir -p "$OUT"
failures=()
fail() { echo "check-abi: FAIL: $*" >&2; failures+=("$1"); }
ok() { echo "check-abi: ok: $*"; }

# Function names declared in a header: prototype lines outside comments.
header_functions() {
    awk '{
        out = ""; s = $0
        while (s != "") {
            if (incomment) {
                i = index(s, "*/"); if (!i) { s = ""; break }
                s = substr(s, i + 2); incomment = 0
            } else {
                i = index(s, "/*"); if (!i) { out = out s; s = "" ; break }
                out = out substr(s, 1, i - 1); s = substr(s, i + 2); incomment = 1
            }
        }
        if (out ~ /^[a-z]/ && out !~ /^typedef/ && match(out, /(^|[^A-Za-z0-9_])evpl_[a-z0-9_]+\(/)) {
            name = substr(out, RSTART, RLENGTH - 1); sub(/^[^e]*/, "", name); print name
        }
    }' "$1" | grep -vxE 'evpl_iovec_(data|length|set_length)' | sort -u
}

# (a) the committed header is up to date
if "$SWIFT" build --product evpl-header >"$OUT/evpl-header.build.log" 2>&1; then
    gen="$("$SWIFT" build --show-bin-path)/evpl-header"
    if "$gen" "$(pwd)" "$OUT/evpl.h.generated"; then
        if diff -u "$HEADER" "$OUT/evpl.h.generated"; then
            ok "(a) $HEADER is up to date"
        else
            fail "(a) $HEADER differs from the generator's output (run: make header)"
        fi
    else
        fail "(a) the header generator failed"
    fi
else
    cat "$OUT/evpl-header.build.log" >&2
    fail "(a) could not build evpl-header"
fi

# (b) header functions == exported functions, and nothing else exported
header_functions "$HEADER" >"$OUT/header.syms"
nm -D --defined-only "$LIB" >"$OUT/nm.txt" || fail "(b) nm failed on $LIB"
awk '$2 == "T" { print $3 }' "$OUT/nm.txt" | sort -u >"$OUT/lib.syms"
if diff -u --label "functions in $HEADER" --label "T symbols in $LIB" \
        "$OUT/header.syms" "$OUT/lib.syms"; then
    ok "(b) $(wc -l <"$OUT/header.syms") functions declared and exported"
else
    fail "(b) header functions and exports differ (- header only, + library only)"
fi
if awk 'NF >= 3 && $3 !~ /^evpl_/ { bad = 1; print } END { exit !bad }' "$OUT/nm.txt" >"$OUT/foreign.syms"; then
    cat "$OUT/foreign.syms" >&2
    fail "(b) $LIB exports symbols not named evpl_*"
else
    ok "(b) nothing but evpl_* exported"
fi

# (b2) optional system parts are loaded at run time, never linked: no NEEDED
# entry and no undefined symbol for rdma-core, libxlio, liburing or libnuma
if readelf -d "$LIB" | grep NEEDED | grep -E 'rdma|ibverbs|xlio|uring|numa' >"$OUT/needed.bad"; then
    cat "$OUT/needed.bad" >&2
    fail "(b2) $LIB needs an optional library at load time"
elif nm -D --undefined-only "$LIB" | grep -E ' (ibv_|rdma_|xlio|io_uring|numa_)' >"$OUT/undef.bad"; then
    cat "$OUT/undef.bad" >&2
    fail "(b2) $LIB has undefined symbols of an optional library"
else
    ok "(b2) no NEEDED entry or undefined symbol for rdma-core, libxlio, liburing, libnuma"
fi

# (c) layouts and constants
if [ -f ctests/abi_layout.c ]; then
    if $CC -std=c11 $WARN -Ibuild/include -o "$OUT/abi_layout" ctests/abi_layout.c \
            -Lbuild/lib -levpl $RPATH && "$OUT/abi_layout"; then
        ok "(c) ctests/abi_layout.c"
    else
        fail "(c) ctests/abi_layout.c"
    fi
else
    echo "check-abi: skip: (c) ctests/abi_layout.c does not exist yet"
fi

# (d) the header alone, as C99 and C11 (gcc, clang) and as C++ (g++)
printf '#include <evpl/evpl.h>\nint main(void) { return 0; }\n' >"$OUT/header_only.c"
printf '#include <evpl/evpl.h>\nint main() { return 0; }\n' >"$OUT/header_only.cc"
for cc in "$CC" "$CLANG"; do
    for std in c99 c11; do
        if $cc -std=$std $WARN -Ibuild/include -fsyntax-only "$OUT/header_only.c"; then
            ok "(d) header compiles as $std with $cc"
        else
            fail "(d) header does not compile as $std with $cc"
        fi
    done
done
if $CXX $WARN -Ibuild/include -fsyntax-only "$OUT/header_only.cc"; then
    ok "(d) header compiles as C++ with $CXX"
else
    fail "(d) header does not compile as C++ with $CXX"
fi

# (e) the spec's checks (T1; T23: block I/O and RDMA), once every function each names is exported
spec_check() {
    local name=$1 src=$2
    if [ ! -f "$src" ]; then
        echo "check-abi: skip: (e) $src not found"
        return
    fi
    # F(evpl_name, ...) checks one function, S(name, T) evpl_global_config_set_name.
    grep -v '^#' "$src" >"$OUT/$name.body"
    { grep -oE '\bF\(evpl_[a-z0-9_]+' "$OUT/$name.body" | sed 's/^F(//'
      grep -oE '\bS\([a-z0-9_]+,' "$OUT/$name.body" | sed -E 's/^S\((.*),$/evpl_global_config_set_\1/'
    } | sort -u >"$OUT/$name.syms"
    missing=$(comm -23 "$OUT/$name.syms" "$OUT/lib.syms")
    if [ -n "$missing" ]; then
        echo "check-abi: skip: (e) $(basename "$src"): $(echo "$missing" | wc -l) of" \
             "$(wc -l <"$OUT/$name.syms") functions not exported yet:"
        echo "$missing" | paste -sd' ' | fold -s -w 96 | sed 's/^/    /'
    elif $CC -std=c11 $WARN -Ibuild/include -o "$OUT/$name" "$src" \
            -Lbuild/lib -levpl $RPATH && "$OUT/$name"; then
        ok "(e) $(basename "$src")"
    else
        fail "(e) $(basename "$src")"
    fi
}
spec_check abi_check_t1 "$T1"
spec_check abi_check_t23 "$T23"

if [ ${#failures[@]} -gt 0 ]; then
    echo "check-abi: ${#failures[@]} check(s) failed:" >&2
    printf '  %s\n' "${failures[@]}" >&2
    exit 1
fi
echo "check-abi: all checks passed"
