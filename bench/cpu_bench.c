/* fopt_cpu_bench: the fast CPU path against the CPU reference and against a same-traffic roofline
 * loop, per storage mode, plus PyTorch's CPU Adam when /usr/bin/python3 has torch.
 *
 * For each size, optimizer variant (bench/variants.c: adam, adamw, amsgrad, rmsprop,
 * rmsprop_momentum, rmsprop_centered, rmsprop_centered_momentum) and storage mode (bench/modes.h:
 * fp32 for every variant; bf16_master, bf16_remainder, bf16_sr, fp16_master, fp32_bf16_states for
 * --mode-cases, default adam) it measures, in the same run and with the same threads:
 *   cpu           fopt_*_step_cpu_multi (SIMD on all cores), one tensor,
 *   cpu_ref       fopt_*_step_ref_multi (scalar, one thread; fewer repetitions),
 *   cpu_roofline  a loop that reads and writes exactly the arrays the step reads and writes, each
 *                 at its width (bench/roofline.h), with the same vector width, threads and
 *                 partition: the memory traffic of the step with trivial math, i.e. what this
 *                 machine's memory allows for it.
 * Fast-path and roofline repetitions alternate so that a change in machine load hits both.
 * Reported: median time, Mparam/s, GB/s of the bytes the step must move (bench/modes.c: fp32 Adam
 * reads p, g, m, v and writes p, m, v: 28 B/element; bf16 params with an fp32 master 28, with a
 * remainder 26, bf16 with bf16 states 14; fopt_bench --list-bytes lists every case), percent of
 * the roofline's throughput (the median over repetitions of roofline time / fast time, each pair
 * measured back to back), speed-up over the reference, and the largest relative difference
 * between one fast step and one reference step over params, masters and states (0:
 * bit-identical). fp32 rows also time src/cpu's fp32 roofline (fopt_cpu_roofline) as a
 * cross-check of the benchmark's loop.
 *
 * Usage: fopt_cpu_bench [--n 16M[,1M,...]] [--reps 21] [--ref-reps 3] [--threads T] [--isa NAME]
 *                       [--cases adam,amsgrad,...] [--modes LIST] [--mode-cases LIST] [--csv FILE]
 *                       [--no-torch] [--torch-reps 10] [--python /usr/bin/python3]
 *                       [--torch-script PATH]
 * One grep-friendly line per case starts with "CPU_BENCH" (dtype=<mode> names the mode);
 * PyTorch's line with "TORCH_CPU_ADAM" and the comparison with "CPU_VS_TORCH"; one line per mode
 * "target CPU <mode>: ..." checks >= 90% of the roofline (the lowest over the variants). The CSV
 * has one row per implementation: optimizer, variant, impl, dtype, tensors, elements, median_us,
 * bytes_per_elem, gb_per_s, pct_of_copy_bw (for CPU rows: percent of the same-traffic roofline),
 * max_rel_err, device ("cpu"). */
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
#include "modes.h"
#include "roofline.h"

const char bench_program[] = "fopt_cpu_bench";

#ifndef FOPT_TORCH_SCRIPT
#define FOPT_TORCH_SCRIPT "torch_cpu_adam.py"
#endif
#ifndef FOPT_TORCH_SCRIPT_INSTALLED
#define FOPT_TORCH_SCRIPT_INSTALLED FOPT_TORCH_SCRIPT
#endif

/* ---- data ----------------------------------------------------------------------------------- */
static uint64_t g_rng = 0x9E3779B97F4A7C15ull; /* one stream through all cases */

/* Non-zero values with magnitudes in [lo, hi], random sign unless `positive`, rounded to dt. */
static void fill(void *x, fopt_dtype dt, size_t n, float lo, float hi, bool positive)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t r = bench_rng_next(&g_rng);
        float u = bench_rng_unit(r);
        float v = lo + (hi - lo) * u;
        bench_store(dt, x, i, (!positive && (r & 1)) ? -v : v);
    }
}

