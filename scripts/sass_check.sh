#!/usr/bin/env bash
# SASS checks of the optimizer kernels, no GPU needed: disassembles the sm_90 machine code
# embedded in libfusedopt.so and checks every optimizer kernel (by default a name containing
# "fopt_"; the config's "select REGEX" line widens it) for local memory, the width of its global
# loads, and its register count.
#
#   scripts/sass_check.sh [--config FILE] [--arch sm_NN] [--dump FILE] [LIB]
#                                        LIB default build/libfusedopt.so (a .so or a .cubin)
#   scripts/sass_check.sh --self-test    compiles a tiny .cu (nvcc, sm_90) whose kernels break
#                                        the rules and checks that every violation is reported
#   scripts/sass_check.sh --tools        only finds or installs cuobjdump/nvdisasm; prints paths
#
# One line per kernel: registers (and budget), stack frame bytes, LDL/STL count (local memory),
# 128-bit global loads (LDG.E.128, LDG.E.128.CONSTANT, LDG.E.ENL2.128 ...; 256-bit ones and
# 128-bit LDGSTS count too), 64-bit global loads, 128-bit global stores, the load width required.
# It fails when an optimizer kernel
#   - uses local memory: any LDL/STL, or a non-zero stack frame or local size (spills);
#   - has no global load of the required width (128 bits: its vector path must use 16-byte
#     loads; 64 is accepted where the config says so, for 16-bit parameter storage);
#   - uses more registers than its budget.
# Budgets and load widths: scripts/sass_budget.txt (--config), "REGEX MAX_REGS LOAD_BITS" lines,
# first match wins, then the "default" line; an optional "select REGEX" line says which kernels
# are checked (default: fopt_); the file says more. A kernel named *stats* or *prologue* that
# falls to the default line is not held to its load width.
# --dump FILE keeps the full sm_90 disassembly. --arch checks another architecture's SASS.
#
# Exit status: 0 clean ("sass_check: N kernels, 0 violations"), 1 violations (each listed),
# 2 could not check: no tools, no such file, no SASS for the architecture, no optimizer kernel,
# a bad config line.
#
# Tools: cuobjdump and nvdisasm (cuobjdump -sass runs nvdisasm) from $CUOBJDUMP / $NVDISASM,
# PATH, $CUDA_HOME/bin or /usr/local/cuda/bin; else installed once from PyPI (nvidia-cuda-
# cuobjdump, nvidia-cuda-nvdisasm; the toolkit's version when PyPI has it, else the newest of the
# same major) with pip --target into build/sass-tools/ ($FOPT_SASS_TOOLS_DIR), about 6 MB, a few
# seconds. c++filt (binutils) demangles the names when present.
#
# Time: about 1 s for the check (2 s for --self-test, one nvcc compile of a tiny file), plus about
# 5 s on the first run that installs the tools (needs PyPI).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
self=$root/scripts/$(basename "$0")

config=$root/scripts/sass_budget.txt
arch=sm_90
lib=""
dump=""
mode=check
select_re='fopt_'  # which kernels are optimizer kernels (demangled name contains it)
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --arch) arch=$2; shift 2 ;;
    --dump) dump=$2; shift 2 ;;
    --self-test) mode=selftest; shift ;;
    --tools) mode=tools; shift ;;
    -h|--help) sed -n "2,38p" "$0"; exit 0 ;;
    -*) echo "sass_check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    *) lib=$1; shift ;;
  esac
done
[ -n "$lib" ] || lib=$root/build/libfusedopt.so

die() { echo "sass_check: $*" >&2; exit 2; }

# ---------------------------------------------------------------------------------------------
# Tools
tools_dir=${FOPT_SASS_TOOLS_DIR:-$root/build/sass-tools}

# find_tool NAME ENVVAR: prints the path of an executable NAME, or nothing
find_tool() {
  local name=$1 var=$2 d
  if [ -n "${!var:-}" ] && [ -x "${!var}" ]; then echo "${!var}"; return; fi
  command -v "$name" 2>/dev/null && return
  for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda; do
    [ -n "$d" ] && [ -x "$d/bin/$name" ] && { echo "$d/bin/$name"; return; }
  done
  [ -d "$tools_dir" ] && find "$tools_dir" -type f -name "$name" -perm -u+x 2>/dev/null | sort | head -1
}

