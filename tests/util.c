#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#if FOPT_TEST_KERNELS
#include "device.h"
#endif

test_rng test_rng_make(uint64_t seed)
{
    test_rng r = {seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull};
    if (r.s == 0)
        r.s = 1;
    return r;
}

uint64_t test_rng_next(test_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1Dull;
}

double test_rng_uniform(test_rng *r) { return (double)(test_rng_next(r) >> 11) * 0x1.0p-53; }

void test_fill_uniform(test_rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * test_rng_uniform(r));
}

void test_fill_magnitudes(test_rng *r, float *x, size_t n, double lo_exp, double hi_exp,
                          unsigned zero_every)
{
    for (size_t i = 0; i < n; i++) {
        if (zero_every && test_rng_next(r) % zero_every == 0) {
            x[i] = 0.0f;
            continue;
        }
        double e = lo_exp + (hi_exp - lo_exp) * test_rng_uniform(r);
        double sign = (test_rng_next(r) & 1) ? 1.0 : -1.0;
        x[i] = (float)(sign * pow(10.0, e));
    }
}

double test_max_rel_err(const float *a, const float *b, size_t n)
{
    double scale = 0.0, err = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) {
            if (isnan(a[i]) && isnan(b[i]))
                continue;
            return INFINITY;
        }
        if (fabs((double)b[i]) > scale)
            scale = fabs((double)b[i]);
    }
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) && isnan(b[i]))
            continue;
        if (a[i] == b[i]) /* also equal infinities */
            continue;
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > err)
            err = d;
    }
    return err / (scale > 1e-30 ? scale : 1e-30);
}

static int64_t ordered(float f)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i < 0 ? (int64_t)INT32_MIN - i : i;
}

uint32_t test_max_ulp(const float *a, const float *b, size_t n)
{
    uint64_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) {
            if (!(isnan(a[i]) && isnan(b[i])))
                return UINT32_MAX;
            continue;
        }
        int64_t d = ordered(a[i]) - ordered(b[i]);
        uint64_t ad = (uint64_t)(d < 0 ? -d : d);
        if (ad > worst)
            worst = ad;
    }
    return worst > UINT32_MAX ? UINT32_MAX : (uint32_t)worst;
}

float *test_alloc(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    cr_assert_not_null(p, "out of host memory for %zu floats", n);
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
    return p;
}

float *test_dup(const float *x, size_t n)
{
    float *p = test_alloc(n);
    memcpy(p, x, n * sizeof(float));
    return p;
}

void test_free_all(void *const *ptrs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ptrs[i]);
}

bool test_have_cuda_device(void)
{
#if FOPT_TEST_KERNELS
    int count = 0;
    return fopt_dev_count(&count) == cudaSuccess && count > 0;
#else
    return false; /* a build without CUDA has no device layer */
#endif
}

float test_special(test_rng *r, float usual)
{
    static const float k[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-40f, -1e-40f, 3e38f};
    uint64_t u = test_rng_next(r) % 40;
    return u < sizeof k / sizeof k[0] ? k[u] : usual;
}

bool test_special_config(int variant, fopt_adam_config *adam, fopt_rmsprop_config *rmsprop)
{
    if (variant < 2) {
        *adam = fopt_adam_config_default();
        adam->amsgrad = true;
        adam->maximize = variant == 1;
        adam->decoupled_weight_decay = variant == 1;
        adam->weight_decay = variant == 1 ? 0.1 : 0.0;
        return true;
    }
    *rmsprop = fopt_rmsprop_config_default();
    rmsprop->centered = true;
    rmsprop->momentum = variant == 3 ? 0.9 : 0.0;
    rmsprop->alpha = variant == 3 ? 0.2 : 0.99;
    return false;
}
