/* Trains a multilayer perceptron (64 -> 128 -> 10, ReLU, softmax cross-entropy) on scikit-learn's
 * handwritten digits on the CPU: forward and backward in plain C (digits_common.c), AdamW on the
 * fast CPU path with two parameter groups - weights with weight decay, biases without - through
 * fopt_adam_step_cpu_multi(), once per group per step, and a warmup + cosine learning-rate
 * schedule. Prints the loss and test accuracy per epoch, writes a CSV, checkpoints and resumes.
 *
 *   digits_mlp build/digits/digits.bin --csv cpu.csv          (scripts/train_digits.sh runs it)
 *
 * The optimizer state here is the caller's host arrays (exp_avg, exp_avg_sq), so a checkpoint saves
 * them with the parameters and the step. Exits 0 when training ran (whatever the accuracy). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digits_common.h"
#include "fusedopt.h"

enum { GROUPS = 2, TENSORS_PER_GROUP = 2 };

typedef struct cpu_model {
    const digits_data *d;
    digits_layout l;
    fopt_adam_config cfg;  /* AdamW; lr and weight_decay are set per group and step */
    double weight_decay;   /* group 0 (weights); group 1 (biases) gets 0 */
    float *params, *grads; /* layout.total floats each */
    float *exp_avg, *exp_avg_sq;
    fopt_host_tensor groups[GROUPS][TENSORS_PER_GROUP]; /* {W1, W2}, {b1, b2} */
    const int32_t *order;  /* the epoch's sample order (the driver's array) */
    float *x, *hidden, *logits, *dlogits, *dhidden; /* rows: max(batch, n_test) */
    int32_t *y;
    float *losses; /* per sample, epoch order */
} cpu_model;

static fopt_host_tensor host_tensor(cpu_model *m, size_t offset, size_t numel)
{
    fopt_host_tensor t;
    memset(&t, 0, sizeof t);
    t.param = m->params + offset;
    t.grad = m->grads + offset;
    t.numel = numel;
    t.dtype = FOPT_FLOAT32;
    t.state[0] = m->exp_avg + offset;
    t.state[1] = m->exp_avg_sq + offset;
    return t; /* master and state[2] (AMSGrad) stay NULL */
}

static int cpu_begin_epoch(void *ctx, const int32_t *order)
{
    ((cpu_model *)ctx)->order = order;
    return 0;
}

static int cpu_train_batch(void *ctx, int start, int rows, int64_t step, double lr)
{
    cpu_model *m = ctx;
    const int nf = m->d->features;
    for (int r = 0; r < rows; r++) { /* gather the batch */
        int32_t s = m->order[start + r];
        memcpy(m->x + (size_t)r * nf, m->d->train_x + (size_t)s * nf, (size_t)nf * sizeof(float));
        m->y[r] = m->d->train_y[s];
    }
    digits_forward(&m->l, m->params, m->x, rows, m->hidden, m->logits);
    digits_softmax_xent(m->logits, m->y, rows, m->l.out, 1.0f / (float)rows, m->losses + start,
                        m->dlogits);
    digits_backward(&m->l, m->params, m->x, rows, m->hidden, m->dlogits, m->dhidden, m->grads);

    for (int g = 0; g < GROUPS; g++) {
        fopt_adam_config cfg = m->cfg;
        cfg.lr = lr;
        cfg.weight_decay = g == 0 ? m->weight_decay : 0.0;
        fopt_status st =
            fopt_adam_step_cpu_multi(&cfg, step, m->groups[g], TENSORS_PER_GROUP, NULL);
        if (st != FOPT_SUCCESS) {
            fprintf(stderr, "digits_mlp: fopt_adam_step_cpu_multi (group %d, step %lld): %s\n",
                    g, (long long)step, fopt_last_error());
            return -1;
        }
    }
    return 0;
}

static int cpu_end_epoch(void *ctx, float *losses)
{
    cpu_model *m = ctx;
    memcpy(losses, m->losses, (size_t)m->d->n_train * sizeof(float));
    return 0;
}

static int cpu_predict(void *ctx, float *logits)
{
    cpu_model *m = ctx;
    digits_forward(&m->l, m->params, m->d->test_x, m->d->n_test, m->hidden, logits);
    return 0;
}

static int cpu_get_params(void *ctx, float *params)
{
    cpu_model *m = ctx;
    memcpy(params, m->params, m->l.total * sizeof(float));
    return 0;
}

static int cpu_set_params(void *ctx, const float *params)
{
    cpu_model *m = ctx;
    memcpy(m->params, params, m->l.total * sizeof(float));
    return 0;
}

/* The state: exp_avg then exp_avg_sq, layout.total floats each (the step is the driver's). */
static size_t cpu_state_size(void *ctx) { return 2 * ((cpu_model *)ctx)->l.total * sizeof(float); }

