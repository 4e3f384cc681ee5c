#!/usr/bin/python3
"""Known-answer table of the functions every path shares, transcribed from docs/SEMANTICS.md.

    python3 scripts/kat_gen.py                 # writes tests/data/kat.txt
    python3 scripts/kat_gen.py --out FILE      # elsewhere (to compare with the committed table)

Standard library only. Everything below is written from the formulas in docs/SEMANTICS.md, not
from the C code (kernels/dtype.h, kernels/scalars.h, kernels/stats.h): rounding to a narrower
format is done on exact rationals (fractions.Fraction) with IEEE round-to-nearest-even, and the
bit formulas the page states for bf16 (nearest-even, stochastic, remainders) are cross-checked
against that rounding here. tests/test_kat.c checks every row against the C functions of the
reference, the fast CPU path (each instruction set) and the device code run on the host, so a
change to any of them that moves every path together still fails a row.

Why: the paths are compared with each other bit for bit, and statistically, but a change to a
function they all share (a hash constant, a rounding, the scalar derivation, the summation order)
moves all of them together and no such comparison sees it.

Table format (tests/data/kat.txt): one row per line, `kind field ... field`, fields in hexadecimal
without 0x (floats and doubles as their bit patterns), inputs first, then the expected outputs;
`#` starts a comment. The kinds (u16/u32/u64: integers of that width; f32, f64: bit patterns):

    mix64    z:u64                               -> mix64(z):u64
    h32      x:u32                               -> h32(x):u32
    sr       seed:u64 step:u64 tensor:u64 element:u64 x:f32
                                                 -> key:u64 r16:u32 bf16:u16
             (step as the 64-bit two's complement of the step number)
    bf16_sr  x:f32 r16:u32                       -> bf16:u16
    bf16_rne x:f32                               -> bf16:u16
    bf16_up  h:u16                               -> f32
    f16_rne  x:f32                               -> f16:u16
    f16_up   h:u16                               -> f32
    rem_enc  master:f32                          -> param:u16 remainder:u16
    rem_dec  param:u16 remainder:u16             -> master:f32
    powi     b:f64 t:u64                         -> b^t:f64
    adam     beta1 beta2 eps lr wd:f64 decoupled:u32 step:u64
                                                 -> lerp_w lerp_1mw:f32 lerp_from_end:u32
                                                    beta2 one_minus_beta2 eps weight_decay decay
                                                    neg_step_size bc2_sqrt:f32 l2:u32
             (weight_decay is s(wd) with L2 and 0 otherwise; decay s(1 - lr*wd) when decoupled
              and 1 otherwise: the element loops' convention for an unused term)
    rmsprop  alpha eps lr wd momentum:f64        -> alpha one_minus_alpha lerp_1mw:f32
                                                    lerp_from_end:u32 eps weight_decay momentum
                                                    neg_lr:f32 l2 use_momentum:u32
    clip     total:f64 max_grad_norm:f64         -> grad_norm:f32 coef:f32 found_inf:u32
    sqsum    seed:u32 scale:f32 pairs:u32 (count size)*pairs
                                                 -> sum:f64
             fp32 grads: `count` tensors of `size` elements for each pair, in order; element
             values from xorshift32 (x ^= x<<13; x ^= x>>17; x ^= x<<5) started at seed and
             stepped once per element across the whole list: bits = sign (bit 31 of x) |
             exponent (96 + ((x >> 23) & 63)) << 23 | significand (x & 0x7fffff), so magnitudes
             span 2^-31 .. 2^33. The sum of squares of grad / scale (scale 0: no scale) in the
             fixed order of docs/SEMANTICS.md, "Step options".

NaN outputs are those of the software conversions (sign | 0x7fc0 for bf16, sign | 0x7e00 for fp16,
docs/SEMANTICS.md); paths that convert with instructions may keep payloads, and the test compares
only NaN-ness there.
"""
import argparse
import math
import os
import random
import struct
from fractions import Fraction

M32 = (1 << 32) - 1
M64 = (1 << 64) - 1

# ---------------------------------------------------------------- IEEE formats on exact rationals


