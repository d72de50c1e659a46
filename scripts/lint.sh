#!/usr/bin/env bash
# lint.sh - static checks of the C code (STYLE.md §3, item 25), on git-tracked files only:
#   format   clang-format 14 --dry-run --Werror (.clang-format) on every *.c / *.h
#   banned   no calls to strcpy strcat sprintf gets atoi strtok localtime gmtime
#            (use snprintf, strtol, strtok_r, localtime_r, gmtime_r)
#   cppcheck cppcheck 2.10 on libs/ services/ cli/
#   tidy     clang-tidy 14 (.clang-tidy) on the *.c files of libs/ services/ cli/ that the
#            build's compile_commands.json knows, in parallel
#
# usage: scripts/lint.sh [BUILD_DIR]
#   BUILD_DIR  a configured build tree with compile_commands.json (CMake exports it);
#              without it the clang-tidy step is skipped (and says so).
# environment:
#   CAIRN_LINT_STEPS  steps to run, space-separated [format banned cppcheck tidy]
#   CAIRN_LINT_JOBS   parallel clang-tidy / cppcheck jobs [2]
# Exits 1 if any step finds something, 2 on a usage or tool error.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

build=${1:-}
steps=" ${CAIRN_LINT_STEPS:-format banned cppcheck tidy} "
jobs=${CAIRN_LINT_JOBS:-2}
failed=()
now_ms() { echo $(($(date +%s%N) / 1000000)); }
took() {
	local d=$(($(now_ms) - $1))
	printf '%d.%ds' $((d / 1000)) $((d % 1000 / 100))
}
say() { printf 'lint: %s\n' "$*"; }
want() { [[ $steps == *" $1 "* ]]; }
need() { command -v "$1" >/dev/null || { echo "lint: $1 not installed (scripts/deps.sh)" >&2; exit 2; }; }

dirs=()
for d in libs services cli; do [[ -d $d ]] && dirs+=("$d"); done
mapfile -t csrc < <(git ls-files -- '*.c' '*.h')
mapfile -t cfiles < <(git ls-files -- "${dirs[@]/%//*.c}")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-lint.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
t0=$(now_ms)

# ---- format -----------------------------------------------------------------------------
if want format; then
	need clang-format
	s=$(now_ms)
	if ((${#csrc[@]})) && ! clang-format --dry-run --Werror "${csrc[@]}" >"$tmp/fmt" 2>&1; then
		grep -E '^[^ ].*(error|warning):' "$tmp/fmt" | cut -d: -f1 | sort -u |
			sed 's/^/  needs clang-format -i: /' >&2
		failed+=(format)
		say "format: FAIL ($(grep -cE '(error|warning):' "$tmp/fmt") places; $(took "$s"))"
	else
		say "format: ${#csrc[@]} files clean ($(took "$s"))"
	fi
fi

# ---- banned functions -------------------------------------------------------------------
if want banned; then
	s=$(now_ms)
	# A call is the name, optional blanks, then '('; comment lines are not calls.
	if ((${#csrc[@]})) &&
		git grep -nE '\b(strcpy|strcat|sprintf|gets|atoi|strtok|localtime|gmtime)[[:space:]]*\(' \
			-- "${csrc[@]}" | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/?\*|//)' >"$tmp/banned"; then
		sed 's/^/  banned call: /' "$tmp/banned" >&2
		failed+=(banned)
		say "banned: FAIL ($(wc -l <"$tmp/banned") calls; $(took "$s"))"
	else
		say "banned: none ($(took "$s"))"
	fi
fi

# ---- cppcheck ---------------------------------------------------------------------------
if want cppcheck; then
	need cppcheck
	s=$(now_ms)
	incs=()
	for i in libs/common/include libs/engine/include; do [[ -d $i ]] && incs+=(-I "$i"); done
	if ((${#cfiles[@]})) && ! cppcheck --enable=warning,performance,portability --error-exitcode=1 \
		--inline-suppr --std=c11 --quiet -j "$jobs" "${incs[@]}" \
		--template='{file}:{line}: {severity}: {message} [{id}]' "${cfiles[@]}" \
		>"$tmp/cppcheck" 2>&1; then
		sed 's/^/  /' "$tmp/cppcheck" >&2
		failed+=(cppcheck)
		say "cppcheck: FAIL ($(grep -c ': [a-z]*: ' "$tmp/cppcheck") findings; $(took "$s"))"
	else
		say "cppcheck: ${#cfiles[@]} files clean ($(took "$s"))"
	fi
fi

# ---- clang-tidy -------------------------------------------------------------------------
if want tidy; then
	if [[ -z $build ]]; then
		say "tidy: SKIPPED (give a build dir with compile_commands.json: scripts/lint.sh build/ci)"
	elif [[ ! -f $build/compile_commands.json ]]; then
		echo "lint: $build/compile_commands.json not found (configure the build first)" >&2
		exit 2
	else
		need clang-tidy
		s=$(now_ms)
		# Only files the build compiles: anything else has no flags to analyse with.
		python3 - "$build/compile_commands.json" "$REPO" "${cfiles[@]}" >"$tmp/tidy-files" <<'EOF'
import json, os, sys
db, repo, files = sys.argv[1], sys.argv[2], sys.argv[3:]
known = {os.path.realpath(os.path.join(e.get("directory", ""), e["file"])) for e in json.load(open(db))}
for f in files:
    if os.path.realpath(os.path.join(repo, f)) in known:
        print(f)
EOF
		n=$(wc -l <"$tmp/tidy-files")
		# GCC-only warning flags in the database must not become clang errors.
		if ((n)) && ! xargs -P "$jobs" -n 1 clang-tidy -p "$build" --quiet \
			--extra-arg=-Wno-unknown-warning-option \
			--extra-arg=-Wno-unused-command-line-argument <"$tmp/tidy-files" \
			>"$tmp/tidy" 2>"$tmp/tidy.err"; then
			grep -E '(error|warning):' "$tmp/tidy" | sort -u | sed 's/^/  /' >&2
			grep -vE '^[0-9]+ (warning|error)s? (generated|treated as errors)\.?$|^Error while processing|^Suppressed [0-9]+ warnings|^Use -header-filter' \
				"$tmp/tidy.err" | sed 's/^/  /' >&2 || true
			failed+=(tidy)
			say "tidy: FAIL ($(grep -cE '(error|warning):' "$tmp/tidy") findings in $n files; $(took "$s"))"
		else
			skipped=$((${#cfiles[@]} - n))
			say "tidy: $n files clean ($(took "$s"))$( ((skipped)) && echo "; $skipped tracked .c files not in $build/compile_commands.json")"
		fi
	fi
fi

if ((${#failed[@]})); then
	echo "lint: FAILED: ${failed[*]} ($(took "$t0"))" >&2
	exit 1
fi
say "all clean ($(took "$t0"))"
