/* ZeRO-1 over MPI on the CPU: data-parallel AdamW whose optimizer state is split across the ranks,
 * bit-identical to one process stepping the whole model.
 *
 * The model is a list of tensors of odd sizes in one flat fp32 buffer. Every rank keeps all the
 * params but the AdamW state (exp_avg, exp_avg_sq) of its own range only, from fopt_shard_bounds.
 * Per step, on every rank r:
 *   1. its gradient contribution for every param (its "data"), times the loss scale;
 *   2. MPI_Reduce_scatter: the sum over ranks of the grads of range r lands in place in r's part
 *      of the flat grad buffer;
 *   3. its partial sum of squares (fopt_grad_sq_sum_cpu_multi over its pieces), MPI_Allgather of
 *      the 8-byte partials, the sum of them in rank order: the global statistics;
 *   4. fopt_adam_step_cpu_multi over its pieces, with the loss scale, clipping, the inf/NaN check
 *      and that sum (fopt_step_options.grad_sq_sum); a step with an inf is skipped by every rank
 *      and halves the loss scale;
 *   5. MPI_Allgatherv of the params, in place: every rank holds the whole model again.
 * Rank 0 also trains the same model alone (fopt_adam_step_ref_multi over the whole list, the same
 * summed grads, the norm from the per-range partials summed in rank order) and compares every
 * param bit for bit after every step, and the gathered states at the end.
 *
 *     mpirun --allow-run-as-root --oversubscribe -np 3 build/examples/zero1_mpi [steps]
 *
 * Prints "zero1: match" and exits 0, or prints the first difference and exits 1. The model and
 * each rank's gradients (exact sums over ranks, whatever MPI's order) are in zero1_model.h. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "fusedopt.h"
#include "zero1_model.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        fopt_status s_ = (x);                                                                      \
        if (s_ != FOPT_SUCCESS) {                                                                  \
            fprintf(stderr, "%s: %s\n", #x, fopt_last_error());                                    \
            MPI_Abort(MPI_COMM_WORLD, 1);                                                          \
        }                                                                                          \
    } while (0)

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return p;
}

/* The list's host tensors over flat param/grad buffers (and flat states, when given). */
static void list_over(fopt_host_tensor *t, float *param, float *grad, float *m, float *v)
{
    size_t at = 0;
    for (size_t k = 0; k < ZERO1_COUNT; k++) {
        memset(&t[k], 0, sizeof t[k]);
        t[k].param = param + at;
        t[k].grad = grad + at;
        t[k].numel = ZERO1_SIZES[k];
        t[k].dtype = FOPT_FLOAT32;
        t[k].state[0] = m ? m + at : NULL;
        t[k].state[1] = v ? v + at : NULL;
        at += ZERO1_SIZES[k];
    }
}

/* The statistics of a split: each range's partial (over its pieces), summed in rank order. Used
 * by the one-process run, over the same ranges as the ranks. */
