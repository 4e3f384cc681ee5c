/* fopt_cpu_bench: the fast CPU path against the CPU reference and against a same-traffic roofline
 * loop, plus PyTorch's CPU Adam when /usr/bin/python3 has torch (issue 5).
 *
 * For each size and optimizer variant (Adam, AdamW, AMSGrad, RMSprop plain / momentum / centered /
 * centered+momentum) it measures, in the same run and with the same threads:
 *   cpu           fopt_*_step_cpu (SIMD on all cores),
 *   cpu_ref       fopt_*_step_ref (scalar, one thread; fewer repetitions),
 *   cpu_roofline  a loop that reads and writes exactly the arrays the step reads and writes
 *                 (x += grad on every state array and the parameter) with the same vector width,
 *                 threads and partition: the memory traffic of the step with trivial math, i.e.
 *                 what this machine's memory allows for it.
 * Fast-path and roofline repetitions alternate so that a change in machine load hits both.
 * Reported: median time, Mparam/s, GB/s of the bytes the step must move (fp32 Adam reads p, g, m,
 * v and writes p, m, v: 28 B/element; AMSGrad 36; RMSprop 20, +8 for momentum, +8 for centered),
 * percent of the roofline's throughput (the median over repetitions of roofline time / fast time,
 * each pair measured back to back), speed-up over the reference, and the largest relative
 * difference between one fast step and one reference step (0: bit-identical).
 *
 * Usage: fopt_cpu_bench [--n 16M[,1M,...]] [--reps 21] [--ref-reps 3] [--threads T] [--isa NAME]
 *                       [--cases adam,amsgrad,...] [--csv FILE] [--no-torch] [--torch-reps 10]
 *                       [--python /usr/bin/python3] [--torch-script PATH]
 * One grep-friendly line per case starts with "CPU_BENCH"; PyTorch's line with "TORCH_CPU_ADAM"
 * and the comparison with "CPU_VS_TORCH". The CSV has one row per implementation: optimizer,
 * variant, impl, dtype, tensors, elements, median_us, bytes_per_elem, gb_per_s, pct_of_copy_bw
 * (for CPU rows: percent of the same-traffic roofline), max_rel_err, device ("cpu"). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"
#include "cpu_internal.h"
#include "fusedopt.h"

const char bench_program[] = "fopt_cpu_bench";

#ifndef FOPT_TORCH_SCRIPT
#define FOPT_TORCH_SCRIPT "torch_cpu_adam.py"
#endif
#ifndef FOPT_TORCH_SCRIPT_INSTALLED
#define FOPT_TORCH_SCRIPT_INSTALLED FOPT_TORCH_SCRIPT
#endif

/* ---- data ----------------------------------------------------------------------------------- */
static uint64_t g_rng = 0x9E3779B97F4A7C15ull; /* one stream through all cases */

/* Non-zero values with magnitudes in [lo, hi], random sign unless `positive`. */
static void fill(float *x, size_t n, float lo, float hi, bool positive)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t r = bench_rng_next(&g_rng);
        float u = bench_rng_unit(r);
        float v = lo + (hi - lo) * u;
        x[i] = (!positive && (r & 1)) ? -v : v;
    }
}

static float *alloc_floats(size_t n)
{
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    if (!p)
        bench_die("out of memory for %zu floats", n);
    return p;
}

/* ---- options -------------------------------------------------------------------------------- */
typedef struct options {
    size_t sizes[16];
    int nsizes;
    int reps, ref_reps, torch_reps;
    int threads; /* 0: library default */
    const char *isa, *csv, *python, *torch_script, *cases;
    bool torch;
} options;

static size_t parse_size(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        bench_die("bad size \"%s\"", s);
    double mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1024, end++;
    else if (*end == 'M' || *end == 'm')
        mul = 1024.0 * 1024, end++;
    else if (*end == 'G' || *end == 'g')
        mul = 1024.0 * 1024 * 1024, end++;
    if (*end == '+') /* 1M+3 */
        return (size_t)(v * mul) + parse_size(end + 1);
    if (*end)
        bench_die("bad size \"%s\"", s);
    return (size_t)(v * mul);
}