find_nvcc() {
  local d
  command -v nvcc 2>/dev/null && return
  for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda; do
    [ -n "$d" ] && [ -x "$d/bin/nvcc" ] && { echo "$d/bin/nvcc"; return; }
  done
}

# pip_install PACKAGE: installs PACKAGE (a version of the toolkit's major) into $tools_dir/PACKAGE
pip_install() {
  local pkg=$1 nvcc ver major minor py spec dest=$tools_dir/$1
  nvcc=$(find_nvcc)
  ver=$([ -n "$nvcc" ] && "$nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9]*\)\.\([0-9]*\).*/\1.\2/p' | head -1)
  [ -n "$ver" ] || ver=13.0
  major=${ver%%.*}; minor=${ver#*.}
  local specs=("$pkg==$major.$minor.*" "$pkg>=$major.$minor,<$((major + 1))" "$pkg>=$major,<$((major + 1))")
  export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
  # pyenv's python3 first on PATH, or Debian's (its pip refuses global installs; --target is fine)
  for py in python3 /usr/bin/python3 python; do
    { command -v "$py" && "$py" -m pip --version; } >/dev/null 2>&1 || continue
    for spec in "${specs[@]}"; do
      rm -rf "$dest.tmp"
      if "$py" -m pip install -q --no-warn-script-location --target "$dest.tmp" "$spec" >"$tools_dir/pip.log" 2>&1; then
        rm -rf "$dest"; mv "$dest.tmp" "$dest"
        echo "sass_check: installed $spec ($py -m pip --target $dest)" >&2
        return 0
      fi
    done
  done
  # no pip anywhere: a virtual environment brings its own
  for py in python3 /usr/bin/python3; do
    command -v "$py" >/dev/null 2>&1 || continue
    [ -x "$tools_dir/venv/bin/pip" ] || "$py" -m venv "$tools_dir/venv" >/dev/null 2>&1 || continue
    for spec in "${specs[@]}"; do
      rm -rf "$dest.tmp"
      if "$tools_dir/venv/bin/pip" install -q --target "$dest.tmp" "$spec" >"$tools_dir/pip.log" 2>&1; then
        rm -rf "$dest"; mv "$dest.tmp" "$dest"
        echo "sass_check: installed $spec (venv pip --target $dest)" >&2
        return 0
      fi
    done
  done
  rm -rf "$dest.tmp"
  echo "sass_check: could not install $pkg from PyPI (last pip output: $tools_dir/pip.log)" >&2
  return 1
}

setup_tools() {
  cuobjdump=$(find_tool cuobjdump CUOBJDUMP)
  nvdisasm=$(find_tool nvdisasm NVDISASM)
  if [ -z "$cuobjdump" ] || [ -z "$nvdisasm" ]; then
    mkdir -p "$tools_dir" || die "cannot create $tools_dir"
    local t0=$SECONDS
    [ -n "$cuobjdump" ] || pip_install nvidia-cuda-cuobjdump || exit 2
    [ -n "$nvdisasm" ] || pip_install nvidia-cuda-nvdisasm || exit 2
    echo "sass_check: tools installed in $((SECONDS - t0))s" >&2
    cuobjdump=$(find_tool cuobjdump CUOBJDUMP)
    nvdisasm=$(find_tool nvdisasm NVDISASM)
  fi
  [ -n "$cuobjdump" ] || die "no cuobjdump (not on PATH, in CUDA, nor in $tools_dir)"
  [ -n "$nvdisasm" ] || die "no nvdisasm (not on PATH, in CUDA, nor in $tools_dir)"
  # cuobjdump -sass runs nvdisasm, found through NVDISASM_PATH (a directory) or PATH
  NVDISASM_PATH=$(dirname "$nvdisasm")
  export NVDISASM_PATH
  export PATH="$NVDISASM_PATH:$PATH"
  tools_version=$("$cuobjdump" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\),.*/\1/p' | head -1)
}

# ---------------------------------------------------------------------------------------------
# Self-test: a tiny .cu whose kernels break each rule, and the reports that must come out of it
# shellcheck disable=SC2317  # has, hasnt and is are called through expect
self_test() {
  local nvcc pass=0 fail=0 rc regs
  nvcc=$(find_nvcc)
  [ -n "$nvcc" ] || die "--self-test needs nvcc (PATH, \$CUDA_HOME/bin or /usr/local/cuda/bin)"
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/sass_check.XXXXXX") || die "mktemp failed"
  trap 'rm -rf "${tmp:-}"' EXIT
  cat >"$tmp/k.cu" <<'EOF'
// Spills to local memory (a dynamically indexed local array) and loads one float at a time.
extern "C" __global__ void fopt_selftest_step_spill(const float *__restrict__ in, float *__restrict__ out,
                                                   int n, int k)
{
    float buf[64];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
#pragma unroll 1
    for (int j = 0; j < 64; ++j) buf[j] = in[(i + j * 7) % n];
    out[i] = buf[(k + i) & 63];
}
// Clean: float loads 16 bytes at a time; 16-bit elements (unsigned short) 8 bytes at a time.
template <typename T>
__global__ void fopt_selftest_step(const T *__restrict__ in, T *__restrict__ out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (4 * i + 3 >= n) return;
    if constexpr (sizeof(T) == 4) {
        float4 v = reinterpret_cast<const float4 *>(in)[i];
        v.x *= 2.0f; v.y *= 2.0f; v.z *= 2.0f; v.w *= 2.0f;
        reinterpret_cast<float4 *>(out)[i] = v;
    } else {
        uint2 v = reinterpret_cast<const uint2 *>(in)[i];
        v.x ^= 0x80008000u; v.y ^= 0x80008000u;
        reinterpret_cast<uint2 *>(out)[i] = v;
    }
}
template __global__ void fopt_selftest_step<float>(const float *, float *, int);
template __global__ void fopt_selftest_step<unsigned short>(const unsigned short *, unsigned short *, int);
// A reduction: scalar loads, exempt from the load width by its name.
extern "C" __global__ void fopt_selftest_stats(const float *__restrict__ g, float *sum, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) atomicAdd(sum, g[i] * g[i]);
}
// Not an optimizer kernel (no "fopt_" in its name): spills, and is not checked.
extern "C" __global__ void selftest_helper_spill(const float *__restrict__ in, float *out, int n, int k)
{
    float buf[64];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
#pragma unroll 1
    for (int j = 0; j < 64; ++j) buf[j] = in[(i + j * 5) % n];
    out[i] = buf[(k + i) & 63];
}
EOF
  local t0=$SECONDS
  "$nvcc" -std=c++17 -arch=sm_90 -cubin -o "$tmp/k.cubin" "$tmp/k.cu" >"$tmp/nvcc.log" 2>&1 ||
    { cat "$tmp/nvcc.log" >&2; die "self-test: nvcc failed"; }
  echo "self-test: compiled $tmp/k.cu for sm_90 in $((SECONDS - t0))s"

  # expect DESCRIPTION COMMAND...: counts a check that passes when COMMAND succeeds
  expect() {
    local what=$1; shift
    if "$@" >/dev/null 2>&1; then pass=$((pass + 1)); echo "  ok    $what"
    else fail=$((fail + 1)); echo "  FAIL  $what"; fi
  }
  has() { grep -qE -- "$1" "$tmp/out"; }
  hasnt() { ! grep -qE -- "$1" "$tmp/out"; }
  is() { [ "$1" = "$2" ]; }

  # 1: the default budget; 16-bit storage accepts 64-bit loads
  printf '%s\n' 'fopt_selftest_step<unsigned short>  255  64' 'default  255  128' >"$tmp/a.txt"
  "$self" --config "$tmp/a.txt" "$tmp/k.cubin" >"$tmp/out" 2>&1; rc=$?
  echo "-- run 1 (exit $rc):"; sed 's/^/   | /' "$tmp/out"
  expect "run 1 exits 1" is "$rc" 1
  expect "spilling kernel: local memory reported" has 'VIOLATION fopt_selftest_step_spill: local memory \([0-9]+ LDL, [0-9]+ STL, stack [1-9]'
  expect "spilling kernel: missing 128-bit loads reported" has 'VIOLATION fopt_selftest_step_spill: no 128-bit global load'
  expect "float4 kernel: clean, 128-bit loads counted" \
    bash -c "grep -E '^fopt_selftest_step<float> ' '$tmp/out' | awk '{exit !(\$5 > 0 && \$7 > 0)}'"
  expect "float4 kernel: no violation" hasnt 'VIOLATION fopt_selftest_step<float>'
  expect "16-bit kernel: 64-bit loads accepted" hasnt 'VIOLATION fopt_selftest_step<unsigned short>'
  expect "stats kernel: not held to 128-bit loads" hasnt 'VIOLATION fopt_selftest_stats'
  expect "non-optimizer kernel ignored" hasnt 'selftest_helper_spill'
  expect "run 1 summary: 4 kernels, 2 violations" has '^sass_check: 4 kernels, 2 violations$'

  # 2: a register budget one under what the float4 kernel uses; 128-bit loads required everywhere
  regs=$(awk '$1 == "fopt_selftest_step<float>" { split($2, r, "/"); print r[1] }' "$tmp/out")
  printf '%s\n' "fopt_selftest_step<float>  $((${regs:-1} - 1))  128" 'default  255  128' >"$tmp/b.txt"
  "$self" --config "$tmp/b.txt" "$tmp/k.cubin" >"$tmp/out" 2>&1; rc=$?
  echo "-- run 2, budget $((${regs:-1} - 1)) registers for fopt_selftest_step<float> (exit $rc):"
  sed 's/^/   | /' "$tmp/out"
  expect "run 2 exits 1" is "$rc" 1
  expect "register budget exceeded reported" has "VIOLATION fopt_selftest_step<float>: $regs registers > budget $((${regs:-1} - 1))"
  expect "16-bit kernel held to 128 bits when configured" has 'VIOLATION fopt_selftest_step<unsigned short>: no 128-bit global load'
  expect "run 2 summary: 4 kernels, 4 violations" has '^sass_check: 4 kernels, 4 violations$'

  # 3: no SASS for the architecture asked for
  "$self" --arch sm_80 "$tmp/k.cubin" >"$tmp/out" 2>&1; rc=$?
  echo "-- run 3, --arch sm_80 on the sm_90 cubin (exit $rc):"; sed 's/^/   | /' "$tmp/out"
  expect "missing sm_80 SASS: exits 2" is "$rc" 2
  expect "missing sm_80 SASS: said so" has 'no sm_80 SASS'

  if [ "$fail" -eq 0 ]; then
    echo "sass_check --self-test: all $pass checks passed"
    return 0
  fi
  echo "sass_check --self-test: $fail of $((pass + fail)) checks FAILED"
  return 1
}

# ---------------------------------------------------------------------------------------------
setup_tools
if [ "$mode" = tools ]; then
  echo "cuobjdump $cuobjdump"
  echo "nvdisasm  $nvdisasm"
  echo "version   ${tools_version:-?}"
  exit 0
fi
if [ "$mode" = selftest ]; then
  self_test
  exit $?
fi

[ -f "$lib" ] || die "no such file: $lib (build it first: cmake --build build --target fusedopt)"
[ -f "$config" ] || die "no such config: $config"

# ---- config: REGEX MAX_REGS LOAD_BITS, first match wins, then "default"
rule_re=(); rule_regs=(); rule_bits=(); rule_line=()
def_regs=""; def_bits=""
n=0
while IFS= read -r line || [ -n "$line" ]; do
  n=$((n + 1))
  [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
  if [[ $line =~ ^[[:space:]]*select[[:space:]]+(.*[^[:space:]])[[:space:]]*$ ]]; then
    re=${BASH_REMATCH[1]}
    [[ "" =~ $re ]]; [ $? -ne 2 ] || die "$config:$n: bad regular expression: $re"
    select_re=$re
    continue
  fi
  [[ $line =~ ^[[:space:]]*(.*[^[:space:]])[[:space:]]+([0-9]+)[[:space:]]+([0-9]+)[[:space:]]*$ ]] ||
    die "$config:$n: expected 'REGEX MAX_REGS LOAD_BITS': $line"
  re=${BASH_REMATCH[1]} regs=${BASH_REMATCH[2]} bits=${BASH_REMATCH[3]}
  case $bits in 0|64|128) ;; *) die "$config:$n: LOAD_BITS must be 0, 64 or 128: $line" ;; esac
  if [ "$re" = default ]; then
    [ -n "$def_regs" ] || { def_regs=$regs; def_bits=$bits; }
    continue
  fi
  [[ "" =~ $re ]]; [ $? -ne 2 ] || die "$config:$n: bad regular expression: $re"
  rule_re+=("$re"); rule_regs+=("$regs"); rule_bits+=("$bits"); rule_line+=("$n")
