/* fopt_convert(): every pair of storage types, on every instruction set and thread count, against
 * the independent conversion oracles of tests/mixed.c (not kernels/dtype.h), at many sizes and
 * odd offsets; and its bad-input rules (a clear status, nothing written). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fusedopt.h"
#include "mixed.h"
#include "util.h"

static const fopt_dtype types[] = {FOPT_FLOAT32, FOPT_FLOAT16, FOPT_BFLOAT16};
static const size_t sizes[] = {1, 3, 4, 5, 17, 4097, 100003};

static size_t tsize(fopt_dtype t) { return t == FOPT_FLOAT32 ? 4 : 2; }

/* Random bit patterns of the source type: about one in five is a special value or a boundary. */
static void fill_source(test_rng *r, void *src, fopt_dtype t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (t == FOPT_FLOAT32) {
            float v = test_rng_next(r) % 2 ? mx_float((uint32_t)test_rng_next(r))
                                          : (float)((test_rng_uniform(r) - 0.5) * 1e5);
            ((float *)src)[i] = test_special(r, v);
        } else {
            ((uint16_t *)src)[i] = (uint16_t)test_rng_next(r);
        }
    }
}

/* The oracle's result for element i, as the destination type's bit pattern (fp32 as 32 bits). */
static uint32_t oracle(const void *src, fopt_dtype st, fopt_dtype dt, size_t i)
{
    float x;
    if (st == FOPT_FLOAT32)
        x = ((const float *)src)[i];
    else if (st == FOPT_FLOAT16)
        x = mx_oracle_f16_to_f32(((const uint16_t *)src)[i]);
    else
        x = mx_float((uint32_t)((const uint16_t *)src)[i] << 16);
    if (dt == st)
        return st == FOPT_FLOAT32 ? mx_bits(x) : ((const uint16_t *)src)[i];
    if (dt == FOPT_FLOAT32)
        return mx_bits(x);
    return dt == FOPT_FLOAT16 ? mx_oracle_f16(x) : mx_oracle_bf16(x);
}

static bool is_nan_bits(uint32_t v, fopt_dtype t)
{
    return t == FOPT_FLOAT32 ? isnan(mx_float(v)) : mx_is_nan16((uint16_t)v, t);
}

static void check_pair(fopt_dtype st, fopt_dtype dt, size_t n, size_t offset, const char *isa)
{
    test_rng r = test_rng_make(1000 + 7 * n + offset + 31 * (size_t)st + 101 * (size_t)dt);
    char *sbuf = malloc((n + offset) * 4 + 16), *dbuf = malloc((n + offset) * 4 + 16);
    cr_assert(sbuf && dbuf);
    void *src = sbuf + offset * tsize(st), *dst = dbuf + offset * tsize(dt);
    fill_source(&r, src, st, n);
    cr_assert_eq(fopt_convert(dst, dt, src, st, n), FOPT_SUCCESS, "%s", fopt_last_error());
    for (size_t i = 0; i < n; i++) {
        uint32_t want = oracle(src, st, dt, i);
        uint32_t got = dt == FOPT_FLOAT32 ? mx_bits(((float *)dst)[i]) : ((uint16_t *)dst)[i];
        if (got != want && !(is_nan_bits(got, dt) && is_nan_bits(want, dt)))
            cr_assert_fail("%s: %d -> %d, n %zu offset %zu, element %zu: got 0x%x, want 0x%x", isa, (int)st,
                           (int)dt, n, offset, i, got, want);
    }
    free(sbuf);
    free(dbuf);
}

Test(convert, every_pair_of_types_matches_the_oracles_at_every_size_offset_isa_and_thread_count)
{
    for (int isa = 0; isa < mx_isa_count(); isa++)
        for (int threads = 1; threads <= 2; threads++) {
            mx_cpu_use(isa, threads);
            for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
                for (size_t off = 0; off < 4; off += 3)
                    for (int a = 0; a < 3; a++)
                        for (int b = 0; b < 3; b++)
                            check_pair(types[a], types[b], sizes[s], off, mx_isa_name(isa));
        }
    mx_cpu_reset();
}