static double split_sq_sum(const fopt_host_tensor *whole, const uint64_t *bounds, int world, const float *scale)
{
    fopt_host_tensor pieces[ZERO1_COUNT];
    double total = 0.0;
    for (int r = 0; r < world; r++) {
        size_t n;
        double partial;
        CHECK(fopt_shard_pieces(whole, ZERO1_COUNT, bounds[r], bounds[r + 1], pieces, &n));
        CHECK(fopt_grad_sq_sum_ref_multi(pieces, n, scale, &partial));
        total += partial;
    }
    return total;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    const int steps = argc > 1 ? atoi(argv[1]) : ZERO1_STEPS;

    size_t total = 0;
    for (size_t k = 0; k < ZERO1_COUNT; k++)
        total += ZERO1_SIZES[k];
    uint64_t *bounds = xcalloc((size_t)world + 1, sizeof *bounds);
    CHECK(fopt_shard_bounds(total, world, bounds));
    int *counts = xcalloc((size_t)world, sizeof *counts), *displs = xcalloc((size_t)world, sizeof *displs);
    for (int r = 0; r < world; r++) {
        counts[r] = (int)(bounds[r + 1] - bounds[r]);
        displs[r] = (int)bounds[r];
    }
    const uint64_t begin = bounds[rank], end = bounds[rank + 1];
    const size_t len = (size_t)(end - begin);

    fopt_adam_config cfg = fopt_adam_config_default(); /* AdamW */
    cfg.lr = 1e-2;
    cfg.decoupled_weight_decay = true;
    cfg.weight_decay = 0.01;

    /* every rank: the whole model, the grads, the state of its range only */
    float *w = xcalloc(total, sizeof(float)), *g_local = xcalloc(total, sizeof(float));
    float *g_sum = xcalloc(total, sizeof(float));
    float *m = xcalloc(len, sizeof(float)), *v = xcalloc(len, sizeof(float));
    for (size_t i = 0; i < total; i++)
        w[i] = zero1_initial_param(i);
    fopt_host_tensor whole[ZERO1_COUNT], pieces[ZERO1_COUNT];
    list_over(whole, w, g_sum, NULL, NULL);
    size_t npieces;
    CHECK(fopt_shard_pieces(whole, ZERO1_COUNT, begin, end, pieces, &npieces));
    for (size_t p = 0, at = 0; p < npieces; at += pieces[p].numel, p++) {
        pieces[p].state[0] = m + at; /* the range's state buffers, piece after piece */
        pieces[p].state[1] = v + at;
    }

    /* rank 0: the same training in one process */
    float *w_ref = NULL, *g_ref = NULL, *m_ref = NULL, *v_ref = NULL;
    fopt_host_tensor ref[ZERO1_COUNT];
    if (rank == 0) {
        w_ref = xcalloc(total, sizeof(float));
        g_ref = xcalloc(total, sizeof(float));
        m_ref = xcalloc(total, sizeof(float));
        v_ref = xcalloc(total, sizeof(float));
        memcpy(w_ref, w, total * sizeof(float));
        list_over(ref, w_ref, g_ref, m_ref, v_ref);
        printf("zero1: %zu params in %zu tensors, %d rank%s; rank 0 holds [%llu, %llu)\n", total, ZERO1_COUNT, world,
               world > 1 ? "s" : "", (unsigned long long)begin, (unsigned long long)end);
    }

    float scale = 4096.0f; /* the loss scale: a power of 2 */
    int64_t t = 0;         /* optimizer steps taken (skipped ones don't count) */
    int ok = 1;
    for (int it = 1; it <= steps && ok; it++) {
        for (size_t i = 0; i < total; i++)
            g_local[i] = zero1_contribution(rank, it, i, w[i], scale);
        MPI_Reduce_scatter(g_local, g_sum + begin, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);

        /* the global statistics: 8 bytes per rank, summed in rank order on every rank (an
         * all-reduce fixes no order, and every rank must clip by the same coefficient) */
        double partial, *partials = xcalloc((size_t)world, sizeof *partials);
        CHECK(fopt_grad_sq_sum_cpu_multi(pieces, npieces, &scale, &partial));
        MPI_Allgather(&partial, 1, MPI_DOUBLE, partials, 1, MPI_DOUBLE, MPI_COMM_WORLD);
        double sq_sum = 0.0;
        for (int r = 0; r < world; r++)
            sq_sum += partials[r];
        free(partials);

        float norm;
        int32_t found_inf;
        fopt_step_options o;
        memset(&o, 0, sizeof o);
        o.grad_scale = &scale;
        o.max_grad_norm = 1.0;
        o.grad_norm = &norm;
        o.found_inf = &found_inf;
        o.grad_sq_sum = &sq_sum;
        CHECK(fopt_adam_step_cpu_multi(&cfg, t + 1, pieces, npieces, &o));
        if (!found_inf)
            MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, w, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);

        if (rank == 0) {
            /* the one-process run: every rank's contribution summed here, the same statistics */
            for (size_t i = 0; i < total; i++) {
                float s = 0.0f;
                for (int r = 0; r < world; r++)
                    s += zero1_contribution(r, it, i, w_ref[i], scale);
                g_ref[i] = s;
            }
            const double ref_sq_sum = split_sq_sum(ref, bounds, world, &scale);
            float ref_norm;
            int32_t ref_inf;
            fopt_step_options ro = o;
            ro.grad_norm = &ref_norm;
            ro.found_inf = &ref_inf;
            ro.grad_sq_sum = &ref_sq_sum;
            CHECK(fopt_adam_step_ref_multi(&cfg, t + 1, ref, ZERO1_COUNT, &ro));
            printf("step %2d  grad norm %12.4f  loss scale %6.0f%s\n", it, norm, scale,
                   found_inf ? "  inf: skipped by every rank" : "");
            if (ref_inf != found_inf || memcmp(&ref_norm, &norm, sizeof norm) != 0) {
                printf("zero1: MISMATCH at step %d: found_inf %d, one process %d; norm %.9g, one process %.9g\n", it,
                       found_inf, ref_inf, norm, ref_norm);
                ok = 0;
            }
            for (size_t i = 0; ok && i < total; i++)
                if (memcmp(&w[i], &w_ref[i], sizeof(float)) != 0) {
                    printf("zero1: MISMATCH at step %d: param %zu is %.9g sharded, %.9g in one process\n", it, i,
                           w[i], w_ref[i]);
                    ok = 0;
                }
        }
        MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (found_inf)
            scale /= 2.0f; /* every rank saw the same sum, so every rank skipped */
        else
            t++;
    }

    /* the states, gathered: the ranges put together are the one-process state */
    float *m_all = rank == 0 ? xcalloc(total, sizeof(float)) : NULL;
    float *v_all = rank == 0 ? xcalloc(total, sizeof(float)) : NULL;
    MPI_Gatherv(m, (int)len, MPI_FLOAT, m_all, counts, displs, MPI_FLOAT, 0, MPI_COMM_WORLD);
    MPI_Gatherv(v, (int)len, MPI_FLOAT, v_all, counts, displs, MPI_FLOAT, 0, MPI_COMM_WORLD);
    if (rank == 0 && ok) {
        if (memcmp(m_all, m_ref, total * sizeof(float)) != 0 || memcmp(v_all, v_ref, total * sizeof(float)) != 0) {
            printf("zero1: MISMATCH: the gathered optimizer state differs from the one-process state\n");
            ok = 0;
        } else {
            printf("zero1: %lld steps, %d skipped; state per rank %zu of %zu floats\n", (long long)t,
                   steps - (int)t, 2 * len, 2 * total);
            printf("zero1: match\n");
        }
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    free(m_all);
    free(v_all);
    free(w_ref);
    free(g_ref);
    free(m_ref);
    free(v_ref);
    free(w);
    free(g_local);
    free(g_sum);
    free(m);
    free(v);
    free(bounds);
    free(counts);
    free(displs);
    MPI_Finalize();
    return ok ? 0 : 1;
}
