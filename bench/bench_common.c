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

#include "modes.h" /* bench_modes_parse */

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

const fopt_variant *bench_variant_find(const char *bench_name)
{
    for (size_t i = 0; i < fopt_variant_count; i++)
        if (fopt_variants[i].bench_name && !strcmp(fopt_variants[i].bench_name, bench_name))
            return &fopt_variants[i];
    return NULL;
}

const char *bench_variant_names(void)
{
    static char names[256];
    if (!names[0]) {
        size_t len = 0;
        for (size_t i = 0; i < fopt_variant_count && len < sizeof names; i++)
            if (fopt_variants[i].bench_name) {
                int w = snprintf(names + len, sizeof names - len, "%s%s", len ? "," : "",
                                 fopt_variants[i].bench_name);
                len += w > 0 ? (size_t)w : 0;
            }
    }
    return names;
}

void bench_list_select(const char *list, bool *sel, size_t count, const char *(*name_of)(size_t i),
                       const char *option, const char *kind)
{
    bool all = !strcmp(list, "all");
    for (size_t i = 0; i < count; i++)
        sel[i] = all && name_of(i) != NULL;
    if (all)
        return;
    char *copy = strdup(list), *save = NULL;
    if (!copy)
        bench_die("out of host memory");
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t i = 0;
        while (i < count && !(name_of(i) && !strcmp(name_of(i), tok)))
            i++;
        if (i == count) {
            char choices[512];
            size_t len = 0;
            for (size_t k = 0; k < count && len < sizeof choices; k++)
                if (name_of(k)) {
                    int w = snprintf(choices + len, sizeof choices - len, "%s, ", name_of(k));
                    len += w > 0 ? (size_t)w : 0;
                }
            bench_die("%s: unknown %s '%s' (%sall)", option, kind, tok, len < sizeof choices ? choices : "");
        }
        sel[i] = true;
    }
    free(copy);
}

static const char *variant_name(size_t i) { return fopt_variants[i].bench_name; }

void bench_variants_parse(const char *list, bool *sel, const char *option)
{
    bench_list_select(list, sel, fopt_variant_count, variant_name, option, "optimizer");
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

/* ---- command lines ---- */

int bench_parse_int(const char *s, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > 1000000)
        bench_die("bad value '%s' for %s", s, what);
    return (int)v;
}

size_t bench_parse_size(const char *s, const char *what)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        bench_die("bad value '%s' for %s", s, what);
    double mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1024, end++;
    else if (*end == 'M' || *end == 'm')
        mul = 1024.0 * 1024, end++;
    else if (*end == 'G' || *end == 'g')
        mul = 1024.0 * 1024 * 1024, end++;
    if (*end == '+') /* 1M+3 */
        return (size_t)(v * mul) + bench_parse_size(end + 1, what);
    if (*end)
        bench_die("bad value '%s' for %s", s, what);
    return (size_t)(v * mul);
}

/* The option of args[0..count) called a, or NULL. */
static const bench_arg *arg_find(const bench_arg *args, size_t count, const char *a)
{
    for (size_t k = 0; k < count; k++)
        if (!strcmp(a, args[k].name) || (args[k].alias && !strcmp(a, args[k].alias)))
            return &args[k];
    return NULL;
}

void bench_parse_args(int argc, char **argv, const bench_arg *args, size_t count, bench_rows *rows,
                      void (*usage)(FILE *f))
{
    const bench_arg row_args[] = {
        {.name = "--optimizers", .kind = BENCH_ARG_SELECT, .dst = rows->sel, .select = bench_variants_parse},
        {.name = "--mode-optimizers", .kind = BENCH_ARG_SELECT, .dst = rows->mode_sel,
         .select = bench_variants_parse},
        {.name = "--modes", .kind = BENCH_ARG_SELECT, .dst = rows->modes, .select = bench_modes_parse},
    };
    bench_variants_parse("all", rows->sel, "--optimizers");
    bench_variants_parse("adam", rows->mode_sel, "--mode-optimizers");
    bench_modes_parse("all", rows->modes, "--modes");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        const bench_arg *o = arg_find(args, count, a);
        if (!o)
            o = arg_find(row_args, sizeof row_args / sizeof row_args[0], a);
        if (!o)
            bench_die("unknown option '%s' (--help lists them)", a);
        const char *val = NULL;
        if (o->kind != BENCH_ARG_ON && o->kind != BENCH_ARG_OFF && o->kind != BENCH_ARG_ACTION) {
            if (i + 1 >= argc)
                bench_die("%s needs a value", a);
            val = argv[++i];
        }
        switch (o->kind) {
        case BENCH_ARG_ON: *(bool *)o->dst = true; break;
        case BENCH_ARG_OFF: *(bool *)o->dst = false; break;
        case BENCH_ARG_INT: *(int *)o->dst = bench_parse_int(val, a); break;
        case BENCH_ARG_SECONDS: *(double *)o->dst = bench_parse_int(val, a); break;
        case BENCH_ARG_SIZE: *(size_t *)o->dst = bench_parse_size(val, a); break;
        case BENCH_ARG_STRING: *(const char **)o->dst = val; break;
        case BENCH_ARG_SELECT: o->select(val, o->dst, a); break;
        case BENCH_ARG_CALL:
        case BENCH_ARG_ACTION: o->call(o->dst, val); break;
        }
        if (o->given)
            *o->given = true;
    }
}
