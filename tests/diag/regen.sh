#!/bin/sh
# regen.sh — rewrite the golden diagnostics in tests/diag from ./cnnc.
#
#   tests/diag/regen.sh            every tests/diag/*.cnn
#   tests/diag/regen.sh FILE.cnn   just those
#
# Each NAME.expect becomes exactly what `cnnc check tests/diag/NAME.cnn`
# prints on stderr (run from the repository root, so the file name in each
# message is tests/diag/NAME.cnn). A first line `# args: --network NAME`
# passes that option. Review the result with `git diff tests/diag` before
# committing it: a golden file is only as good as the message in it.
set -eu
cd "$(dirname "$0")/../.."
make -s cnnc
[ $# -gt 0 ] || set -- tests/diag/*.cnn
for f in "$@"; do
    f="tests/diag/$(basename "$f")"
    args=$(sed -n '1s/^# args: //p' "$f")
    # shellcheck disable=SC2086  # $args is split on purpose
    ./cnnc check $args "$f" 2>"${f%.cnn}.expect" >/dev/null || true
done
echo "rewrote $# .expect file(s); review them with: git diff tests/diag"