static void usage(void)
{
    printf("fopt_cpu_bench: fusedopt's fast CPU path vs its reference vs a same-traffic roofline\n"
           "  --n LIST            comma-separated element counts, K/M/G suffixes (default 16M)\n"
           "  --reps R            timed steps of the fast path and the roofline (default 21)\n"
           "  --ref-reps R        timed steps of the reference (default 3)\n"
           "  --threads T         threads for the fast path (default: FOPT_NUM_THREADS or all cores)\n"
           "  --isa NAME          force scalar, avx2 or avx512 (default: the best the CPU has)\n"
           "  --cases LIST        comma-separated subset of adam,adamw,amsgrad,rmsprop,\n"
           "                      rmsprop_momentum,rmsprop_centered,rmsprop_centered_momentum\n"
           "  --csv FILE          also write the results as CSV\n"
           "  --no-torch          skip PyTorch's CPU Adam\n"
           "  --torch-reps R      timed PyTorch steps per mode (default 10)\n"
           "  --python PATH       the Python with torch (default /usr/bin/python3)\n"
           "  --torch-script PATH torch_cpu_adam.py (default: beside the sources or installed)\n");
}

static void parse_options(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->reps = 21;
    o->ref_reps = 3;
    o->torch_reps = 10;
    o->torch = true;
    o->python = "/usr/bin/python3";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VAL                                                                                   \
    do {                                                                                           \
        if (!val)                                                                                  \
            bench_die("%s needs a value", a);                                                      \
        i++;                                                                                       \
    } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            exit(0);
        } else if (!strcmp(a, "--n")) {
            NEED_VAL;
            char *copy = strdup(val), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (o->nsizes == 16)
                    bench_die("at most 16 sizes");
                o->sizes[o->nsizes++] = parse_size(t);
            }
            free(copy);
        } else if (!strcmp(a, "--reps")) {
            NEED_VAL;
            o->reps = atoi(val);
        } else if (!strcmp(a, "--ref-reps")) {
            NEED_VAL;
            o->ref_reps = atoi(val);
        } else if (!strcmp(a, "--torch-reps")) {
            NEED_VAL;
            o->torch_reps = atoi(val);
        } else if (!strcmp(a, "--threads")) {
            NEED_VAL;
            o->threads = atoi(val);
        } else if (!strcmp(a, "--isa")) {
            NEED_VAL;
            o->isa = val;
        } else if (!strcmp(a, "--cases")) {
            NEED_VAL;
            o->cases = val;
        } else if (!strcmp(a, "--csv")) {
            NEED_VAL;
            o->csv = val;
        } else if (!strcmp(a, "--no-torch")) {
            o->torch = false;
        } else if (!strcmp(a, "--python")) {
            NEED_VAL;
            o->python = val;
        } else if (!strcmp(a, "--torch-script")) {
            NEED_VAL;
            o->torch_script = val;
        } else {
            bench_die("unknown option %s (--help lists them)", a);
        }
#undef NEED_VAL
    }
    if (o->nsizes == 0)
        o->sizes[o->nsizes++] = (size_t)16 << 20;
    if (o->reps < 1 || o->ref_reps < 0 || o->torch_reps < 1 || o->threads < 0)
        bench_die("bad repetition or thread count");
}

static bool case_selected(const options *o, const char *name)
{
    if (!o->cases)
        return true;
    size_t len = strlen(name);
    for (const char *s = o->cases; *s;) {
        const char *e = strchr(s, ',');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if (l == len && !strncmp(s, name, l))
            return true;
        s += l + (e ? 1 : 0);
    }
    return false;
}

/* ---- output --------------------------------------------------------------------------------- */
static FILE *g_csv;