done <"$config"
[ -n "$def_regs" ] || die "$config: no 'default MAX_REGS LOAD_BITS' line"

# ---- disassembly and resource usage
setup_tmp=$(mktemp -d "${TMPDIR:-/tmp}/sass_check.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$setup_tmp"' EXIT
t0=$(date +%s%N)
"$cuobjdump" -sass -arch "$arch" "$lib" >"$setup_tmp/sass" 2>"$setup_tmp/err" ||
  { cat "$setup_tmp/err" >&2; die "cuobjdump -sass failed on $lib"; }
"$cuobjdump" -res-usage -arch "$arch" "$lib" >"$setup_tmp/res" 2>"$setup_tmp/err" ||
  { cat "$setup_tmp/err" >&2; die "cuobjdump -res-usage failed on $lib"; }
[ -z "$dump" ] || cp "$setup_tmp/sass" "$dump"

if ! grep -qE "^[[:space:]]*code for $arch\$" "$setup_tmp/sass"; then
  elfs=$("$cuobjdump" --list-elf "$lib" 2>/dev/null | awk '{print $NF}' | paste -sd' ' -)
  die "no $arch SASS in $lib (embedded ELF: ${elfs:-none}); build with CMAKE_CUDA_ARCHITECTURES naming ${arch#sm_} or ${arch#sm_}-real"
fi

# Per function of the wanted architecture: name#occurrence, LDL, STL, 128-bit LDG, 64-bit LDG,
# 128-bit STG. An instruction line: "/*0270*/  [@!P0 ]OPCODE.MODIFIERS operands ;"
awk -v want="$arch" '
  function flush() { if (fn != "") printf "%s\t%d\t%d\t%d\t%d\t%d\n", fn, ldl, stl, ld128, ld64, st128 }
  /^[ \t]*code for sm_/ { flush(); fn = ""; arch = $3; next }
  /^[ \t]*Function : / {
    flush(); fn = ""
    if (arch != want) next
    name = $3; occ[name]++; fn = name "#" occ[name]
    ldl = stl = ld128 = ld64 = st128 = 0
    next
  }
  fn != "" && /^[ \t]*\/\*[0-9a-f]+\*\/[ \t]/ {
    line = $0
    sub(/^[ \t]*\/\*[0-9a-f]+\*\/[ \t]+/, "", line)
    sub(/^@!?U?P[0-9T]+[ \t]+/, "", line)
    op = line; sub(/[ \t;].*/, "", op)
    np = split(op, part, ".")
    base = part[1]; w = 0
    for (i = 2; i <= np; i++) {
      if (part[i] == "64" && w < 64) w = 64
      if (part[i] == "128" || part[i] == "256") w = 128
    }
    if (base == "LDL") ldl++
    else if (base == "STL") stl++
    else if (base == "LDG" || base == "LDGSTS") { if (w == 128) ld128++; else if (w == 64) ld64++ }
    else if (base == "STG") { if (w == 128) st128++ }
  }
  END { flush() }' "$setup_tmp/sass" >"$setup_tmp/counts"

# REG, STACK and LOCAL per function (-res-usage names each "Function NAME:" then its resources)
awk -v want="$arch" '
  /^arch = / { arch = $3; next }
  /^[ \t]*Function [^ ]+:[ \t]*$/ { name = $2; sub(/:$/, "", name); next }
  name != "" && /REG:/ {
    if (arch == "" || arch == want) {
      occ[name]++; reg = stack = local = 0
      for (i = 1; i <= NF; i++) {
        split($i, kv, ":")
        if (kv[1] == "REG") reg = kv[2]; else if (kv[1] == "STACK") stack = kv[2]; else if (kv[1] == "LOCAL") local = kv[2]
      }
      printf "%s#%d\t%d\t%d\t%d\n", name, occ[name], reg, stack, local
    }
    name = ""
  }' "$setup_tmp/res" >"$setup_tmp/resources"

# demangled, then as matched (no return type, no parameter list) and as printed (shorter)
cut -f1 "$setup_tmp/counts" | sed 's/#[0-9]*$//' >"$setup_tmp/mangled"
if command -v c++filt >/dev/null 2>&1; then
  c++filt <"$setup_tmp/mangled" >"$setup_tmp/demangled"
else
  cp "$setup_tmp/mangled" "$setup_tmp/demangled"
fi
awk '{
    s = $0; sub(/^void /, "", s)
    if (substr(s, length(s)) == ")") {          # drop the parameter list: the last balanced (...)
      d = 0
      for (i = length(s); i > 0; i--) {
        c = substr(s, i, 1)
        if (c == ")") d++
        else if (c == "(" && --d == 0) { s = substr(s, 1, i - 1); break }
      }
    }
    t = s; gsub(/\(anonymous namespace\)::/, "", t)
    while (gsub(/> >/, ">>", t)) {}
    print s "\t" t
  }' "$setup_tmp/demangled" >"$setup_tmp/names"