static void *alloc_bytes(size_t bytes)
{
    bytes = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (!p)
        bench_die("out of memory for %zu bytes", bytes);
    return p;
}

/* ---- options -------------------------------------------------------------------------------- */
typedef struct options {
    size_t sizes[16];
    int nsizes;
    int reps, ref_reps, torch_reps;
    int threads; /* 0: library default */
    const char *isa, *csv, *python, *torch_script;
    bool torch;
    bench_rows rows; /* --cases and --mode-cases are --optimizers and --mode-optimizers */
} options;

static void usage(FILE *f)
{
    fprintf(f, "fopt_cpu_bench: fusedopt's fast CPU path vs its reference vs a same-traffic roofline\n"
           "  --n LIST            comma-separated element counts, K/M/G suffixes (default 16M)\n"
           "  --reps R            timed steps of the fast path and the roofline (default 21)\n"
           "  --ref-reps R        timed steps of the reference (default 3)\n"
           "  --threads T         threads for the fast path (default: FOPT_NUM_THREADS or all cores)\n"
           "  --isa NAME          force scalar, avx2 or avx512 (default: the best the CPU has)\n"
           "  --cases LIST        fp32 rows: comma-separated subset of adam,adamw,amsgrad,rmsprop,\n"
           "                      rmsprop_momentum,rmsprop_centered,rmsprop_centered_momentum or all\n"
           "                      (default all; --optimizers is the same)\n"
           "  --modes LIST        storage modes: fp32,bf16_master,bf16_remainder,bf16_sr,fp16_master,\n"
           "                      fp32_bf16_states or all (default all)\n"
           "  --mode-cases LIST   variants of the modes other than fp32 (default adam; all for every\n"
           "                      one; --mode-optimizers is the same)\n"
           "  --csv FILE          also write the results as CSV\n"
           "  --no-torch          skip PyTorch's CPU Adam\n"
           "  --torch-reps R      timed PyTorch steps per mode (default 10)\n"
           "  --python PATH       the Python with torch (default /usr/bin/python3)\n"
           "  --torch-script PATH torch_cpu_adam.py (default: beside the sources or installed)\n");
}

/* --n: comma-separated sizes */
static void parse_sizes(void *opts, const char *list)
{
    options *o = opts;
    char *copy = strdup(list), *save = NULL;
    if (!copy)
        bench_die("out of host memory");
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (o->nsizes == 16)
            bench_die("at most 16 sizes");
        o->sizes[o->nsizes++] = bench_parse_size(t, "--n");
    }
    free(copy);
}

static void parse_options(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->reps = 21;
    o->ref_reps = 3;
    o->torch_reps = 10;
    o->torch = true;
    o->python = "/usr/bin/python3";
    const bench_arg args[] = {
        {.name = "--n", .kind = BENCH_ARG_CALL, .dst = o, .call = parse_sizes},
        {.name = "--reps", .kind = BENCH_ARG_INT, .dst = &o->reps},
        {.name = "--ref-reps", .kind = BENCH_ARG_INT, .dst = &o->ref_reps},
        {.name = "--torch-reps", .kind = BENCH_ARG_INT, .dst = &o->torch_reps},
        {.name = "--threads", .kind = BENCH_ARG_INT, .dst = &o->threads},
        {.name = "--isa", .kind = BENCH_ARG_STRING, .dst = &o->isa},
        {.name = "--cases", .kind = BENCH_ARG_SELECT, .dst = o->rows.sel, .select = bench_variants_parse},
        {.name = "--mode-cases", .kind = BENCH_ARG_SELECT, .dst = o->rows.mode_sel,
         .select = bench_variants_parse},
        {.name = "--csv", .kind = BENCH_ARG_STRING, .dst = &o->csv},
        {.name = "--no-torch", .kind = BENCH_ARG_OFF, .dst = &o->torch},
        {.name = "--python", .kind = BENCH_ARG_STRING, .dst = &o->python},
        {.name = "--torch-script", .kind = BENCH_ARG_STRING, .dst = &o->torch_script},
    };
    bench_parse_args(argc, argv, args, sizeof args / sizeof args[0], &o->rows, usage);
    if (o->nsizes == 0)
        o->sizes[o->nsizes++] = (size_t)16 << 20;
    if (o->reps < 1 || o->ref_reps < 0 || o->torch_reps < 1 || o->threads < 0)
        bench_die("bad repetition or thread count");
}