class Fmt:
    """A binary floating-point format: `ebits` exponent bits, `fbits` stored significand bits."""

    def __init__(self, ebits, fbits):
        self.ebits, self.fbits = ebits, fbits
        self.bias = (1 << (ebits - 1)) - 1
        self.emin = 1 - self.bias
        self.emax = self.bias
        self.inf = ((1 << ebits) - 1) << fbits
        self.sign = 1 << (ebits + fbits)


F16, BF16, F32, F64 = Fmt(5, 10), Fmt(8, 7), Fmt(8, 23), Fmt(11, 52)


def decode(fmt, bits):
    """The value of a bit pattern: a Fraction, or a float inf/nan."""
    neg = bool(bits & fmt.sign)
    e = (bits >> fmt.fbits) & ((1 << fmt.ebits) - 1)
    f = bits & ((1 << fmt.fbits) - 1)
    if e == (1 << fmt.ebits) - 1:
        return float("nan") if f else (-math.inf if neg else math.inf)
    if e == 0:
        v = Fraction(f, 1 << fmt.fbits) * Fraction(2) ** fmt.emin
    else:
        v = Fraction((1 << fmt.fbits) + f, 1 << fmt.fbits) * Fraction(2) ** (e - fmt.bias)
    return -v if neg else v


def is_nan(fmt, bits):
    return ((bits >> fmt.fbits) & ((1 << fmt.ebits) - 1)) == (1 << fmt.ebits) - 1 and bits & (
        (1 << fmt.fbits) - 1
    ) != 0


def encode_rne(fmt, v, neg_zero=False):
    """Round the exact value v (Fraction or +-inf) to fmt, to nearest, ties to even; overflow to
    inf, subnormals kept. Returns the bit pattern. neg_zero: the sign of a zero v."""
    if isinstance(v, float):
        assert math.isinf(v)
        return fmt.inf | (fmt.sign if v < 0 else 0)
    sign = fmt.sign if (v < 0 or (v == 0 and neg_zero)) else 0
    x = abs(v)
    if x == 0:
        return sign
    e = x.numerator.bit_length() - x.denominator.bit_length()  # 2^e <= x < 2^(e+2)
    while Fraction(2) ** e > x:
        e -= 1
    while Fraction(2) ** (e + 1) <= x:
        e += 1
    e = max(e, fmt.emin)
    quantum = Fraction(2) ** (e - fmt.fbits)
    n = x / quantum
    q = n.numerator // n.denominator
    rest = n - q
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and q % 2 == 1):
        q += 1
    if q == 1 << (fmt.fbits + 1):
        q >>= 1
        e += 1
    if e > fmt.emax:
        return sign | fmt.inf
    if q < 1 << fmt.fbits:  # subnormal (e == emin)
        return sign | q
    return sign | ((e + fmt.bias) << fmt.fbits) | (q - (1 << fmt.fbits))


def f64_bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def f64_of(bits):
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def s(x):
    """s(x) of docs/SEMANTICS.md: a double rounded to fp32 (bit pattern)."""
    if math.isnan(x):
        return 0x7FC00000 | (0x80000000 if math.copysign(1.0, x) < 0 else 0)
    if math.isinf(x):
        return encode_rne(F32, x)
    return encode_rne(F32, Fraction(x), neg_zero=math.copysign(1.0, x) < 0)


def f32_value(bits):
    v = decode(F32, bits)
    return v


def f32_to_double(bits):
    v = decode(F32, bits)
    return float(v) if not isinstance(v, float) else v


def f32_sub(a_bits, b_bits):
    """a - b in fp32 (exact difference rounded once), both finite."""
    return encode_rne(F32, decode(F32, a_bits) - decode(F32, b_bits))


# ---------------------------------------------------------------- conversions (SEMANTICS.md)


def bf16_rne(x):
    """Nearest-even: the page's bit formula; NaN -> sign | 0x7fc0."""
    if is_nan(F32, x):
        return ((x >> 16) & 0x8000) | 0x7FC0
    r = ((x + 0x7FFF + ((x >> 16) & 1)) & M32) >> 16
    # cross-check the formula against IEEE rounding of the exact value
    v = decode(F32, x)
    assert r == encode_rne(BF16, v, neg_zero=bool(x >> 31)), hex(x)
    return r


def bf16_up(h):
    return h << 16


def f16_rne(x):
    """IEEE nearest-even to binary16, overflow to inf, subnormals kept; NaN -> sign | 0x7e00."""
    if is_nan(F32, x):
        return ((x >> 16) & 0x8000) | 0x7E00
    return encode_rne(F16, decode(F32, x), neg_zero=bool(x >> 31))


