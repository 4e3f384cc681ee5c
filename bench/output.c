/* fopt_bench's table, CSV rows and correctness tally (bench/output.h). */
#include "output.h"

#include <math.h>
#include <string.h>

void output_table_header(void)
{
    printf("%-8s %-17s %-14s %-16s %-10s %7s %11s %11s %9s %8s %6s %8s %8s %11s %8s\n", "optimizer",
           "variant", "impl", "dtype", "case", "tensors", "elements", "median_us", "Gelem/s", "GB/s",
           "%copy", "x_cpu", "x_ref", "max_rel_err", "host_us");
}

double output_gbs(const bench_row *r)
{
    return (double)r->c->total * r->bytes_per_elem / (r->median_us * 1e-6) * 1e-9;
}

double output_pct(const bench_output *o, const bench_row *r)
{
    if (!r->gpu || o->gpu->emulated || o->gpu->copy_gbs <= 0)
        return NAN;
    return 100.0 * output_gbs(r) / o->gpu->copy_gbs;
}

static void tally(bench_output *o, const bench_row *r)
{
    if (r->reference)
        return;
    o->checked++;
    char what[160];
    snprintf(what, sizeof what, "%s %s %s %s%s", r->v->bench_name, r->impl, r->m->name, r->c->name,
             r->gpu && o->gpu->emulated ? " (emulated)" : "");
    const bool exact = strcmp(r->impl, "unfused_cublas") != 0;
    o->exact += exact;
    bool bad = isnan(r->max_err) || r->max_err > (exact ? 0.0 : BENCH_ERR_LIMIT);
    if (bad) {
        if (o->failed++ == 0)
            snprintf(o->first_failure, sizeof o->first_failure, "%s: max_rel_err %.3e (limit %s)", what,
                     r->max_err, exact ? "0, bit-identical" : "1e-4");
    }
    if (isnan(r->max_err)) {
        if (!o->worst_nan)
            snprintf(o->worst_row, sizeof o->worst_row, "%s", what);
        o->worst_nan = true;
    } else if (!o->worst_nan && r->max_err >= o->worst) {
        o->worst = r->max_err;
        snprintf(o->worst_row, sizeof o->worst_row, "%s", what);
    }
}

void output_row(bench_output *o, const bench_row *r, double cpu_us, double ref_us)
{
    tally(o, r);
    if (isnan(r->median_us))
        return;
    const bool emu = r->gpu && o->gpu->emulated;
    double secs = r->median_us * 1e-6;
    double gbs = output_gbs(r), gelems = (double)r->c->total / secs * 1e-9;
    double pct = output_pct(o, r);
    double x_cpu = cpu_us / r->median_us, x_ref = ref_us / r->median_us;
    char pct_s[16] = "-", xcpu_s[16] = "-", xref_s[16] = "-", err_s[16] = "-", host_s[16] = "-";
    if (!isnan(pct))
        snprintf(pct_s, sizeof pct_s, "%.1f", pct);
    if (!isnan(x_cpu) && r->gpu && !emu)
        snprintf(xcpu_s, sizeof xcpu_s, "%.2f", x_cpu);
    if (!isnan(x_ref) && !r->reference && !emu)
        snprintf(xref_s, sizeof xref_s, "%.2f", x_ref);
    if (r->reference)
        snprintf(err_s, sizeof err_s, "-");
    else if (!isnan(r->max_err))
        snprintf(err_s, sizeof err_s, "%.2e", r->max_err);
    else
        snprintf(err_s, sizeof err_s, "NaN");
    if (!isnan(r->host_us))
        snprintf(host_s, sizeof host_s, "%.1f", r->host_us);
    printf("%-8s %-17s %-14s %-16s %-10s %7zu %11zu %11.2f %9.3f %8.1f %6s %8s %8s %11s %8s%s\n",
           r->v->optimizer, r->v->variant, r->impl, r->m->name, r->c->name, r->c->count, r->c->total,
           r->median_us, gelems, gbs, pct_s, xcpu_s, xref_s, err_s, host_s, emu ? " EMULATED" : "");
    fflush(stdout);
    if (o->csv) {
        fprintf(o->csv, "%s,%s,%s,%s,%zu,%zu,%.3f,%d,%.3f,", r->v->optimizer, r->v->variant, r->impl,
                r->m->name, r->c->count, r->c->total, r->median_us, r->bytes_per_elem, gbs);
        if (!isnan(pct))
            fprintf(o->csv, "%.2f", pct);
        fputc(',', o->csv);
        if (r->reference)
            fprintf(o->csv, "0");
        else if (isnan(r->max_err))
            fprintf(o->csv, "nan");
        else
            fprintf(o->csv, "%.3e", r->max_err);
        fprintf(o->csv, ",%s\n", r->gpu ? o->gpu->name : o->cpu_device);
        fflush(o->csv);
    }
}
