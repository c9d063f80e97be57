#!/usr/bin/env bash
# Installs what is missing (as root on Debian), then runs the whole test
# suite: go vet, go test -race, and a short run of every fuzz target.
# Exits non-zero on any failure. The tests need root (virtiofsd, QEMU).
set -uo pipefail
cd "$(dirname "$0")"
source scripts/deps.sh || exit 1

if [[ $(id -u) != 0 ]]; then
	echo "error: the tests need root (virtiofsd, mounts, hugepages)" >&2
	exit 1
fi

fail=0
step() {
	echo "== $*" >&2
	"$@" || { echo "FAILED: $*" >&2; fail=1; }
}

step go vet ./...
step go test -race -timeout 50m ./...

# fuzz runs one target for $fuzztime. Go's fuzzing engine sometimes ends a time-boxed run with a
# bare "context deadline exceeded" when the deadline falls mid-exchange with a worker: that is
# not a finding (no failing input is written), so such a run is repeated once. A real finding
# prints its failing input under testdata/fuzz and fails at once.
fuzz() {
	local out
	out=$(go test -run '^$' -fuzz "^$1\$" -fuzztime "$fuzztime" "$2" 2>&1) && { echo "$out"; return 0; }
	echo "$out"
	if grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input' <<<"$out"; then
		echo "fuzz $1: engine deadline hiccup, running it once more" >&2
		go test -run '^$' -fuzz "^$1\$" -fuzztime "$fuzztime" "$2"
		return
	fi
	return 1
}

# Every fuzz target in the tree, found afresh so new ones are picked up.
fuzztime="${FUZZTIME:-10s}"
while IFS=: read -r file line; do
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$line")
	step fuzz "$name" "./$(dirname "$file")"
done < <(grep -rE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' . | grep -v '^./\.' | sed 's|^\./||' | sort)

if ((fail)); then
	echo "test.sh: FAILED" >&2
	exit 1
fi
echo "test.sh: all passed" >&2
