/* fopt_convert(): the public host conversion between storage types, over the fast path's
 * converters (src/cpu/cpu_convert.c), so that C callers fill fp16/bf16 buffers and fp32 masters
 * exactly as the library reads and writes them. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cpu_internal.h"
#include "internal.h"

enum { CONVERT_BLOCK = 1024 }; /* fp32 staging of a 16-bit to 16-bit conversion, per range */

typedef struct convert_ctx {
    void *dst;
    const void *src;
    fopt_dtype dst_dtype, src_dtype;
    const fopt_cpu_convert *cv;
} convert_ctx;

/* fp16/bf16 -> fp32 (exact) */
static void up(const convert_ctx *c, const uint16_t *s, float *d, size_t n)
{
    (c->src_dtype == FOPT_FLOAT16 ? c->cv->up_f16 : c->cv->up_bf16)(s, d, n);
}

/* fp32 -> fp16/bf16, nearest-even */
static void down(const convert_ctx *c, const float *s, uint16_t *d, size_t n)
{
    (c->dst_dtype == FOPT_FLOAT16 ? c->cv->down_f16 : c->cv->down_bf16)(s, d, n);
}

static void convert_range(void *ctx, size_t b, size_t e)
{
    const convert_ctx *c = ctx;
    if (c->src_dtype == FOPT_FLOAT32) {
        down(c, (const float *)c->src + b, (uint16_t *)c->dst + b, e - b);
    } else if (c->dst_dtype == FOPT_FLOAT32) {
        up(c, (const uint16_t *)c->src + b, (float *)c->dst + b, e - b);
    } else { /* fp16 <-> bf16 through fp32: the upcast is exact, so one rounding */
        float tmp[CONVERT_BLOCK];
        for (size_t i = b; i < e; i += CONVERT_BLOCK) {
            size_t m = e - i < CONVERT_BLOCK ? e - i : CONVERT_BLOCK;
            up(c, (const uint16_t *)c->src + i, tmp, m);
            down(c, tmp, (uint16_t *)c->dst + i, m);
        }
    }
}

static fopt_status check_dtype(fopt_dtype t, const char *name)
{
    if (t != FOPT_FLOAT32 && t != FOPT_FLOAT16 && t != FOPT_BFLOAT16)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "fopt_convert: %s: unknown dtype %d", name, (int)t);
    return FOPT_SUCCESS;
}

static fopt_status check_buffer(const void *p, fopt_dtype t, size_t n, const char *name)
{
    char what[32];
    snprintf(what, sizeof what, "fopt_convert: %s", name);
    if (p == NULL)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "%s is NULL", what);
    fopt_status st = fopt_pointer_aligned(p, fopt_dtype_bytes(t), what);
    if (st == FOPT_SUCCESS && !fopt_buffer_fits(p, n, fopt_dtype_bytes(t)))
        st = fopt_fail(FOPT_ERROR_INVALID_VALUE,
                       "%s: %zu elements of %zu bytes do not fit the address space (a buffer holds at "
                       "most 2^57 bytes)", what, n, fopt_dtype_bytes(t));
    return st;
}

fopt_status fopt_convert(void *dst, fopt_dtype dst_dtype, const void *src, fopt_dtype src_dtype, size_t n)
{
    fopt_status st;
    if ((st = check_dtype(dst_dtype, "dst_dtype")) != FOPT_SUCCESS ||
        (st = check_dtype(src_dtype, "src_dtype")) != FOPT_SUCCESS)
        return st;
    if (n == 0)
        return FOPT_SUCCESS;
    if ((st = check_buffer(dst, dst_dtype, n, "dst")) != FOPT_SUCCESS ||
        (st = check_buffer(src, src_dtype, n, "src")) != FOPT_SUCCESS)
        return st;
    uintptr_t d0 = (uintptr_t)dst, d1 = d0 + n * fopt_dtype_bytes(dst_dtype);
    uintptr_t s0 = (uintptr_t)src, s1 = s0 + n * fopt_dtype_bytes(src_dtype);
    if (dst_dtype == src_dtype) { /* a copy; in place is a no-op */
        if (dst != src)
            memmove(dst, src, n * fopt_dtype_bytes(dst_dtype));
        return FOPT_SUCCESS;
    }
    if (d0 < s1 && s0 < d1)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE,
                         "fopt_convert: dst and src overlap (a conversion between types is not in place)");
    convert_ctx c = {dst, src, dst_dtype, src_dtype, fopt_cpu_converter(fopt_cpu_isa_current())};
    fopt_cpu_parallel(n, dst, convert_range, &c);
    return FOPT_SUCCESS;
}