/* ---- output --------------------------------------------------------------------------------- */
static FILE *g_csv;

static void csv_row(const fopt_variant *c, const bench_mode *m, const char *impl, size_t n, double us,
                    double pct, double err)
{
    if (!g_csv)
        return;
    int bpe = bench_bytes_per_elem(c, m, false);
    fprintf(g_csv, "%s,%s,%s,%s,1,%zu,%.3f,%d,%.3f,", c->optimizer, c->variant, impl, m->name, n, us, bpe,
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
    double fast_us, ref_us, roof_us, lib_roof_us, err;
    double pct; /* median over repetitions of roofline time / fast time, in percent */
} case_result;

/* The arrays of one step in mode m: param, grad, master, states (NULL where unused). */
typedef struct arrays {
    void *p, *g, *master, *st[3];
} arrays;

static void arrays_alloc(arrays *a, const fopt_variant *c, const bench_mode *m, size_t n)
{
    memset(a, 0, sizeof *a);
    size_t ps = bench_dtype_size(m->dtype), ss = bench_dtype_size(m->precision.state_dtype);
    a->p = alloc_bytes(n * ps);
    a->g = alloc_bytes(n * ps);
    if (bench_master_size(m))
        a->master = alloc_bytes(n * bench_master_size(m));
    unsigned states = fopt_variant_states(c);
    for (int k = 0; k < 3; k++)
        if (states >> k & 1u)
            a->st[k] = alloc_bytes(n * ss);
}

static void arrays_copy(arrays *dst, const arrays *src, const fopt_variant *c, const bench_mode *m, size_t n)
{
    arrays_alloc(dst, c, m, n);
    size_t ps = bench_dtype_size(m->dtype), ss = bench_dtype_size(m->precision.state_dtype);
    memcpy(dst->p, src->p, n * ps);
    memcpy(dst->g, src->g, n * ps);
    if (src->master)
        memcpy(dst->master, src->master, n * bench_master_size(m));
    for (int k = 0; k < 3; k++)
        if (src->st[k])
            memcpy(dst->st[k], src->st[k], n * ss);
}

static void arrays_free(arrays *a)
{
    free(a->p);
    free(a->g);
    free(a->master);
    for (int k = 0; k < 3; k++)
        free(a->st[k]);
}

static fopt_host_tensor tensor_of(const arrays *a, const bench_mode *m, size_t n)
{
    return (fopt_host_tensor){.param = a->p, .grad = a->g, .numel = n, .dtype = m->dtype, .master = a->master,
                              .state = {a->st[0], a->st[1], a->st[2]}};
}

static fopt_status step(const fopt_variant *c, const bench_mode *m, bool ref, int64_t t, const arrays *a, size_t n)
{
    fopt_host_tensor ht = tensor_of(a, m, n);
    return bench_cpu_multi(c, m, ref, t, &ht, 1, NULL);
}

/* max relative difference of two arrays of a dtype */
static double rel_err(fopt_dtype dt, const void *x, const void *ref, size_t n, float *fx, float *fr)
{
    for (size_t i = 0; i < n; i++) {
        fx[i] = bench_load(dt, x, i);
        fr[i] = bench_load(dt, ref, i);
    }
    return bench_max_rel_err(fx, fr, n);
}

static double worse(double a, double b) { return isnan(a) || isnan(b) ? NAN : a > b ? a : b; }

static case_result run_case(const options *o, const fopt_variant *c, const bench_mode *m, size_t n)
{
    case_result res = {NAN, NAN, NAN, NAN, NAN, NAN};
    arrays a;
    arrays_alloc(&a, c, m, n);
    fill(a.p, m->dtype, n, 1e-2f, 1.0f, false);
    fill(a.g, m->dtype, n, 1e-4f, 1e-1f, false);
    const bench_master mm = bench_mode_master(m);
    if (mm == BENCH_MASTER_F32)
        for (size_t i = 0; i < n; i++)
            ((float *)a.master)[i] = bench_load(m->dtype, a.p, i);
    else if (mm == BENCH_MASTER_REMAINDER)
        memset(a.master, 0, n * 2);
    for (int k = 0; k < 3; k++) {
        if (!a.st[k])
            continue;
        bool second_moment = c->adam ? k >= 1 : k == 0; /* v, vmax; square_avg */
        if (second_moment)
            fill(a.st[k], m->precision.state_dtype, n, 1e-8f, 1e-4f, true);
        else
            fill(a.st[k], m->precision.state_dtype, n, 1e-5f, 1e-2f, false);
    }

    /* Accuracy: one fast step and one reference step from the same data; params, masters and
     * states compared. */
    arrays r;
    arrays_copy(&r, &a, c, m, n);
    if (step(c, m, false, 1, &a, n) != FOPT_SUCCESS || step(c, m, true, 1, &r, n) != FOPT_SUCCESS)
        bench_die("%s %s step failed: %s", c->bench_name, m->name, fopt_last_error());
    float *fx = alloc_bytes(n * sizeof(float)), *fr = alloc_bytes(n * sizeof(float));
    res.err = rel_err(m->dtype, a.p, r.p, n, fx, fr);
    if (mm == BENCH_MASTER_F32)
        res.err = worse(res.err, rel_err(FOPT_FLOAT32, a.master, r.master, n, fx, fr));
    else if (mm == BENCH_MASTER_REMAINDER) {
        for (size_t i = 0; i < n; i++) {
            fx[i] = bench_master_value(m, a.p, a.master, i);
            fr[i] = bench_master_value(m, r.p, r.master, i);
        }
        res.err = worse(res.err, bench_max_rel_err(fx, fr, n));
    }
    for (int k = 0; k < 3; k++)
        if (a.st[k])
            res.err = worse(res.err, rel_err(m->precision.state_dtype, a.st[k], r.st[k], n, fx, fr));
    free(fx);
    free(fr);
    arrays_free(&r);

    /* The roofline touches the arrays the step touches, at their widths (bench/modes.c). */
    bench_traffic t;
    bench_traffic_of(c, m, false, &t);
    void *ptr[BENCH_MAX_ARRAYS];
    int nstate = 0;
    for (int k = 0; k < t.count; k++) {
        const char *name = t.a[k].name;
        if (!strcmp(name, "grad"))
            ptr[k] = a.g;
        else if (!strcmp(name, "param"))
            ptr[k] = a.p;
        else if (!strcmp(name, "master") || !strcmp(name, "remainder"))
            ptr[k] = a.master;
        else {
            while (nstate < 3 && !a.st[nstate])
                nstate++;
            if (nstate == 3)
                bench_die("internal: traffic lists more states than %s keeps", c->bench_name);
            ptr[k] = a.st[nstate++];
        }
    }
    /* src/cpu's fp32 roofline over the same arrays, for fp32 rows */
    const bool fp32 = m->dtype == FOPT_FLOAT32 && m->precision.state_dtype == FOPT_FLOAT32;
    float *rw[4] = {a.p, a.st[0], a.st[1], a.st[2]};
    int nrw = 1;
    for (int k = 0; k < 3; k++)
        if (a.st[k])
            rw[nrw++] = a.st[k];

    int64_t t_step = 2;
    for (int w = 0; w < 2; w++) { /* warm-up */
        step(c, m, false, t_step++, &a, n);
        bench_roofline(n, &t, ptr, a.p);
        if (fp32)
            fopt_cpu_roofline(n, a.g, rw, nrw);
    }
    double *tf = malloc(sizeof(double) * (size_t)o->reps), *tr = malloc(sizeof(double) * (size_t)o->reps);
    double *tl = malloc(sizeof(double) * (size_t)o->reps);
    for (int rep = 0; rep < o->reps; rep++) {
        double t0 = bench_now_us();
        step(c, m, false, t_step++, &a, n);
        double t1 = bench_now_us();
        bench_roofline(n, &t, ptr, a.p);
        double t2 = bench_now_us();
        tf[rep] = t1 - t0;
        tr[rep] = t2 - t1;
        if (fp32) {
            fopt_cpu_roofline(n, a.g, rw, nrw);
            tl[rep] = bench_now_us() - t2;
        }
    }
    /* Each fast step and the roofline pass right after it saw nearly the same machine load, so
     * the median of the pairwise ratios is steadier than the ratio of the medians. */
    double *ratio = malloc(sizeof(double) * (size_t)o->reps);
    for (int rep = 0; rep < o->reps; rep++)
        ratio[rep] = 100.0 * tr[rep] / tf[rep];
    res.pct = bench_median(ratio, o->reps);
    free(ratio);
    res.fast_us = bench_median(tf, o->reps);
    res.roof_us = bench_median(tr, o->reps);
    if (fp32)
        res.lib_roof_us = bench_median(tl, o->reps);
    free(tf);
    free(tr);
    free(tl);
    if (o->ref_reps > 0) {
        double *tt = malloc(sizeof(double) * (size_t)o->ref_reps);
        for (int rep = 0; rep < o->ref_reps; rep++) {
            double t0 = bench_now_us();
            step(c, m, true, t_step++, &a, n);
            tt[rep] = bench_now_us() - t0;
        }
        res.ref_us = bench_median(tt, o->ref_reps);
        free(tt);
    }
    arrays_free(&a);
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
    char model[256];
    bench_cpu_model(model, sizeof model, "unknown");
    int threads = fopt_cpu_threads();
    printf("fusedopt %s fast CPU path: %s, %d threads, %ld online CPUs, %s\n", fopt_version(),
           fopt_cpu_isa(), threads, sysconf(_SC_NPROCESSORS_ONLN), model);
    printf("reps: %d (fast path and roofline, alternating), %d (reference); median times\n", o.reps,
           o.ref_reps);
    print_load("at start");

    /* per mode: the lowest % of the roofline over the variants and sizes */
    double worst_pct[16];
    const char *worst_case[16];
    for (size_t k = 0; k < bench_mode_count; k++) {
        worst_pct[k] = NAN;
        worst_case[k] = NULL;
    }
    for (int si = 0; si < o.nsizes; si++) {
        size_t n = o.sizes[si];
        if (n == 0)
            continue;
        printf("\n%-26s %-16s %10s %10s %9s %8s %10s %8s %10s %9s %9s\n", "case", "dtype", "fast_us",
               "Mparam/s", "GB/s", "%roof", "roof_us", "roofGB/s", "ref_us", "x_ref", "rel_err");
        double adam_fast_us = NAN, adam_roof_us = NAN;
        for (size_t mk = 0; mk < bench_mode_count; mk++) {
            if (!o.rows.modes[mk])
                continue;
            const bench_mode *m = &bench_modes[mk];
            const bool *sel = mk == 0 ? o.rows.sel : o.rows.mode_sel;
            for (size_t ci = 0; ci < fopt_variant_count; ci++) {
                if (!sel[ci])
                    continue;
                const fopt_variant *c = &fopt_variants[ci];
                case_result r = run_case(&o, c, m, n);
                int bpe = bench_bytes_per_elem(c, m, false);
                double gbs = (double)n * bpe / (r.fast_us * 1e3);
                double roof_gbs = (double)n * bpe / (r.roof_us * 1e3);
                double pct = r.pct;
                double xref = r.ref_us / r.fast_us;
                printf("%-26s %-16s %10.1f %10.1f %9.2f %7.1f%% %10.1f %8.2f %10.1f %8.2fx %9.2e\n",
                       c->bench_name, m->name, r.fast_us, n / r.fast_us, gbs, pct, r.roof_us, roof_gbs, r.ref_us,
                       xref, r.err);
                printf("CPU_BENCH case=%s optimizer=%s variant=%s dtype=%s n=%zu threads=%d isa=%s "
                       "bytes_per_elem=%d fast_us=%.1f fast_mparam_s=%.1f fast_gb_s=%.2f roofline_us=%.1f "
                       "roofline_gb_s=%.2f pct_roofline=%.1f ref_us=%.1f ref_mparam_s=%.1f "
                       "speedup_vs_ref=%.2f max_rel_err=%.3e",
                       c->bench_name, c->optimizer, c->variant, m->name, n, threads, fopt_cpu_isa(), bpe,
                       r.fast_us, n / r.fast_us, gbs, r.roof_us, roof_gbs, pct, r.ref_us, n / r.ref_us, xref,
                       r.err);
                if (!isnan(r.lib_roof_us))
                    printf(" lib_roofline_us=%.1f", r.lib_roof_us);
                printf("\n");
                fflush(stdout);
                csv_row(c, m, "cpu", n, r.fast_us, pct, r.err);
                if (!isnan(r.ref_us))
                    csv_row(c, m, "cpu_ref", n, r.ref_us, 100.0 * r.roof_us / r.ref_us, 0.0);
                csv_row(c, m, "cpu_roofline", n, r.roof_us, 100.0, NAN);
                if (isnan(worst_pct[mk]) || pct < worst_pct[mk]) {
                    worst_pct[mk] = pct;
                    worst_case[mk] = c->bench_name;
                }
                if (mk == 0 && !strcmp(c->bench_name, "adam")) {
                    adam_fast_us = r.fast_us;
                    adam_roof_us = r.roof_us;
                }
            }
        }
        if (o.torch && !isnan(adam_fast_us)) {
            torch_result t = run_torch(&o, n, threads);
            if (t.ok) {
                const fopt_variant *c = bench_variant_find("adam");
                if (!isnan(t.single_us))
                    csv_row(c, &bench_modes[0], "torch_cpu_single", n, t.single_us, 100.0 * adam_roof_us / t.single_us,
                            NAN);
                if (!isnan(t.foreach_us))
                    csv_row(c, &bench_modes[0], "torch_cpu_foreach", n, t.foreach_us,
                            100.0 * adam_roof_us / t.foreach_us, NAN);
                printf("CPU_VS_TORCH n=%zu threads=%d torch=%s torch_best_us=%.1f fopt_us=%.1f "
                       "speedup=%.2f (single-tensor %.2fx, foreach %.2fx)\n",
                       n, threads, t.version, t.best_us, adam_fast_us, t.best_us / adam_fast_us,
                       t.single_us / adam_fast_us, t.foreach_us / adam_fast_us);
            }
        }
    }
    printf("\ntargets: the CPU goal of the issues, >= 90%% of the same-traffic roofline per mode (the lowest "
           "variant); a miss is a shortfall to report, not a failure (this machine's load moves it)\n");
    for (size_t mk = 0; mk < bench_mode_count; mk++)
        if (!isnan(worst_pct[mk]))
            printf("target CPU %s: %.1f%% of the same-traffic roofline (lowest: %s) (>= 90%%): %s\n",
                   bench_modes[mk].name, worst_pct[mk], worst_case[mk], worst_pct[mk] >= 90.0 ? "MET" : "MISSED");
    print_load("at end");
    if (g_csv) {
        fclose(g_csv);
        printf("CSV: %s\n", o.csv);
    }
    return 0;
}
