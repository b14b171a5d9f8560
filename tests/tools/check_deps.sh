#!/bin/bash
# check_deps.sh SOURCE_DIR: the include rules of docs/architecture.md, so no
# arrow points up from a lower stage:
#   core/                   includes only core/ (and build_config.h)
#   mpi/                    includes only core/, kernels/, mpi/
#   kernels/                include only core/, kernels/ and quant/woq.h (the
#                           weight-only layouts its CUDA twin implements)
#   formats/                includes only core/, formats/
#   model/                  includes only core/, formats/, model/
#   plan/                   includes only core/, formats/, model/, plan/
#   app/ headers            included only by src/app/ and src/cli/ (the run)
#   cli/options.h (tc_opts) included only by src/app/, src/cli/ and tests
# Prints every violation (file: the include) and exits 1 if there is one.
set -uo pipefail
cd "${1:-.}"
bad=0
check() { # check LABEL ALLOWED_REGEX FILES...
    local label=$1 allowed=$2; shift 2
    for f in "$@"; do
        [ -f "$f" ] || continue
        while IFS= read -r inc; do
            if [[ ! $inc =~ $allowed ]]; then
                echo "$f: $label may not include \"$inc\""
                bad=1
            fi
        done < <(grep -ho '#include "trtconv/[^"]*"' "$f" | sed 's/#include "//; s/"$//')
    done
}
shopt -s nullglob
check "core" '^trtconv/(core/|build_config\.h$)' src/core/*.c include/trtconv/core/*.h
check "mpi" '^trtconv/(core|kernels|mpi)/|^trtconv/build_config\.h$' mpi/*.c include/trtconv/mpi/*.h
check "kernels" '^trtconv/(core|kernels)/|^trtconv/quant/woq\.h$|^trtconv/build_config\.h$' kernels/*.cu kernels/*.cuh include/trtconv/kernels/*.h
check "formats" '^trtconv/(core|formats)/|^trtconv/build_config\.h$' src/formats/*.c include/trtconv/formats/*.h
check "model" '^trtconv/(core|formats|model)/|^trtconv/build_config\.h$' src/model/*.c src/model/*.h include/trtconv/model/*.h
check "plan" '^trtconv/(core|formats|model|plan)/|^trtconv/build_config\.h$' src/plan/*.c include/trtconv/plan/*.h
# The run's headers and the command line struct stay above every stage.
for f in $(find src include mpi kernels -name '*.[ch]' -o -name '*.cu' | sort); do
    case $f in src/app/*|src/cli/*|include/trtconv/app/*|include/trtconv/cli/*) continue ;; esac
    if grep -q '#include "trtconv/app/' "$f"; then
        echo "$f: a stage below the run may not include trtconv/app/ headers"; bad=1
    fi
    if grep -q '#include "trtconv/cli/options.h"' "$f"; then
        echo "$f: tc_opts (cli/options.h) stays in the run; pass a parameter struct"; bad=1
    fi
done
[ $bad = 0 ] && echo "include rules: ok"
exit $bad