static int cpu_save_state(void *ctx, void *buf, size_t size)
{
    cpu_model *m = ctx;
    size_t half = m->l.total * sizeof(float);
    if (size != 2 * half) {
        fprintf(stderr, "digits_mlp: optimizer state buffer of %zu bytes, %zu needed\n", size,
                2 * half);
        return -1;
    }
    memcpy(buf, m->exp_avg, half);
    memcpy((char *)buf + half, m->exp_avg_sq, half);
    return 0;
}

static int cpu_load_state(void *ctx, const void *buf, size_t size, int64_t step)
{
    cpu_model *m = ctx;
    size_t half = m->l.total * sizeof(float);
    if (size != 2 * half || step < 1) {
        fprintf(stderr, "digits_mlp: the checkpoint's optimizer state does not fit this model\n");
        return -1;
    }
    memcpy(m->exp_avg, buf, half);
    memcpy(m->exp_avg_sq, (const char *)buf + half, half);
    return 0;
}

int main(int argc, char **argv)
{
    digits_options o;
    digits_parse_args(argc, argv, &o);
    digits_data d;
    if (digits_load(o.data_path, &d))
        return 1;

    cpu_model m;
    memset(&m, 0, sizeof m);
    m.d = &d;
    digits_layout_init(&m.l, d.features, o.hidden, d.classes);
    m.cfg = fopt_adam_config_default();
    m.cfg.decoupled_weight_decay = true; /* AdamW */
    m.weight_decay = o.weight_decay;
    size_t rows = (size_t)(o.batch > d.n_test ? o.batch : d.n_test);
    size_t n = m.l.total;
    m.params = calloc(n, sizeof(float));
    m.grads = calloc(n, sizeof(float));
    m.exp_avg = calloc(n, sizeof(float)); /* optimizer states start zeroed */
    m.exp_avg_sq = calloc(n, sizeof(float));
    m.x = malloc(rows * d.features * sizeof(float));
    m.y = malloc(rows * sizeof(int32_t));
    m.hidden = malloc(rows * o.hidden * sizeof(float));
    m.dhidden = malloc(rows * o.hidden * sizeof(float));
    m.logits = malloc(rows * d.classes * sizeof(float));
    m.dlogits = malloc(rows * d.classes * sizeof(float));
    m.losses = malloc((size_t)d.n_train * sizeof(float));
    int rc = 1;
    if (!m.params || !m.grads || !m.exp_avg || !m.exp_avg_sq || !m.x || !m.y || !m.hidden ||
        !m.dhidden || !m.logits || !m.dlogits || !m.losses) {
        fprintf(stderr, "digits_mlp: out of memory\n");
        goto done;
    }
    /* group 0: the weights (decayed), group 1: the biases (not decayed) */
    m.groups[0][0] = host_tensor(&m, m.l.w1, (size_t)m.l.in * m.l.hidden);
    m.groups[0][1] = host_tensor(&m, m.l.w2, (size_t)m.l.hidden * m.l.out);
    m.groups[1][0] = host_tensor(&m, m.l.b1, (size_t)m.l.hidden);
    m.groups[1][1] = host_tensor(&m, m.l.b2, (size_t)m.l.out);

    printf("cpu: fusedopt %s (%s, %d threads); %d train / %d test samples; MLP %d-%d-%d, "
           "batch %d, %d epochs; AdamW lr %g (warmup %d, cosine to %g), weight decay %g on "
           "weights, 0 on biases; seed %llu\n",
           fopt_version(), fopt_cpu_isa(), fopt_cpu_threads(), d.n_train, d.n_test, m.l.in,
           m.l.hidden, m.l.out, o.batch, o.epochs, o.lr, o.warmup, o.min_lr, o.weight_decay,
           (unsigned long long)o.seed);

    digits_backend b = {"cpu",          &m,           cpu_begin_epoch, cpu_train_batch,
                        cpu_end_epoch,  cpu_predict,  cpu_get_params,  cpu_set_params,
                        cpu_state_size, cpu_save_state, cpu_load_state};
    digits_result res;
    if (digits_train(&o, &d, &m.l, &b, &res))
        goto done;
    printf("cpu: %s after %d of %d epochs: test accuracy %.2f%%, train loss %.6f, %.1f ms per "
           "epoch, params checksum %016llx\n",
           res.stopped ? "stopped" : "done", res.epochs_done, o.epochs, 100.0 * res.test_acc,
           res.train_loss, res.epoch_ms, (unsigned long long)res.checksum);
    rc = 0;
done:
    free(m.params);
    free(m.grads);
    free(m.exp_avg);
    free(m.exp_avg_sq);
    free(m.x);
    free(m.y);
    free(m.hidden);
    free(m.dhidden);
    free(m.logits);
    free(m.dlogits);
    free(m.losses);
    digits_free(&d);
    return rc;
}