def f16_up(h):
    """Exact: the binary16 value as fp32 (NaN: payload kept, as the page's upcast is exact)."""
    if is_nan(F16, h):
        return ((h & 0x8000) << 16) | 0x7F800000 | ((h & 0x3FF) << 13)
    return encode_rne(F32, decode(F16, h), neg_zero=bool(h & 0x8000))


def bf16_sr(x, r16):
    """Stochastic: (bits + r16) >> 16 for finite x; inf and NaN as nearest-even."""
    if (x & 0x7F800000) == 0x7F800000:
        return bf16_rne(x)
    assert 0 <= r16 <= 0xFFFF
    return ((x + r16) & M32) >> 16


def shift_mul(x, mask, s1, m1, s2, m2, s3):
    """x ^= x >> s1; x *= m1; x ^= x >> s2; x *= m2; x ^= x >> s3, in the width of mask."""
    x &= mask
    x ^= x >> s1
    x = (x * m1) & mask
    x ^= x >> s2
    x = (x * m2) & mask
    x ^= x >> s3
    return x


def mix64(z):
    return shift_mul(z, M64, 30, 0xBF58476D1CE4E5B9, 27, 0x94D049BB133111EB, 31)


def h32(x):
    return shift_mul(x, M32, 16, 0x7FEB352D, 15, 0x846CA68B, 16)


def sr_key(seed, step, tensor):
    return mix64((mix64(seed ^ mix64(step)) + tensor) & M64)


def sr_r16(key, element):
    high = h32((element >> 32) ^ (key >> 32))
    return h32((element & M32) ^ (key & M32) ^ high) >> 16


def rem_enc(x):
    """Ties away from zero: param = (bits + 0x8000) >> 16, remainder = bits - (param << 16) as a
    signed 16-bit value; NaN -> (sign | 0x7fc0, 0)."""
    if is_nan(F32, x):
        return ((x >> 16) & 0x8000) | 0x7FC0, 0
    p = ((x + 0x8000) & M32) >> 16
    r = (x - (p << 16)) & M32
    signed = r - (1 << 32) if r >> 31 else r
    assert -0x8000 <= signed <= 0x7FFF, (hex(x), signed)
    return p, r & 0xFFFF
    # (the round trip is checked by the caller)


def rem_dec(p, r):
    signed = r - 0x10000 if r & 0x8000 else r
    return ((p << 16) + signed) & M32


# ---------------------------------------------------------------- scalars (SEMANTICS.md)


def powi(b, t):
    """beta^t by repeated squaring: r = 1; for each bit of t from the lowest: r *= b if the bit is
    set, then b *= b (double products)."""
    r = 1.0
    while t > 0:
        if t & 1:
            r = r * b
        b = b * b
        t >>= 1
    return r


def adam(beta1, beta2, eps, lr, wd, decoupled, step):
    bc1 = 1.0 - powi(beta1, step)
    bc2 = 1.0 - powi(beta2, step)
    lerp_w = s(1.0 - beta1)
    lerp_1mw = f32_sub(0x3F800000, lerp_w)
    from_end = int(decode(F32, lerp_w) >= Fraction(1, 2))
    l2 = int(not decoupled and wd != 0.0)
    return [
        lerp_w, lerp_1mw, from_end, s(beta2), s(1.0 - beta2), s(eps),
        s(wd) if l2 else 0, s(1.0 - lr * wd) if decoupled else 0x3F800000,
        s(-lr / bc1), s(math.sqrt(bc2)), l2,
    ]


def rmsprop(alpha, eps, lr, wd, momentum):
    oma = s(1.0 - alpha)
    return [
        s(alpha), oma, f32_sub(0x3F800000, oma), int(decode(F32, oma) >= Fraction(1, 2)), s(eps),
        s(wd), s(momentum), s(-lr), int(wd != 0.0), int(momentum > 0.0),
    ]


def clip(total, max_norm):
    norm = math.sqrt(total) if not total < 0 else float("nan")
    bad = int(not (total <= 1.7976931348623157e308))
    if not max_norm > 0.0:
        coef = 0x3F800000
    else:
        c = max_norm / (norm + 1e-6)
        coef = s(c) if (c < 1.0 or c != c) else 0x3F800000
    return [s(norm), coef, bad]


