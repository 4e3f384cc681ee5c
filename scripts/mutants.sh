#!/usr/bin/env bash
# Mutation testing: applies single-point mutants to a scratch copy of the tree, one at a time,
# builds the emulated-device Debug (-O1) tests with ASan + UBSan (the "san" build of scripts/test.sh:
# every suite runs, the GPU ones included, no GPU needed) and runs the whole test suite against
# each. A mutant that no test notices "survives": either the tests miss a behaviour, or the
# mutant is equivalent (changes nothing observable), which the list must then say, with why.
#
#   scripts/mutants.sh [--list FILE] [--only ID[,ID...]] [--dir DIR] [--keep] [--no-sanitize]
#     --list FILE     default scripts/mutants.txt
#     --only IDS      run these mutants (1-based line numbers among the mutants of the list)
#     --dir DIR       scratch directory (default ${TMPDIR:-/tmp}/fopt-mutants); its build is
#                     reused by the next run, so a second run only recompiles what changed
#     --no-sanitize   plain emulated Debug build: faster, but out-of-bounds reads go unseen
#
# The list: one mutant per line, fields separated by "|" (write "\|" for a "|" in a field):
#
#   PATH[@N]|SEARCH|REPLACE|DESCRIPTION[|OPTION...]
#
# PATH is relative to the repository root. SEARCH must occur exactly once in the file, or give
# @N to take its N-th occurrence. "\n" in SEARCH or REPLACE stands for a newline. Options:
#   equivalent: WHY   the mutant cannot change behaviour (WHY says why); it must survive, and a
#                     kill is reported as a wrong mark
#   min-kills: N      at least N tests must fail (the suite runs to the end, no --fail-fast)
#   filter: GLOB      run only the tests matching this Criterion --filter glob
# Lines starting with # and blank lines are ignored.
#
# Prints one line per mutant (KILLED by which tests / SURVIVED / EQUIVALENT) and a summary with
# the kill rate. Exit status: 0 when every non-equivalent mutant is killed, 1 when one survives,
# a list line is stale (SEARCH not found, or found more than once) or a mutant does not compile
# or a mark is wrong, 2 when the unmutated tree does not build or pass.
#
# Time on 2 cores: the first build 3-5 minutes; then per mutant an incremental build (a header
# in kernels/ recompiles every kernel file: 1-2 minutes) plus the suite until its first failure
# (--fail-fast), or the whole suite (about 1 minute, more on a loaded machine) for a survivor.
# The whole list: 45-70 minutes.
set -uo pipefail
src_root=$(cd "$(dirname "$0")/.." && pwd)

list=$src_root/scripts/mutants.txt
only=""
scratch=${TMPDIR:-/tmp}/fopt-mutants
keep=0
sanitize=ON
while [ $# -gt 0 ]; do
  case "$1" in
    --list) list=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
    --only) only=",$2,"; shift 2 ;;
    --dir) scratch=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --no-sanitize) sanitize=OFF; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "mutants.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -f "$list" ] || { echo "mutants.sh: no list $list" >&2; exit 2; }
command -v nvcc >/dev/null 2>&1 || [ ! -x /usr/local/cuda/bin/nvcc ] || export PATH=/usr/local/cuda/bin:$PATH
py=$(command -v python3 || command -v /usr/bin/python3) || { echo "mutants.sh: needs python3" >&2; exit 2; }
jobs=$(nproc 2>/dev/null || echo 2)
export OMP_WAIT_POLICY=passive
export ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export FOPT_TEST_LIGHT=1 # random lists of 300 tensors, as in test.sh's sanitized build
t_start=$SECONDS

# ---- the scratch copy: the working tree as it is (tracked and untracked, not ignored files)
tree=$scratch/tree
build=$scratch/build
mkdir -p "$tree" "$build"
echo "mutants.sh: copying the tree to $tree"
# Only files whose content differs are copied, and they get a new modification time: a file left
# mutated by an interrupted run, or restored after the last mutant, is then always recompiled.
(cd "$src_root" && git ls-files -z -co --exclude-standard) | while IFS= read -r -d '' f; do
  [ -f "$src_root/$f" ] || continue
  cmp -s "$src_root/$f" "$tree/$f" && continue
  mkdir -p "$tree/$(dirname "$f")" && cp "$src_root/$f" "$tree/$f" ||
    { echo "mutants.sh: copying $f failed" >&2; exit 2; }
done || exit 2
# drop files of earlier copies that no longer exist in the tree (a removed test file would
# otherwise still be globbed into the build)
(cd "$src_root" && git ls-files -co --exclude-standard | sort) >"$scratch/files.now"
(cd "$tree" && find . -type f | sed 's|^\./||' | sort) >"$scratch/files.copy"
comm -13 "$scratch/files.now" "$scratch/files.copy" | (cd "$tree" && xargs -r rm -f)