Test(convert, fp16_to_bf16_rounds_once_from_the_exact_value)
{
    /* fp16 0x3c01 = 1 + 2^-10 is exact in fp32; bf16 keeps 7 fraction bits: 1.0. 0x3c03 (1 + 3*2^-10)
     * lies below the bf16 midpoint 1 + 2^-8: also 1.0. 0x3c04 (1 + 2^-8) is the tie: to even, 1.0;
     * 0x3c0c (1 + 3*2^-8) is the tie above 0x3f81: to even, 0x3f82. */
    const uint16_t h[] = {0x3c01, 0x3c03, 0x3c04, 0x3c0c, 0x7c00, 0xfc00};
    const uint16_t want[] = {0x3f80, 0x3f80, 0x3f80, 0x3f82, 0x7f80, 0xff80};
    uint16_t out[6];
    cr_assert_eq(fopt_convert(out, FOPT_BFLOAT16, h, FOPT_FLOAT16, 6), FOPT_SUCCESS);
    for (int i = 0; i < 6; i++)
        cr_expect_eq(out[i], want[i], "fp16 0x%04x -> bf16 0x%04x, want 0x%04x", h[i], out[i], want[i]);
}

Test(convert, same_type_is_a_copy_and_in_place_is_allowed)
{
    float a[5] = {1, -2, 3.5f, NAN, -0.0f}, b[5];
    cr_assert_eq(fopt_convert(b, FOPT_FLOAT32, a, FOPT_FLOAT32, 5), FOPT_SUCCESS);
    cr_assert_eq(memcmp(a, b, sizeof a), 0);
    cr_assert_eq(fopt_convert(a, FOPT_FLOAT32, a, FOPT_FLOAT32, 5), FOPT_SUCCESS);
    cr_assert_eq(memcmp(a, b, sizeof a), 0);
    cr_assert_eq(fopt_convert(NULL, FOPT_FLOAT16, NULL, FOPT_FLOAT32, 0), FOPT_SUCCESS, "n == 0 touches nothing");
}

/* A failing call returns INVALID_VALUE, names the cause, and leaves dst as it was. */
static void expect_refused(void *dst, fopt_dtype dt, const void *src, fopt_dtype st, size_t n, const char *cause)
{
    unsigned char before[64];
    if (dst)
        memcpy(before, dst, sizeof before);
    cr_assert_eq(fopt_convert(dst, dt, src, st, n), FOPT_ERROR_INVALID_VALUE, "expected a refusal: %s", cause);
    cr_assert(strstr(fopt_last_error(), cause) != NULL, "message '%s' should name '%s'", fopt_last_error(), cause);
    if (dst)
        cr_assert_eq(memcmp(before, dst, sizeof before), 0, "dst changed by a refused call (%s)", cause);
}

Test(convert, bad_input_is_refused_with_its_cause_and_writes_nothing)
{
    _Alignas(16) unsigned char buf[128], src[128];
    memset(buf, 0xab, sizeof buf);
    memset(src, 0x3c, sizeof src);
    expect_refused(buf, (fopt_dtype)7, src, FOPT_FLOAT32, 4, "dst_dtype: unknown dtype 7");
    expect_refused(buf, FOPT_FLOAT16, src, (fopt_dtype)-1, 4, "src_dtype: unknown dtype -1");
    expect_refused(NULL, FOPT_FLOAT16, src, FOPT_FLOAT32, 4, "dst is NULL");
    expect_refused(buf, FOPT_FLOAT16, NULL, FOPT_FLOAT32, 4, "src is NULL");
    expect_refused(buf + 1, FOPT_FLOAT16, src, FOPT_FLOAT32, 4, "dst");
    expect_refused(buf, FOPT_FLOAT16, src + 2, FOPT_FLOAT32, 4, "not aligned");
    expect_refused(buf, FOPT_FLOAT32, src, FOPT_BFLOAT16, SIZE_MAX / 2, "address space");
    /* bf16 <- fp32 in place: 8 bytes of fp32 and 4 of bf16 share their first bytes */
    expect_refused(buf, FOPT_BFLOAT16, buf, FOPT_FLOAT32, 2, "overlap");
    expect_refused(buf + 4, FOPT_FLOAT32, buf, FOPT_BFLOAT16, 4, "overlap");
}
