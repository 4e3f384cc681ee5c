/* Helpers shared by fopt_bench and fopt_cpu_bench; see bench_common.h. */
#define _POSIX_C_SOURCE 200809L
#include "bench_common.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", bench_program);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *x, int n)
{
    if (n <= 0)
        return NAN;
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

uint64_t bench_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float bench_rng_unit(uint64_t r) { return ((float)(r >> 40) + 0.5f) * (1.0f / 16777216.0f); }

void bench_cpu_model(char *out, size_t size, const char *fallback)
{
    snprintf(out, size, "%s", fallback);
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10)) {
            char *s = strchr(line, ':');
            if (s) {
                s++;
                while (isspace((unsigned char)*s))
                    s++;
                s[strcspn(s, "\n")] = 0;
                snprintf(out, size, "%s", s);
            }
            break;
        }
    }
    fclose(f);
}

double bench_max_rel_err(const float *a, const float *ref, size_t n)
{
    double maxdiff = 0.0, maxref = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)ref[i]), r = fabs((double)ref[i]);
        if (!(d <= maxdiff)) /* also catches NaN */
            maxdiff = isnan(d) ? INFINITY : d;
        if (r > maxref)
            maxref = r;
    }
    double rel = maxref > 0 ? maxdiff / maxref : maxdiff;
    return isinf(maxdiff) || isnan(rel) ? NAN : rel;
}

/* ---- optimizer variants ---- */

int bench_make_variants(bench_variant *v)
{
    int n = 0;
    fopt_adam_config a = fopt_adam_config_default();
    fopt_rmsprop_config r = fopt_rmsprop_config_default();

    v[n++] = (bench_variant){"adam", "adam", "plain", true, 2, a, r};
    v[n] = (bench_variant){"adamw", "adamw", "plain", true, 2, a, r};
    v[n].adam.decoupled_weight_decay = true;
    v[n++].adam.weight_decay = 1e-2;
    v[n] = (bench_variant){"amsgrad", "adam", "amsgrad", true, 3, a, r};
    v[n++].adam.amsgrad = true;
    v[n++] = (bench_variant){"rmsprop", "rmsprop", "plain", false, 1, a, r};
    v[n] = (bench_variant){"rmsprop_momentum", "rmsprop", "momentum", false, 2, a, r};
    v[n++].rms.momentum = 0.9;
    v[n] = (bench_variant){"rmsprop_centered", "rmsprop", "centered", false, 2, a, r};
    v[n++].rms.centered = true;
    v[n] = (bench_variant){"rmsprop_centered_momentum", "rmsprop", "centered_momentum", false, 3,
                           a, r};
    v[n].rms.centered = true;
    v[n++].rms.momentum = 0.9;
    return n;
}

int bench_bytes_per_elem(const bench_variant *v) { return 4 * (1 + 2 * (1 + v->nstate)); }

void bench_state_ptrs(const bench_variant *v, float *const st[3], size_t off, float *out[3])
{
    out[0] = st[0] + off;
    if (v->is_adam) {
        out[1] = st[1] + off;
        out[2] = v->adam.amsgrad ? st[2] + off : NULL;
    } else {
        int k = 1;
        out[1] = v->rms.momentum > 0 ? st[k++] + off : NULL;
        out[2] = v->rms.centered ? st[k++] + off : NULL;
    }
}

fopt_status bench_cpu_step(const bench_variant *v, bool ref, int64_t step, size_t off, size_t n,
                           float *p, const float *g, float *const st[3])
{
    float *s[3];
    bench_state_ptrs(v, st, off, s);
    if (v->is_adam)
        return (ref ? fopt_adam_step_ref : fopt_adam_step_cpu)(&v->adam, step, n, p + off, g + off,
                                                               s[0], s[1], s[2]);
    return (ref ? fopt_rmsprop_step_ref : fopt_rmsprop_step_cpu)(&v->rms, n, p + off, g + off,
                                                                 s[0], s[1], s[2]);
}

/* ---- CSV ---- */

FILE *bench_csv_open(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        bench_die("cannot write %s: %s", path, strerror(errno));
    fprintf(f, "optimizer,variant,impl,dtype,tensors,elements,median_us,bytes_per_elem,"
               "gb_per_s,pct_of_copy_bw,max_rel_err,device\n");
    fflush(f);
    return f;
}