static void csv_row(const bench_variant *c, const char *impl, size_t n, double us, double pct,
                    double err)
{
    if (!g_csv)
        return;
    int bpe = bench_bytes_per_elem(c);
    fprintf(g_csv, "%s,%s,%s,fp32,1,%zu,%.3f,%d,%.3f,", c->optimizer, c->variant, impl, n, us, bpe,
            (double)n * bpe / (us * 1e3));
    if (isnan(pct))
        fputs("nan", g_csv);
    else
        fprintf(g_csv, "%.2f", pct);
    if (isnan(err))
        fputs(",nan,cpu\n", g_csv);
    else
        fprintf(g_csv, ",%.3e,cpu\n", err);
    fflush(g_csv);
}

/* ---- PyTorch -------------------------------------------------------------------------------- */
typedef struct torch_result {
    bool ok;
    double single_us, foreach_us, best_us;
    char version[64];
    int threads;
} torch_result;

static const char *torch_script_path(const options *o)
{
    if (o->torch_script)
        return o->torch_script;
    if (access(FOPT_TORCH_SCRIPT, R_OK) == 0)
        return FOPT_TORCH_SCRIPT;
    if (access(FOPT_TORCH_SCRIPT_INSTALLED, R_OK) == 0)
        return FOPT_TORCH_SCRIPT_INSTALLED;
    return NULL;
}

static torch_result run_torch(const options *o, size_t n, int threads)
{
    torch_result r = {.ok = false};
    const char *script = torch_script_path(o);
    if (!script) {
        printf("TORCH_CPU_ADAM skipped: torch_cpu_adam.py not found (--torch-script)\n");
        return r;
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import torch' >/dev/null 2>&1", o->python);
    if (system(cmd) != 0) {
        printf("TORCH_CPU_ADAM skipped: %s cannot import torch (apt install python3-torch)\n",
               o->python);
        return r;
    }
    snprintf(cmd, sizeof cmd, "'%s' '%s' --n %zu --threads %d --reps %d", o->python, script, n,
             threads, o->torch_reps);
    FILE *f = popen(cmd, "r");
    if (!f) {
        printf("TORCH_CPU_ADAM skipped: cannot run %s\n", cmd);
        return r;
    }
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "TORCH_CPU_ADAM ", 15) != 0)
            continue;
        fputs(line, stdout);
        const char *s;
        if ((s = strstr(line, "torch=")))
            sscanf(s, "torch=%63s", r.version);
        if ((s = strstr(line, "threads=")))
            sscanf(s, "threads=%d", &r.threads);
        if ((s = strstr(line, "single_us=")))
            r.single_us = strtod(s + 10, NULL);
        if ((s = strstr(line, "foreach_us=")))
            r.foreach_us = strtod(s + 11, NULL);
        if ((s = strstr(line, "best_us="))) {
            r.best_us = strtod(s + 8, NULL);
            r.ok = r.best_us > 0;
        }
    }
    int st = pclose(f);
    if (st != 0)
        r.ok = false;
    if (!r.ok)
        printf("TORCH_CPU_ADAM failed (status %d)\n", st);
    return r;
}

/* ---- one case ------------------------------------------------------------------------------- */
typedef struct case_result {
    double fast_us, ref_us, roof_us, err;
    double pct; /* median over repetitions of roofline time / fast time, in percent */
} case_result;