# ---------------------------------------------------------------- fixed-order sum of squares

CHUNK, LANES = 16384, 1024


def tree(lanes):
    w = 1
    while w < LANES:
        for l in range(0, LANES, 2 * w):
            lanes[l] = lanes[l] + lanes[l + w]
        w *= 2
    return lanes[0]


def ordered_sum(values):
    """Lane i % 1024 adds values[i] in order from 0.0, then the pairwise tree."""
    lanes = [0.0] * LANES
    for i, v in enumerate(values):
        lanes[i % LANES] = lanes[i % LANES] + v
    return tree(lanes)


def xorshift32_stream(seed, n):
    x = seed
    out = []
    for _ in range(n):
        x ^= (x << 13) & M32
        x ^= x >> 17
        x ^= (x << 5) & M32
        out.append((x & 0x80000000) | ((96 + ((x >> 23) & 63)) << 23) | (x & 0x7FFFFF))
    return out


def sqsum(seed, scale_bits, pairs):
    sizes = [size for count, size in pairs for _ in range(count)]
    grads = xorshift32_stream(seed, sum(sizes))
    scale = decode(F32, scale_bits) if scale_bits else None
    partials, at = [], 0
    for n in sizes:
        for c in range(0, n, CHUNK):
            sq = []
            for g in grads[at + c: at + min(n, c + CHUNK)]:
                u = decode(F32, g)
                if scale is not None:
                    u = decode(F32, encode_rne(F32, u / scale))
                d = float(u)  # exact: an fp32 value
                sq.append(d * d)  # exact in double
            partials.append(ordered_sum(sq))
        at += n
    return ordered_sum(partials) if partials else 0.0


# ---------------------------------------------------------------- the rows


def f32(x):
    """fp32 bit pattern of a Python float that is exactly an fp32 value (or inf/nan)."""
    b = s(x)
    assert math.isnan(x) or f32_to_double(b) == x or math.isinf(x), x
    return b


F32_SPECIALS = [
    (0x00000000, "+0"), (0x80000000, "-0"), (0x00000001, "smallest denormal"),
    (0x80000001, "-smallest denormal"), (0x007FFFFF, "largest denormal"),
    (0x00800000, "smallest normal"), (0x7F7FFFFF, "max"), (0xFF7FFFFF, "-max"),
    (0x7F800000, "inf"), (0xFF800000, "-inf"), (0x7FC00000, "quiet NaN"),
    (0xFFC00000, "-quiet NaN"), (0x7F800001, "signalling NaN"), (0xFFFFFFFF, "NaN all ones"),
    (0x7FBFFFFF, "signalling NaN, max payload"), (0x3F800000, "1"), (0xBF800000, "-1"),
]


def bf16_rne_rows():
    rows = list(F32_SPECIALS)
    for base in (0x3F800000, 0x3F810000, 0x00010000, 0x80010000, 0x7F7E0000, 0x7F7F0000):
        even = (base >> 16) & 1 == 0
        for low, what in ((0x7FFF, "below tie"), (0x8000, "tie"), (0x8001, "above tie"), (0x0001, "just above")):
            rows.append((base | low, "%s, kept bit %s" % (what, "even" if even else "odd")))
    rows += [(0x3FC00000, "1.5"), (0x40490FDB, "pi"), (0x3DCCCCCD, "0.1"), (0x7F7F8000, "max bf16 + half ulp: inf"),
             (0x0000FFFF, "denormal rounds up to smallest bf16 denormal"), (0x00008000, "tie at 0: even 0"),
             (0x80008000, "-tie at 0")]
    return [("bf16_rne", [x], [bf16_rne(x)], what) for x, what in rows]


def bf16_up_rows():
    hs = [0x0000, 0x8000, 0x0001, 0x007F, 0x0080, 0x3F80, 0xBF80, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80, 0x7FC0,
          0xFFC0, 0x7F81, 0x4049]
    return [("bf16_up", [h], [bf16_up(h)], None) for h in hs]