# ---- the list, parsed once into NUL-free records (python does the literal edits)
mutate_py='
import sys
def fields(line):
    out, cur, i = [], "", 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line) and line[i + 1] == "|":
            cur += "|"; i += 2; continue
        if c == "|":
            out.append(cur); cur = ""; i += 1; continue
        cur += c; i += 1
    out.append(cur)
    return out
def unesc(s):
    return s.replace("\\n", "\n")
cmd = sys.argv[1]
if cmd == "parse":
    n = 0
    for lineno, line in enumerate(open(sys.argv[2], encoding="utf-8"), 1):
        line = line.rstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        f = fields(line)
        if len(f) < 4:
            print("BAD\t%d\tfewer than 4 fields" % lineno); continue
        n += 1
        opts = {"equivalent": "", "min-kills": "", "filter": ""}
        for o in f[4:]:
            k, _, v = o.partition(":")
            k = k.strip()
            if k not in opts:
                print("BAD\t%d\tunknown option %r" % (lineno, k)); break
            opts[k] = v.strip()
        # id, line, path, description, equivalent, min-kills, filter, separated by the unit
        # separator (not a tab: read would merge empty whitespace-separated fields)
        print("\x1f".join(str(x).replace("\x1f", " ") for x in
              ["M", n, lineno, f[0].strip(), f[3].strip(), opts["equivalent"], opts["min-kills"], opts["filter"]]))