static case_result run_case(const options *o, const bench_variant *c, size_t n)
{
    case_result res = {NAN, NAN, NAN, NAN, NAN};
    float *p = alloc_floats(n), *g = alloc_floats(n), *st[3] = {NULL, NULL, NULL};
    fill(p, n, 1e-2f, 1.0f, false);
    fill(g, n, 1e-4f, 1e-1f, false);
    for (int k = 0; k < c->nstate; k++) {
        st[k] = alloc_floats(n);
        bool second_moment = c->is_adam ? k >= 1 : k == 0; /* v, vmax; square_avg */
        if (second_moment)
            fill(st[k], n, 1e-8f, 1e-4f, true);
        else
            fill(st[k], n, 1e-5f, 1e-2f, false);
    }

    /* Accuracy: one fast step and one reference step from the same data. */
    float *p2 = alloc_floats(n), *st2[3] = {NULL, NULL, NULL};
    memcpy(p2, p, n * sizeof(float));
    for (int k = 0; k < c->nstate; k++) {
        st2[k] = alloc_floats(n);
        memcpy(st2[k], st[k], n * sizeof(float));
    }
    if (bench_cpu_step(c, false, 1, 0, n, p, g, st) != FOPT_SUCCESS ||
        bench_cpu_step(c, true, 1, 0, n, p2, g, st2) != FOPT_SUCCESS)
        bench_die("%s step failed: %s", c->name, fopt_last_error());
    res.err = bench_max_rel_err(p, p2, n);
    for (int k = 0; k < c->nstate; k++) {
        double e = bench_max_rel_err(st[k], st2[k], n);
        if (isnan(e) || e > res.err)
            res.err = e;
        free(st2[k]);
    }
    free(p2);

    /* The roofline touches the arrays the step touches: grad read, the rest read and written. */
    float *rw[4] = {p, st[0], st[1], st[2]};
    int nrw = 1 + c->nstate;

    int64_t step = 2;
    for (int w = 0; w < 2; w++) { /* warm-up */
        bench_cpu_step(c, false, step++, 0, n, p, g, st);
        fopt_cpu_roofline(n, g, rw, nrw);
    }
    double *tf = malloc(sizeof(double) * (size_t)o->reps), *tr = malloc(sizeof(double) * (size_t)o->reps);
    for (int r = 0; r < o->reps; r++) {
        double t0 = bench_now_us();
        bench_cpu_step(c, false, step++, 0, n, p, g, st);
        double t1 = bench_now_us();
        fopt_cpu_roofline(n, g, rw, nrw);
        double t2 = bench_now_us();
        tf[r] = t1 - t0;
        tr[r] = t2 - t1;
    }
    /* Each fast step and the roofline pass right after it saw nearly the same machine load, so
     * the median of the pairwise ratios is steadier than the ratio of the medians. */
    double *ratio = malloc(sizeof(double) * (size_t)o->reps);
    for (int r = 0; r < o->reps; r++)
        ratio[r] = 100.0 * tr[r] / tf[r];
    res.pct = bench_median(ratio, o->reps);
    free(ratio);
    res.fast_us = bench_median(tf, o->reps);
    res.roof_us = bench_median(tr, o->reps);
    free(tf);
    free(tr);
    if (o->ref_reps > 0) {
        double *t = malloc(sizeof(double) * (size_t)o->ref_reps);
        for (int r = 0; r < o->ref_reps; r++) {
            double t0 = bench_now_us();
            bench_cpu_step(c, true, step++, 0, n, p, g, st);
            t[r] = bench_now_us() - t0;
        }
        res.ref_us = bench_median(t, o->ref_reps);
        free(t);
    }
    free(p);
    free(g);
    for (int k = 0; k < c->nstate; k++)
        free(st[k]);
    return res;
}

static void print_load(const char *when)
{
    FILE *f = fopen("/proc/loadavg", "r");
    char buf[128] = "?";
    if (f) {
        if (fgets(buf, sizeof buf, f))
            buf[strcspn(buf, "\n")] = 0;
        fclose(f);
    }
    printf("load average %s: %s\n", when, buf);
}