def f16_rne_rows():
    rows = list(F32_SPECIALS)
    rows += [
        (f32(65504.0), "max half"), (f32(65519.0), "below max + half ulp"), (0x477FEFFF, "just below 65520"),
        (f32(65520.0), "max + half ulp: tie to even = inf"), (f32(-65520.0), "-65520: -inf"),
        (f32(65536.0), "2^16: inf"), (f32(1e10), "large: inf"),
        (f32(2.0 ** -14), "smallest normal half"), (f32(2.0 ** -24), "smallest subnormal half"),
        (f32(2.0 ** -25), "2^-25: tie to even 0"), (0x33000001, "just above 2^-25: 2^-24"),
        (f32(-(2.0 ** -25)), "-2^-25: -0"), (f32(3 * 2.0 ** -25), "1.5 * 2^-24: tie to even 2^-23"),
        (f32(5 * 2.0 ** -25), "2.5 * 2^-24: tie to even 2^-23"),
        (f32(2.0 ** -14 - 2.0 ** -25), "rounds up into the normals"),
        (f32(2.0 ** -15), "subnormal half"), (f32(1023 * 2.0 ** -24), "largest subnormal half"),
        (f32(1.0 + 2.0 ** -11), "tie, even kept"), (f32(1.0 + 3 * 2.0 ** -11), "tie, odd kept: up"),
        (f32(1.0 + 2.0 ** -11 + 2.0 ** -23), "just above tie"), (f32(1.0 + 2.0 ** -11 - 2.0 ** -23), "just below tie"),
        (0x3DCCCCCD, "0.1"), (0x40490FDB, "pi"), (f32(-2.5), "-2.5"), (s(1.0 / 3.0), "1/3 rounded to fp32"),
        (f32(2.0 ** -26), "below half the smallest: 0"), (s(1.0e-8), "1e-8: 0"),
    ]
    return [("f16_rne", [x], [f16_rne(x)], what) for x, what in rows]


def f16_up_rows():
    hs = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7E00,
          0xFE00, 0x7C01, 0x7FFF, 0x3555, 0x0200]
    return [("f16_up", [h], [f16_up(h)], None) for h in hs]


def bf16_sr_rows():
    rows = []
    for x, what in F32_SPECIALS + [(0x3F808000, "half"), (0x3F80FFFF, "low half all ones"), (0x3F810001, "odd kept")]:
        for r in (0x0000, 0x0001, 0x7FFF, 0x8000, 0xFFFF):
            if what.startswith(("+0", "-0", "1", "-1")) and r not in (0, 0xFFFF):
                continue
            rows.append(("bf16_sr", [x, r], [bf16_sr(x, r)], what))
    return rows


def hash_rows():
    rows = []
    for z in (0, 1, 2, 0x9E3779B97F4A7C15, M64, 1 << 63, 0x0123456789ABCDEF):
        rows.append(("mix64", [z], [mix64(z)], None))
    for x in (0, 1, 2, 0x7FFFFFFF, 0x80000000, M32, 0xDEADBEEF, 0x12345678):
        rows.append(("h32", [x], [h32(x)], None))
    return rows


def sr_rows():
    rows = []
    seeds = [0, 1, M64, 0x0123456789ABCDEF]
    steps = [1, 2, 1000, 1 << 31, (1 << 62) + 7, (1 << 63) - 1]
    tensors = [0, 1, 63, M32]
    elements = [0, 1, 7, 8, 15, 16, 17, M32 - 1, M32, 1 << 32, (1 << 32) + 1, (1 << 33) + 12345, (1 << 40) + 3,
                M64]
    xs = [0x3F808001, 0x3F80FFFF, 0x3F800000, 0x7F7FFFFF, 0x80000001, 0x7F800000, 0x7FC00000, 0xC2F6E979]
    k = 0
    for si, seed in enumerate(seeds):
        for ti, step in enumerate(steps):
            for tj, tensor in enumerate(tensors):
                if (si + ti + tj) % 3:  # a spread of combinations, not all of them
                    continue
                for e in elements[(si + tj) % 3::3]:
                    x = xs[k % len(xs)]
                    k += 1
                    key = sr_key(seed, step, tensor)
                    r = sr_r16(key, e)
                    rows.append(("sr", [seed, step, tensor, e, x], [key, r, bf16_sr(x, r)], None))
    return rows


