#!/usr/bin/env bash
# SASS instruction profile of the optimizer kernels' main loops, no GPU needed: what each step
# kernel (and the statistics kernel) issues per element and per byte it must move, by class.
#
#   scripts/sass_profile.sh [--out CSV] [--arch sm_NN] [--bench FOPT_BENCH] [LIB]
#        LIB    default build/libfusedopt.so (a Release CUDA build)
#        --out  default bench/results/sass_profile_<date>_<arch>.csv
#        --bench  fopt_bench binary whose --list-bytes table is checked against the byte counts
#                 used here (default build/bench/fopt_bench when it exists)
#        --sms N --clock-ghz F --bw-gbs F  the device of the issue_pct column (default an H200:
#                 132 SMs, 1.98 GHz, 4255 GB/s copy bandwidth as measured on 2026-11-27)
#
# The disassembly is scripts/sass_check.sh's (--dump), so the check runs too (its summary line is
# printed). Per kernel:
#   - the main loop: the backward branch whose body holds the most global loads (the aligned
#     packet loop of kernels/chunk.cuh; for the statistics kernel every loop with global loads,
#     one per grad storage);
#   - its basic blocks, and the path one iteration takes through them:
#       * a block that calls a subroutine (CALL: the IEEE division and sqrt slow paths) is never
#         taken;
#       * a branch on a loop-invariant predicate (computed only from registers the loop does not
#         write) is an option of the launch: stochastic rounding (its side holds the lowbias32
#         constant 0x7feb352d), the grad-scale division (its side holds FCHK), or another option
#         (weight decay form; the longer side is taken); such a division branch inside another
#         one chooses between multiplying by a power-of-two scale's inverse and dividing.
#         Configurations: "plain" (no grad scale, stochastic rounding where the kernel has it),
#         "ex" (fopt_step_ex with a power-of-two grad scale, clipping and inf check), "ex_div" (a
#         scale that is not a power of two), "rn" (stochastic-rounding kernels with it off); the
#         statistics kernel has one lanes loop per kind of scale, each its own row;
#       * any other branch depends on the data: the longer side is taken (every packet of the
#         iteration in range, finite values), except the recomputation of the hash's high half
#         (a side holding 0x7feb352d whose other side is one MOV: a chunk crossing 2^32 elements);
#   - the instructions on that path by class, divided by the elements one iteration handles per
#     thread (16 for the step kernels: ILP x W; 32 for the statistics kernel) and by the bytes a
#     step must move per element (the rules of bench/modes.h).
# Predicated-off instructions are counted: they take an issue slot all the same.
#
# Classes: ldg/stg (global loads/stores, with the 128-bit ones apart), fp32 (FADD FMUL FFMA FSEL
# FSETP FMNMX FCHK FSET), fp64 (DADD DMUL DFMA DSETP), mufu (MUFU.*), conv (F2F F2FP I2F F2I
# HADD2.F32 FRND I2I: every type conversion), int (IMAD IADD3 LOP3 SHF LEA ISETP PRMT SEL IMNMX
# POPC FLO ...: integer and bit work, the hash), move (MOV CS2R R2UR UMOV S2R ...), control (BRA
# BSSY BSYNC EXIT CALL RET WARPSYNC), other.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
arch=sm_90
lib=""
out=""
bench=""
sms=132 clock=1.98 bw=4255
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --arch) arch=$2; shift 2 ;;
    --bench) bench=$2; shift 2 ;;
    --sms) sms=$2; shift 2 ;;
    --clock-ghz) clock=$2; shift 2 ;;
    --bw-gbs) bw=$2; shift 2 ;;
    -h|--help) sed -n "2,$(($(grep -n '^set -uo' "$0" | cut -d: -f1) - 1))p" "$0"; exit 0 ;;
    -*) echo "sass_profile: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    *) lib=$1; shift ;;
  esac