elif cmd == "apply":
    listfile, want, tree = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    n = 0
    for line in open(listfile, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        f = fields(line)
        if len(f) < 4:
            continue
        n += 1
        if n != want:
            continue
        path, occ = f[0].strip(), 0
        if "@" in path:
            path, o = path.rsplit("@", 1); occ = int(o)
        search, replace = unesc(f[1]), unesc(f[2])
        text = open(tree + "/" + path, encoding="utf-8").read()
        count = text.count(search)
        if count == 0:
            print("not found in %s: %r" % (path, search)); sys.exit(3)
        if occ == 0 and count > 1:
            print("found %d times in %s (give PATH@N): %r" % (count, path, search)); sys.exit(3)
        if occ > count:
            print("only %d occurrences in %s: %r" % (count, path, search)); sys.exit(3)
        at, k = -1, 0
        while k < max(occ, 1):
            at = text.index(search, at + 1); k += 1
        new = text[:at] + replace + text[at + len(search):]
        open(tree + "/" + path, "w", encoding="utf-8").write(new)
        print(path)
        sys.exit(0)
    print("no mutant %d" % want); sys.exit(3)
'
records=$("$py" -c "$mutate_py" parse "$list")
if grep -q '^BAD' <<<"$records"; then
  grep '^BAD' <<<"$records" | while IFS=$'\t' read -r _ ln why; do echo "mutants.sh: $list:$ln: $why" >&2; done
  exit 2
fi

# ---- build and baseline
echo "mutants.sh: configure (emulated device, Debug, sanitizers $sanitize) in $build"
cmake -S "$tree" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DFOPT_DEVICE_EMULATION=ON -DFOPT_SANITIZE=$sanitize \
  -DFOPT_BUILD_BENCH=OFF -DCMAKE_CUDA_ARCHITECTURES=90 "-DCMAKE_C_FLAGS_DEBUG=-g -O1" \
  "-DCMAKE_CUDA_FLAGS_DEBUG=-g -O1" >"$scratch/configure.log" 2>&1 ||
  { tail -20 "$scratch/configure.log"; echo "mutants.sh: configure failed" >&2; exit 2; }
build_tests() { cmake --build "$build" -j "$jobs" --target fusedopt_tests >"$scratch/build.log" 2>&1; }

# run_tests LOG [criterion args...]: the suite; returns 0 when every test passed, cleanly
run_tests() {
  local log=$1; shift
  timeout 1800 "$build/tests/fusedopt_tests" -j"$jobs" "$@" >"$log" 2>&1
  local rc=$?
  [ "$rc" -ne 124 ] || echo "mutants.sh: the suite timed out (30 minutes)" >>"$log"
  [ "$rc" -eq 0 ] || return 1
  grep -a -q -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|crashed during its setup or teardown' "$log" && return 1
  grep -a -q -E 'Synthesis: Tested: [0-9]+ \| Passing: [0-9]+ \| Failing: 0 \| Crashing: 0' "$log" || return 1
  return 0
}
# failing tests of a log, one per line
failed_tests() {
  grep -a -o -E '^\[FAIL\] [A-Za-z0-9_]+::[A-Za-z0-9_]+' "$1" | sed 's/^\[FAIL\] //'
  grep -a -o -E 'The test `[A-Za-z0-9_:]+` crashed' "$1" | sed 's/The test `//; s/` crashed//'
}

t0=$SECONDS
echo "mutants.sh: building the unmutated tree"
build_tests || { tail -40 "$scratch/build.log"; echo "mutants.sh: the unmutated tree does not build" >&2; exit 2; }
echo "mutants.sh: running the whole suite on the unmutated tree"
if ! run_tests "$scratch/baseline.log"; then
  tail -30 "$scratch/baseline.log"
  echo "mutants.sh: the unmutated tree fails its tests: no mutant can be judged" >&2; exit 2
fi
baseline_tests=$(sed -n 's/.*Synthesis: Tested: \([0-9]*\).*/\1/p' "$scratch/baseline.log" | tail -1)
echo "mutants.sh: baseline: $baseline_tests tests pass ($((SECONDS - t0)) s)"

# ---- the mutants
killed=0 survived=0 equiv_ok=0 wrong=0 total=0
survivors=() problems=() report=()
restore() { # restore PATH: the file as it was before the mutant (touched: the next build recompiles it)
  [ -f "$scratch/original" ] && cp "$scratch/original" "$tree/$1" && touch "$tree/$1"
  rm -f "$scratch/original"
}
while IFS=$'\x1f' read -r tag id lineno path desc equiv minkills filter; do
  [ "$tag" = M ] || continue
  [ -z "$only" ] || [[ $only == *",$id,"* ]] || continue
  total=$((total + 1))
  t0=$SECONDS
  file=${path%@*}
  log=$scratch/mutant_$id.log
  label="#$id ($path: $desc)"
  cp "$tree/$file" "$scratch/original" 2>/dev/null || rm -f "$scratch/original"
  if ! msg=$("$py" -c "$mutate_py" apply "$list" "$id" "$tree" 2>&1); then
    echo "BAD       $label: list line $lineno is stale: $msg"
    problems+=("#$id: stale list line $lineno: $msg"); restore "$file"; continue
  fi
  if ! build_tests; then
    cp "$scratch/build.log" "$scratch/mutant_$id.build.log"
    echo "NOBUILD   $label: the mutant does not compile ($scratch/mutant_$id.build.log)"
    problems+=("#$id: does not compile"); restore "$file"; continue
  fi
  args=()
  if [ -n "$minkills" ]; then :; else args+=(--fail-fast); fi
  [ -z "$filter" ] || args+=(--filter "$filter")
  if run_tests "$log" "${args[@]}"; then
    if [ -n "$equiv" ]; then
      equiv_ok=$((equiv_ok + 1))
      echo "EQUIVALENT $label: survives as marked ($equiv) [$((SECONDS - t0)) s]"
      report+=("#$id EQUIVALENT $path: $desc -- $equiv")
    else
      survived=$((survived + 1))
      echo "SURVIVED  $label [$((SECONDS - t0)) s]"
      survivors+=("#$id $path: $desc")
      report+=("#$id SURVIVED $path: $desc")
    fi
  else
    who=$(failed_tests "$log" | sort -u)
    nk=$(grep -c . <<<"$who")
    [ -n "$who" ] || { who="(no failing test named: exit status or a sanitizer report; $log)"; nk=1; }
    grep -a -q 'the suite timed out' "$log" && who="$who (timeout)"
    short=$(head -3 <<<"$who" | paste -sd' ' -); [ "$nk" -le 3 ] || short="$short +$((nk - 3)) more"
    if [ -n "$equiv" ]; then
      wrong=$((wrong + 1))
      echo "WRONGMARK $label: marked equivalent but killed by $short"
      problems+=("#$id: marked equivalent ($equiv) but killed by $short")
    elif [ -n "$minkills" ] && [ "$nk" -lt "$minkills" ]; then
      killed=$((killed + 1))
      echo "KILLED    $label by $nk test(s), fewer than the $minkills asked: $short [$((SECONDS - t0)) s]"
      problems+=("#$id: killed by $nk test(s) < min-kills $minkills: $short")
    else
      killed=$((killed + 1))
      echo "KILLED    $label by $short [$((SECONDS - t0)) s]"
    fi
    report+=("#$id KILLED $path: $desc -- by $short")
  fi
  restore "$file"
done <<<"$records"
[ "$keep" = 1 ] || rm -f "$scratch"/mutant_*.log

judged=$((killed + survived))
rate=$(awk -v k="$killed" -v n="$judged" 'BEGIN { printf "%.1f", n ? 100 * k / n : 100 }')
echo "== mutants: $total run in $((SECONDS - t_start)) s (tests of the baseline: $baseline_tests) =="
echo "killed $killed of $judged non-equivalent mutants: kill rate $rate%; $equiv_ok equivalent (survived as marked)"
for s in "${survivors[@]}"; do echo "SURVIVOR $s"; done
for p in "${problems[@]}"; do echo "PROBLEM  $p"; done
[ "$survived" -eq 0 ] && [ ${#problems[@]} -eq 0 ]