def rem_rows():
    rows = []
    xs = [x for x, _ in F32_SPECIALS] + [
        0x3F808000, 0x3F818000, 0xBF808000, 0x3F807FFF, 0x3F817FFF, 0x3F808001, 0xBF807FFF, 0x3DCCCCCD, 0x00008000,
        0x80008000, 0x7F7F7FFF, 0x7F7F8000, 0xFF7F8000, 0x40490FDB,
    ]
    for x in xs:
        p, r = rem_enc(x)
        if not is_nan(F32, x):
            assert rem_dec(p, r) == x, hex(x)  # every non-NaN pattern round-trips
            # the param is a nearest bf16 (ties away from zero)
            if (x & 0x7F800000) != 0x7F800000 and (p & 0x7F80) != 0x7F80:
                d = abs(decode(F32, x) - decode(BF16, p))
                for q in ((p + 1) & 0xFFFF, (p - 1) & 0xFFFF):
                    if not is_nan(BF16, q) and (q & 0x7F80) != 0x7F80:
                        assert d <= abs(decode(F32, x) - decode(BF16, q)), hex(x)
        rows.append(("rem_enc", [x], [p, r], None))
    for p, r in ((0x3F80, 0x0000), (0x3F80, 0x7FFF), (0x3F80, 0x8000), (0x3F81, 0xFFFF), (0x0000, 0x0001),
                 (0x8000, 0x0000), (0x7F80, 0xFFFF), (0x7F80, 0x0000), (0xBF80, 0x8000), (0x4049, 0x0FDB)):
        rows.append(("rem_dec", [p, r], [rem_dec(p, r)], None))
    return rows


def powi_rows():
    rows = []
    for b in (0.9, 0.999, 0.5, 0.99999, 1.0 - 2.0 ** -52, 0.0, 1.0):
        for t in (0, 1, 2, 3, 10, 1000, 123457, (1 << 40) + 1, (1 << 63) - 1):
            if b in (0.0, 1.0) and t not in (0, 1, 1000):
                continue
            rows.append(("powi", [f64_bits(b), t], [f64_bits(powi(b, t))], None))
    return rows


def adam_rows():
    rows = []
    cases = [
        # beta1, beta2, eps, lr, wd, decoupled
        (0.9, 0.999, 1e-8, 1e-3, 0.0, 0), (0.9, 0.999, 1e-8, 1e-3, 1e-2, 1), (0.9, 0.999, 1e-8, 3e-4, 0.1, 0),
        (0.5, 0.5, 0.1, 0.3, 0.0, 1), (0.0, 0.0, 1e-3, 1.0, 0.0, 0), (0.99, 0.999999, 1e-12, 0.05, 0.05, 0),
        (0.3, 0.75, 1e-8, 2.5e-3, 0.5, 1), (0.95, 0.98, 1e-6, 6e-4, 0.0, 1), (0.8, 0.9999, 1e-7, 1e-4, 1e-4, 0),
        (0.49999999, 0.999, 1e-8, 1e-3, 0.0, 0),
    ]
    steps = [1, 2, 3, 10, 1000, 65536, (1 << 31) + 1, (1 << 40) + 3, (1 << 63) - 1]
    picked = []
    for ci, c in enumerate(cases):
        picked += [(c, t) for t in steps[ci % 3::3] + [1]]
    # where the one rounding matters: 1 - (1 - beta1) in float differs from s(beta1) (beta1 0.1,
    # 0.35), s(1 - lr*wd) from 1 - s(lr*wd) in float (lr*wd 0.09, 0.09 again from other factors)
    picked += [((0.1, 0.999, 1e-8, 1e-3, 0.0, 0), 5), ((0.35, 0.9, 1e-8, 1e-3, 0.0, 0), 7),
               ((0.9, 0.999, 1e-8, 0.1, 0.9, 1), 3), ((0.9, 0.999, 1e-8, 0.3, 0.3, 1), 4)]
    rng = random.Random(20261208)  # random() of a seeded Random is the same on every Python 3
    for i in range(30):
        c = (rng.random(), 1.0 - 10.0 ** (-6 * rng.random()), 10.0 ** (-12 + 10 * rng.random()),
             10.0 ** (-5 + 5 * rng.random()), 0.0 if i % 4 == 0 else rng.random(), i % 2)
        picked.append((c, 1 + int(10.0 ** (7 * rng.random())) if i % 5 else rng.getrandbits(63)))
    for (b1, b2, eps, lr, wd, dec), t in picked:
        rows.append(("adam", [f64_bits(b1), f64_bits(b2), f64_bits(eps), f64_bits(lr), f64_bits(wd), dec, t],
                     adam(b1, b2, eps, lr, wd, dec, t), None))
    return rows