ms=$((($(date +%s%N) - t0) / 1000000))
check_secs=$((ms / 1000)).$(printf %03d $((ms % 1000)))

# ---- checks
keys=(); ids=(); shorts=(); counts=(); res=()
while IFS=$'\t' read -r key ldl stl ld128 ld64 st128 <&3 && IFS=$'\t' read -r id short <&4; do
  [[ $id =~ $select_re ]] || continue
  r=$(awk -F'\t' -v k="$key" '$1 == k { print $2 "\t" $3 "\t" $4; exit }' "$setup_tmp/resources")
  [ -n "$r" ] || r=$'?\t?\t?'
  keys+=("$key"); ids+=("$id"); shorts+=("$short")
  counts+=("$ldl $stl $ld128 $ld64 $st128"); res+=("${r//$'\t'/ }")
done 3<"$setup_tmp/counts" 4<"$setup_tmp/names"

nk=${#keys[@]}
[ "$nk" -gt 0 ] || die "no optimizer kernel (name matching '$select_re') in the $arch SASS of $lib"

width=6
for s in "${shorts[@]}"; do [ ${#s} -gt "$width" ] && width=${#s}; done
echo "sass_check: ${lib#"$root"/}, $arch SASS, cuobjdump ${tools_version:-?} (${cuobjdump#"$root"/}), budgets ${config#"$root"/}, disassembled in ${check_secs}s"
printf "%-${width}s %8s %6s %8s %7s %6s %7s %5s\n" kernel regs stack LDL/STL LDG128 LDG64 STG128 need
violations=()
for ((k = 0; k < nk; k++)); do
  id=${ids[k]} short=${shorts[k]}
  read -r ldl stl ld128 ld64 st128 <<<"${counts[k]}"
  read -r reg stack lmem <<<"${res[k]}"
  max=$def_regs bits=$def_bits matched=""
  for ((j = 0; j < ${#rule_re[@]}; j++)); do
    if [[ $id =~ ${rule_re[j]} ]]; then max=${rule_regs[j]} bits=${rule_bits[j]} matched=1; break; fi
  done
  # reductions (grads only) are not held to the default's load width
  if [ -z "$matched" ] && [[ $id =~ stats|prologue ]]; then bits=0; fi
  printf "%-${width}s %8s %6s %8s %7s %6s %7s %5s\n" "$short" "$reg/$max" "$stack" "$ldl/$stl" \
    "$ld128" "$ld64" "$st128" "$bits"
  if [ "$ldl" -gt 0 ] || [ "$stl" -gt 0 ] || [ "$stack" != 0 ] || [ "$lmem" != 0 ]; then
    what="$ldl LDL, $stl STL, stack $stack bytes"
    [ "$lmem" = 0 ] || what="$what, local $lmem bytes"
    violations+=("$short: local memory ($what)")
  fi
  case $bits in
    128) [ "$ld128" -gt 0 ] ||
           violations+=("$short: no 128-bit global load (vector path must load 16 bytes at a time)") ;;
    64) [ "$ld128" -gt 0 ] || [ "$ld64" -gt 0 ] ||
          violations+=("$short: no 64-bit or 128-bit global load") ;;
  esac
  if [ "$reg" = "?" ]; then
    violations+=("$short: no resource usage from cuobjdump -res-usage")
  elif [ "$reg" -gt "$max" ]; then
    violations+=("$short: $reg registers > budget $max")
  fi
done
for v in "${violations[@]}"; do echo "VIOLATION $v"; done
echo "sass_check: $nk kernels, ${#violations[@]} violations"
[ ${#violations[@]} -eq 0 ]