int main(int argc, char **argv)
{
    options o;
    parse_options(argc, argv, &o);
    if (o.threads > 0 && fopt_cpu_set_threads(o.threads) != FOPT_SUCCESS)
        bench_die("--threads: %s", fopt_last_error());
    if (o.isa && fopt_cpu_force_isa(o.isa) != FOPT_SUCCESS)
        bench_die("--isa: %s", fopt_last_error());
    if (o.csv) {
        g_csv = bench_csv_open(o.csv);
    }
    bench_variant cases[BENCH_MAX_VARIANTS];
    int ncases = bench_make_variants(cases);
    char model[256];
    bench_cpu_model(model, sizeof model, "unknown");
    int threads = fopt_cpu_threads();
    printf("fusedopt %s fast CPU path: %s, %d threads, %ld online CPUs, %s\n", fopt_version(),
           fopt_cpu_isa(), threads, sysconf(_SC_NPROCESSORS_ONLN), model);
    printf("reps: %d (fast path and roofline, alternating), %d (reference); median times\n", o.reps,
           o.ref_reps);
    print_load("at start");

    for (int si = 0; si < o.nsizes; si++) {
        size_t n = o.sizes[si];
        if (n == 0)
            continue;
        printf("\n%-26s %10s %10s %9s %8s %10s %8s %10s %9s %9s\n", "case", "fast_us", "Mparam/s",
               "GB/s", "%roof", "roof_us", "roofGB/s", "ref_us", "x_ref", "rel_err");
        double adam_fast_us = NAN, adam_roof_us = NAN;
        for (int ci = 0; ci < ncases; ci++) {
            const bench_variant *c = &cases[ci];
            if (!case_selected(&o, c->name))
                continue;
            case_result r = run_case(&o, c, n);
            int bpe = bench_bytes_per_elem(c);
            double gbs = (double)n * bpe / (r.fast_us * 1e3);
            double roof_gbs = (double)n * bpe / (r.roof_us * 1e3);
            double pct = r.pct;
            double xref = r.ref_us / r.fast_us;
            printf("%-26s %10.1f %10.1f %9.2f %7.1f%% %10.1f %8.2f %10.1f %8.2fx %9.2e\n", c->name,
                   r.fast_us, n / r.fast_us, gbs, pct, r.roof_us, roof_gbs, r.ref_us, xref, r.err);
            printf("CPU_BENCH case=%s optimizer=%s variant=%s n=%zu threads=%d isa=%s bytes_per_elem=%d "
                   "fast_us=%.1f fast_mparam_s=%.1f fast_gb_s=%.2f roofline_us=%.1f "
                   "roofline_gb_s=%.2f pct_roofline=%.1f ref_us=%.1f ref_mparam_s=%.1f "
                   "speedup_vs_ref=%.2f max_rel_err=%.3e\n",
                   c->name, c->optimizer, c->variant, n, threads, fopt_cpu_isa(), bpe, r.fast_us,
                   n / r.fast_us, gbs, r.roof_us, roof_gbs, pct, r.ref_us, n / r.ref_us, xref, r.err);
            fflush(stdout);
            csv_row(c, "cpu", n, r.fast_us, pct, r.err);
            if (!isnan(r.ref_us))
                csv_row(c, "cpu_ref", n, r.ref_us, 100.0 * r.roof_us / r.ref_us, 0.0);
            csv_row(c, "cpu_roofline", n, r.roof_us, 100.0, NAN);
            if (!strcmp(c->name, "adam")) {
                adam_fast_us = r.fast_us;
                adam_roof_us = r.roof_us;
            }
        }
        if (o.torch && !isnan(adam_fast_us)) {
            torch_result t = run_torch(&o, n, threads);
            if (t.ok) {
                const bench_variant *c = &cases[0];
                if (!isnan(t.single_us))
                    csv_row(c, "torch_cpu_single", n, t.single_us, 100.0 * adam_roof_us / t.single_us, NAN);
                if (!isnan(t.foreach_us))
                    csv_row(c, "torch_cpu_foreach", n, t.foreach_us,
                            100.0 * adam_roof_us / t.foreach_us, NAN);
                printf("CPU_VS_TORCH n=%zu threads=%d torch=%s torch_best_us=%.1f fopt_us=%.1f "
                       "speedup=%.2f (single-tensor %.2fx, foreach %.2fx)\n",
                       n, threads, t.version, t.best_us, adam_fast_us, t.best_us / adam_fast_us,
                       t.single_us / adam_fast_us, t.foreach_us / adam_fast_us);
            }
        }
    }
    print_load("at end");
    if (g_csv) {
        fclose(g_csv);
        printf("CSV: %s\n", o.csv);
    }
    return 0;
}