def rmsprop_rows():
    rows = []
    rng = random.Random(777)
    for alpha, eps, lr, wd, mom in (
        (0.99, 1e-8, 1e-2, 0.0, 0.0), (0.99, 1e-8, 1e-2, 1e-2, 0.9), (0.9, 1e-7, 1e-3, 0.0, 0.5),
        (0.5, 1e-3, 0.3, 0.1, 0.0), (0.0, 1e-8, 1.0, 0.0, 0.99), (1.0, 1e-8, 1e-3, 1e-4, 0.0),
        (0.2, 1e-12, 5e-5, 3e-3, 0.1), (0.75, 0.1, 2.5e-4, 0.0, 0.0), (0.999999, 1e-10, 1e-6, 1e-5, 0.95),
        (0.5000000001, 1e-8, 1e-2, 0.0, 0.0),
    ) + tuple((rng.random(), 10.0 ** (-12 + 10 * rng.random()), 10.0 ** (-5 + 5 * rng.random()),
               0.0 if i % 3 == 0 else rng.random(), 0.0 if i % 4 == 0 else rng.random()) for i in range(15)):
        rows.append(("rmsprop", [f64_bits(v) for v in (alpha, eps, lr, wd, mom)], rmsprop(alpha, eps, lr, wd, mom),
                     None))
    return rows


def clip_rows():
    rows = []
    for total in (0.0, 1e-12, 4e-12, 0.25, 1.0, 2.0, 1e4, 123456.789, 1e30, 1.7976931348623157e308, math.inf,
                  math.nan):
        for m in (0.0, 1e-6, 1.0, 5.0):
            if total in (0.25, 1e30, 1.7976931348623157e308) and m in (1e-6,):
                continue
            rows.append(("clip", [f64_bits(total), f64_bits(m)], clip(total, m), None))
    return rows


def sqsum_rows():
    cases = [
        (1, 0, [(1, 1)]), (2, 0, [(1, 3)]), (3, 0, [(1, 1024)]), (4, 0, [(1, 1025)]), (5, 0, [(1, CHUNK)]),
        (6, 0, [(1, CHUNK + 1)]), (7, f32(1024.0), [(1, 3), (1, CHUNK + 5)]),
        (8, f32(3.0), [(1, 5), (1, 2 * CHUNK + 7), (1, 1)]),
        (9, 0, [(1, 1), (1, 3), (1, 8 * CHUNK + 5), (1, 300001)]),
        (10, 0, [(1100, 3)]),  # more chunk partials than lanes
        (0x9E3779B9, f32(65536.0), [(3, 40000), (1030, 1)]),
    ]
    rows = []
    for seed, scale, pairs in cases:
        fields = [seed, scale, len(pairs)] + [v for p in pairs for v in p]
        rows.append(("sqsum", fields, [f64_bits(sqsum(seed, scale, pairs))], None))
    return rows


WIDTH = {"u16": 4, "u32": 8, "u64": 16}


def fmt_field(v):
    return "%x" % v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "kat.txt"))
    args = ap.parse_args()
    groups = [hash_rows(), sr_rows(), bf16_sr_rows(), bf16_rne_rows(), bf16_up_rows(), f16_rne_rows(),
              f16_up_rows(), rem_rows(), powi_rows(), adam_rows(), rmsprop_rows(), clip_rows(), sqsum_rows()]
    lines = [
        "# Known answers of the functions every path shares (docs/SEMANTICS.md).",
        "# Generated by scripts/kat_gen.py (its docstring describes the kinds and fields); do not edit.",
        "# Checked by tests/test_kat.c (suites kat, gpu_stats).",
    ]
    total = 0
    for g in groups:
        lines.append("")
        for kind, ins, outs, what in g:
            line = " ".join([kind] + [fmt_field(v) for v in ins] + [":"] + [fmt_field(v) for v in outs])
            if what:
                line += "  # " + what
            lines.append(line)
            total += 1
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("%s: %d rows" % (args.out, total))


if __name__ == "__main__":
    main()