done
[ -n "$lib" ] || lib=$root/build/libfusedopt.so
[ -n "$out" ] || out=$root/bench/results/sass_profile_$(date -u +%Y%m%d)_${arch}.csv
[ -n "$bench" ] || { [ -x "$root/build/bench/fopt_bench" ] && bench=$root/build/bench/fopt_bench; }
[ -f "$lib" ] || { echo "sass_profile: no such file: $lib (build it first)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "sass_profile: needs python3" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sass_profile.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
bash "$root/scripts/sass_check.sh" --arch "$arch" --dump "$tmp/sass" "$lib" >"$tmp/check" 2>&1
rc=$?
[ -s "$tmp/sass" ] || { cat "$tmp/check" >&2; echo "sass_profile: no disassembly" >&2; exit 2; }
tail -1 "$tmp/check"
[ "$rc" -eq 0 ] || grep '^VIOLATION' "$tmp/check"
grep -E '^[[:space:]]*Function : ' "$tmp/sass" | awk '{print $3}' >"$tmp/mangled"
if command -v c++filt >/dev/null 2>&1; then c++filt <"$tmp/mangled" >"$tmp/names"; else cp "$tmp/mangled" "$tmp/names"; fi
[ -z "$bench" ] || "$bench" --list-bytes >"$tmp/bytes" 2>/dev/null || : >"$tmp/bytes"

python3 - "$tmp/sass" "$tmp/mangled" "$tmp/names" "$arch" "$out" "${bench:+$tmp/bytes}" "$sms" "$clock" "$bw" <<'EOF'
import re, sys, csv, os

sass_path, mangled_path, names_path, arch, out_path, bytes_path = sys.argv[1:7]
sms, clock_ghz, bw_gbs = int(sys.argv[7]), float(sys.argv[8]), float(sys.argv[9])
demangle = dict(zip(open(mangled_path).read().split('\n'), open(names_path).read().split('\n')))

# ---- disassembly: per function of the architecture, (address, predicate, opcode, operands)
funcs, order, cur, cur_arch = {}, [], None, None
ins_re = re.compile(r'^\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;')
for line in open(sass_path):
    m = re.match(r'^\s*code for (sm_\d+)', line)
    if m:
        cur_arch, cur = m.group(1), None
        continue
    m = re.match(r'^\s*Function : (\S+)', line)
    if m:
        cur = None
        if cur_arch == arch and m.group(1) not in funcs:
            cur = m.group(1)
            funcs[cur] = []
            order.append(cur)
        continue
    if cur is None:
        continue
    m = ins_re.match(line)
    if m:
        text, pred = m.group(2), ''
        pm = re.match(r'^(@!?U?P[0-9T]+)\s+(.*)$', text)
        if pm:
            pred, text = pm.group(1), pm.group(2)
        op = text.split()[0] if text else ''
        operands = text[len(op):].strip()
        funcs[cur].append((int(m.group(1), 16), pred, op, operands))

CLASSES = ['ldg', 'ldg128', 'stg', 'stg128', 'fp32', 'fp64', 'mufu', 'conv', 'int', 'move', 'control', 'other']
FP32 = {'FADD', 'FMUL', 'FFMA', 'FSEL', 'FSETP', 'FMNMX', 'FCHK', 'FSET', 'FADD32I', 'FMUL32I', 'FFMA32I'}
FP64 = {'DADD', 'DMUL', 'DFMA', 'DSETP', 'DMNMX'}
CONV = {'F2F', 'F2FP', 'I2F', 'F2I', 'FRND', 'I2I', 'I2FP', 'F2IP'}
INT = {'IMAD', 'IADD3', 'LOP3', 'SHF', 'LEA', 'ISETP', 'PRMT', 'SEL', 'IMNMX', 'POPC', 'FLO', 'IABS',
       'BMSK', 'BREV', 'LOP', 'IADD', 'IMUL', 'PLOP3', 'P2R', 'R2P', 'VIADD', 'IADD32I', 'ISCADD'}
MOVE = {'MOV', 'CS2R', 'R2UR', 'UMOV', 'S2R', 'S2UR', 'MOV32I', 'SHFL', 'LDC', 'ULDC', 'IMAD.MOV'}
CONTROL = {'BRA', 'BSSY', 'BSYNC', 'EXIT', 'CALL', 'RET', 'WARPSYNC', 'BREAK', 'BRX', 'JMP', 'NOP', 'YIELD'}

def width(op):
    parts = op.split('.')
    return 128 if ('128' in parts or '256' in parts) else 64 if '64' in parts else 32

def classify(op, operands):
    base = op.split('.')[0]
    if base in ('LDG', 'LD', 'LDGSTS'):
        return ['ldg', 'ldg128'] if width(op) == 128 else ['ldg']
    if base in ('STG', 'ST'):
        return ['stg', 'stg128'] if width(op) == 128 else ['stg']
    if op.startswith('HADD2.F32'):
        return ['conv']
    if op.startswith('IMAD.MOV'):
        return ['move']
    if base in FP32: return ['fp32']
    if base in FP64: return ['fp64']
    if base == 'MUFU': return ['mufu']
    if base in CONV: return ['conv']
    if base in INT or base.startswith('U') and base[1:] in INT: return ['int']
    if base in MOVE or op in MOVE: return ['move']
    if base in CONTROL: return ['control']
    return ['other']

def target_of(operands):
    m = re.search(r'0x([0-9a-f]+)\s*$', operands)
    return int(m.group(1), 16) if m else None

REG = re.compile(r'\b(U?R\d+|U?P\d)\b')

def regs_written(op, operands):
    base = op.split('.')[0]
    if base in ('STG', 'ST', 'STS', 'STL', 'BRA', 'BSSY', 'BSYNC', 'EXIT', 'CALL', 'RET', 'RED', 'ATOM'):
        return []
    toks = [t.strip() for t in operands.split(',')]
    if not toks or not toks[0]:
        return []
    dst = REG.findall(toks[0])
    w = []
    for r in dst:
        w.append(r)
        m = re.match(r'(U?R)(\d+)$', r)
        if m and width(op) >= 64 and base in ('LDG', 'LD', 'LDC', 'ULDC', 'LDS', 'CS2R', 'IMAD', 'DADD', 'DMUL', 'DFMA', 'F2F'):
            n = 4 if width(op) == 128 else 2
            w += ['%s%d' % (m.group(1), int(m.group(2)) + k) for k in range(1, n)]
    # ISETP-like: the first two operands are predicates (P0, PT)
    if base in ('ISETP', 'FSETP', 'DSETP', 'PLOP3', 'FCHK', 'UISETP') and len(toks) > 1:
        w += REG.findall(toks[1])
    if base in ('IADD3', 'LEA', 'LOP3', 'SHF', 'UIADD3', 'ULEA') and len(toks) > 1 and re.match(r'^U?P\d$', toks[1]):
        w.append(toks[1])
    return w

def regs_read(op, operands):
    toks = [t.strip() for t in operands.split(',')]
    base = op.split('.')[0]
    start = 0 if base in ('STG', 'ST', 'STS', 'BRA', 'BSSY', 'BSYNC', 'RED', 'ATOM') else 1
    if base in ('ISETP', 'FSETP', 'DSETP', 'FCHK', 'PLOP3', 'UISETP'):
        start = 2 if base != 'FCHK' else 1
    r = []
    for t in toks[start:]:
        r += REG.findall(t)
    return r

def invariant_regs(body):
    """Registers whose value is the same in every iteration: not written in the loop, or written
    only by non-memory instructions of invariant sources (a pessimistic fixpoint)."""
    writes = {}
    for (_, pred, op, operands) in body:
        for r in regs_written(op, operands):
            writes.setdefault(r, []).append((pred, op, operands))
    inv = set()
    changed = True
    while changed:
        changed = False
        for r, ws in writes.items():
            if r in inv:
                continue
            ok = True
            for (pred, op, operands) in ws:
                base = op.split('.')[0]
                if base in ('LDG', 'LD', 'LDS', 'LDL', 'S2R', 'ATOM', 'RED', 'SHFL'):
                    ok = False; break
                srcs = regs_read(op, operands) + ([pred.lstrip('@!')] if pred else [])
                if any(s in writes and s not in inv for s in srcs):
                    ok = False; break
            if ok:
                inv.add(r); changed = True
    return lambda reg: reg not in writes or reg in inv

def def_invariant(body, inv, idx, reg, depth=0):
    """Whether the value of `reg` read at body[idx] is loop-invariant: its nearest write before
    idx has only invariant sources (registers such as predicates are reused within the loop)."""
    for j in range(idx - 1, -1, -1):
        pred, op, operands = body[j][1:]
        if reg in regs_written(op, operands):
            if op.split('.')[0] in ('LDG', 'LD', 'LDS', 'LDL', 'S2R', 'ATOM', 'RED', 'SHFL', 'FCHK'):
                return False
            srcs = regs_read(op, operands) + ([pred.lstrip('@!')] if pred else [])
            for s in srcs:
                if s in ('PT', 'RZ', 'URZ', 'UPT') or inv(s):
                    continue
                if depth < 4 and re.match(r'^U?P\d$', s) and def_invariant(body, inv, j, s, depth + 1):
                    continue
                return False
            return True
    return inv(reg)

def loops_of(ins):
    loops = []
    for idx, (a, pred, op, operands) in enumerate(ins):
        if op.split('.')[0] == 'BRA':
            t = target_of(operands)
            if t is not None and t < a:
                lo = next(i for i, x in enumerate(ins) if x[0] == t)
                loops.append((lo, idx))
    return loops

def analyse_loop(ins, lo, hi, config):
    """Instructions on the path one iteration of loop ins[lo..hi] takes under `config`."""
    body = ins[lo:hi + 1]
    addr_index = {x[0]: i for i, x in enumerate(body)}
    leaders = {0}
    for i, (a, pred, op, operands) in enumerate(body):
        base = op.split('.')[0]
        if base in ('BRA', 'EXIT', 'RET', 'CALL'):
            if i + 1 < len(body):
                leaders.add(i + 1)
            t = target_of(operands) if base == 'BRA' else None
            if t is not None and t in addr_index:
                leaders.add(addr_index[t])
    starts = sorted(leaders)
    blocks = []
    for k, s in enumerate(starts):
        e = starts[k + 1] if k + 1 < len(starts) else len(body)
        blocks.append((s, e))
    block_at = {s: k for k, (s, e) in enumerate(blocks)}
    inv = invariant_regs(body)
    cold = [any(x[2].startswith('CALL') for x in body[s:e]) for (s, e) in blocks]
    END = len(blocks)
    succ = []
    for k, (s, e) in enumerate(blocks):
        a, pred, op, operands = body[e - 1]
        base = op.split('.')[0]
        nxt = k + 1 if k + 1 < len(blocks) else END
        if base == 'BRA':
            t = target_of(operands)
            tk = END if (t is not None and t == body[0][0] and e - 1 == len(body) - 1) else block_at.get(addr_index.get(t, -1), None)
            if tk is None:
                tk = 'out'
            if not pred and '!P' not in operands.split(',')[0] and ',' not in operands:
                succ.append([('taken', tk)])
            elif e - 1 == len(body) - 1:
                succ.append([('taken', END)])  # the back edge
            else:
                succ.append([('fall', nxt), ('taken', tk)])
        elif base in ('EXIT', 'RET') and not pred:
            succ.append([])
        else:
            succ.append([('fall', nxt)])
    # longest/shortest hot path by dynamic programming over the forward DAG (blocks in order)
    NEG = None
    best = [NEG] * (END + 1)
    choice = [None] * END
    best[END] = 0
    def region_text(k_from, k_to):
        k_to = END if k_to == 'out' else k_to
        return ' '.join(x[2] + ' ' + x[3] for (s, e) in blocks[k_from:k_to] for x in body[s:e])
    # option branches that skip a division (FCHK): the grad scale's; one nested in another picks
    # between multiplying by the inverse of a power-of-two scale and dividing
    fchk_options = []
    for k, (s, e) in enumerate(blocks):
        a, pred, op, operands = body[e - 1]
        t = target_of(operands)
        if op == 'BRA' and pred and t is not None and t > a and def_invariant(body, inv, e - 1, pred.lstrip('@!')):
            if 'FCHK' in ' '.join(x[2] for x in body[e:addr_index.get(t, len(body))]):
                fchk_options.append((a, t))
    for k in range(END - 1, -1, -1):
        s, e = blocks[k]
        if cold[k]:
            continue
        opts = [(kind, t) for (kind, t) in succ[k] if t != 'out' and best[t] is not NEG]
        if not opts:
            if not succ[k]:
                best[k] = e - s
            continue
        pick = None
        if len(opts) == 2:
            a, pred, op, operands = body[e - 1]
            pr = pred.lstrip('@!')
            (kf, nf), (kt, nt) = opts
            skipped = region_text(k + 1, nt if nt != END else END)
            if pr and def_invariant(body, inv, e - 1, pr):
                # an option: which side runs when it is on (the longer one)
                longer = max(opts, key=lambda o: best[o[1]])
                shorter = min(opts, key=lambda o: best[o[1]])
                if '0x7feb352d' in skipped:
                    on = config.get('sr', False)
                elif 'FCHK' in skipped and any(a0 < body[e - 1][0] < t0 for (a0, t0) in fchk_options):
                    on = config.get('scale_div', False)  # the division for a scale not a power of two
                elif 'FCHK' in skipped:
                    on = config.get('scale', False)
                else:
                    on = True
                pick = longer if on else shorter
            else:
                tb = blocks[nt] if nt != END else None
                one_mov = tb is not None and (tb[1] - tb[0]) <= 2 and body[tb[0]][2] == 'MOV'
                if '0x7feb352d' in skipped and one_mov:
                    pick = (kt, nt)  # the hash's high half: recomputed once per 2^32 elements
                else:
                    pick = max(opts, key=lambda o: best[o[1]])
        else:
            pick = opts[0]
        best[k] = (e - s) + best[pick[1]]
        choice[k] = pick[1]
    path = []
    k = 0
    while k is not None and k != END:
        s, e = blocks[k]
        path += body[s:e]
        k = choice[k]
    counts = dict((c, 0) for c in CLASSES)
    for (a, pred, op, operands) in path:
        for c in classify(op, operands):
            counts[c] += 1
    return len(body), len(path), counts

# ---- which kernels, their modes and bytes (bench/modes.h's rules)
def step_kind(name):
    m = re.match(r'(?:void )?fopt_step_kernel<fopt_(\w+?)_t, fopt_(\w+?)_t, (\d), \(anonymous namespace\)::(\w+)<([^>]*)>', name)
    if not m:
        return None
    p, s, master, upd, targs = m.group(1), m.group(2), int(m.group(3)), m.group(4), [t.strip() for t in m.group(5).split(',')]
    if upd == 'AdamUpdate':
        variant = 'amsgrad' if targs[0] == 'true' else 'adam'
        nstates = 3 if targs[0] == 'true' else 2
    else:
        mom, cen = targs[0] == 'true', targs[1] == 'true'
        variant = 'rmsprop' + ('_centered' if cen else '') + ('_momentum' if mom else '')
        nstates = 1 + mom + cen
    pb = 4 if p == 'f32' else 2
    sb = 4 if s == 'f32' else 2
    modes = {('f32', 'f32', 0): 'fp32', ('f32', 'bf16', 0): 'fp32_bf16_states', ('bf16', 'f32', 1): 'bf16_master',
             ('bf16', 'f32', 2): 'bf16_remainder', ('bf16', 'bf16', 0): 'bf16_sr', ('f16', 'f32', 1): 'fp16_master'}
    mode = modes.get((p, s, master), '%s_%s_states_master%d' % (p, s, master))
    if master == 1:
        pbytes = pb + 8
    elif master == 2:
        pbytes = 2 * pb + 4
    else:
        pbytes = 2 * pb
    return dict(variant=variant, mode=mode, bytes=pb + pbytes + 2 * sb * nstates, elems=16,
                sr_kernel=(p == 'bf16' and master == 0))

listed = {}
if bytes_path and os.path.exists(bytes_path):
    for line in open(bytes_path):
        f = line.split()
        if len(f) >= 4 and f[2].isdigit() and f[3].isdigit():
            listed[(f[0], f[1])] = int(f[2])

rows, mismatches = [], []
budget_per_elem = lambda bpe: sms * 4 * clock_ghz * 1e9 * 32 / (bw_gbs * 1e9 / bpe)
for mangled in order:
    name = demangle.get(mangled, mangled)
    ins = funcs[mangled]
    loops = loops_of(ins)
    nld = lambda lo, hi: sum(1 for x in ins[lo:hi + 1] if x[2].startswith('LDG'))
    kind = step_kind(name)
    if kind:
        lo, hi = max(loops, key=lambda l: (nld(*l), l[1] - l[0]))
        short = name.replace('void ', '').replace('(anonymous namespace)::', '').split('(fopt_step_args')[0]
        if (kind['variant'], kind['mode']) in listed and listed[(kind['variant'], kind['mode'])] != kind['bytes']:
            mismatches.append('%s %s: %d here, %d in fopt_bench --list-bytes' % (kind['variant'], kind['mode'], kind['bytes'], listed[(kind['variant'], kind['mode'])]))
        configs = [('plain', {'sr': True}), ('ex', {'sr': True, 'scale': True}),
                   ('ex_div', {'sr': True, 'scale': True, 'scale_div': True})]
        if kind['sr_kernel']:
            configs.append(('rn', {'sr': False}))
        for cname, cfg in configs:
            mode = 'bf16_bf16_states_nearest' if (cname, kind['mode']) == ('rn', 'bf16_sr') else kind['mode']
            rows.append((short, kind['variant'], mode, cname, kind['elems'], kind['bytes'], lo, hi, cfg, ins))
    elif 'stats_kernel' in name:
        seen = set()
        for (lo, hi) in sorted(loops):
            # the lanes' packet loops: innermost, vector loads of grads (not the partials' .STRONG)
            w = [width(x[2]) for x in ins[lo:hi + 1]
                 if x[2].startswith('LDG') and width(x[2]) >= 64 and 'STRONG' not in x[2]]
            inner = not any(l != (lo, hi) and lo <= l[0] and l[1] <= hi for l in loops)
            if len(w) < 4 or not inner or (lo, hi) in seen:
                continue
            seen.add((lo, hi))
            txt = ' '.join(x[2] for x in ins[lo:hi + 1])
            g = 'f32' if max(w) == 128 else 'f16' if 'HADD2.F32' in txt else 'bf16'
            # one loop per scale kind (none, power of two, other), or one with a branch per element
            body = ins[lo:hi + 1]
            inv = invariant_regs(body)
            runtime = 'FCHK' in txt and any(x[2] == 'BRA' and x[1] and def_invariant(body, inv, i, x[1].lstrip('@!'))
                                            for i, x in enumerate(body))
            if runtime:
                kinds = (('plain', {}), ('ex', {'scale': True}), ('ex_div', {'scale': True}))
            elif 'FCHK' in txt:
                kinds = (('ex_div', {}),)
            elif 'FMUL' in txt:
                kinds = (('ex', {}),)
            else:
                kinds = (('plain', {}),)
            for cname, cfg in kinds:
                rows.append(('stats_kernel[%s grads]' % g, 'stats', g, cname, 32, 4 if g == 'f32' else 2, lo, hi, cfg, ins))

fields = ['kernel', 'variant', 'mode', 'config', 'elems_per_iter', 'bytes_per_elem', 'loop_static_instr',
          'path_instr', 'instr_per_elem', 'instr_per_byte', 'issue_pct_at_copy_bw'] + [c + '_per_elem' for c in CLASSES]
os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
with open(out_path, 'w', newline='') as fh:
    wr = csv.writer(fh)
    wr.writerow(fields)
    for (short, variant, mode, cname, elems, bpe, lo, hi, cfg, ins) in rows:
        static, npath, counts = analyse_loop(ins, lo, hi, cfg)
        ipe = npath / elems
        wr.writerow([short, variant, mode, cname, elems, bpe, static, npath, '%.2f' % ipe, '%.3f' % (ipe / bpe),
                     '%.1f' % (100.0 * ipe / budget_per_elem(bpe))] + ['%.2f' % (counts[c] / elems) for c in CLASSES])
print('sass_profile: %d rows (%d kernels) -> %s' % (len(rows), len(set(r[0] for r in rows)), out_path))
print('issue_pct_at_copy_bw: instructions per element / (%d SMs x 4 schedulers x %.2f GHz x 32 lanes / (%.0f GB/s / bytes per element))' % (sms, clock_ghz, bw_gbs))
if listed:
    print('bytes per element vs fopt_bench --list-bytes: %s' % ('OK' if not mismatches else 'MISMATCH: ' + '; '.join(mismatches)))
else:
    print('bytes per element: bench/modes.h rules (no fopt_bench to check against)')
EOF
