/* The device-independent half of the digits MLP example: data file, options, initialisation,
 * sample order, learning-rate schedule, the model's forward/backward pass in plain C, checkpoints
 * and the epoch loop. digits_common.h describes each piece. */
#include "digits_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---------------------------------------------------------------------------------------------
 * Data
 * ------------------------------------------------------------------------------------------- */
#define DATA_MAGIC "FOPTDIGT"

static int read_exact(FILE *f, void *buf, size_t bytes)
{
    return fread(buf, 1, bytes, f) == bytes ? 0 : -1;
}

int digits_load(const char *path, digits_data *d)
{
    memset(d, 0, sizeof *d);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "digits: cannot open %s (make it with scripts/digits_data.py)\n", path);
        return -1;
    }
    char magic[8];
    uint32_t h[6]; /* version, n_train, n_test, features, classes, seed */
    if (read_exact(f, magic, 8) || memcmp(magic, DATA_MAGIC, 8) || read_exact(f, h, sizeof h) ||
        h[0] != 1 || h[1] == 0 || h[2] == 0 || h[1] > 1000000 || h[2] > 1000000 || h[3] == 0 ||
        h[3] > 4096 || h[4] < 2 || h[4] > 1000) {
        fprintf(stderr, "digits: %s is not a version 1 digits file\n", path);
        fclose(f);
        return -1;
    }
    d->n_train = (int)h[1];
    d->n_test = (int)h[2];
    d->features = (int)h[3];
    d->classes = (int)h[4];
    size_t ntr = (size_t)d->n_train, nte = (size_t)d->n_test, nf = (size_t)d->features;
    d->train_x = malloc(ntr * nf * sizeof(float));
    d->train_y = malloc(ntr * sizeof(int32_t));
    d->test_x = malloc(nte * nf * sizeof(float));
    d->test_y = malloc(nte * sizeof(int32_t));
    int bad = !d->train_x || !d->train_y || !d->test_x || !d->test_y;
    if (!bad)
        bad = read_exact(f, d->train_x, ntr * nf * sizeof(float)) ||
              read_exact(f, d->train_y, ntr * sizeof(int32_t)) ||
              read_exact(f, d->test_x, nte * nf * sizeof(float)) ||
              read_exact(f, d->test_y, nte * sizeof(int32_t)) || fgetc(f) != EOF;
    fclose(f);
    for (size_t i = 0; !bad && i < ntr; i++)
        bad = d->train_y[i] < 0 || d->train_y[i] >= d->classes;
    for (size_t i = 0; !bad && i < nte; i++)
        bad = d->test_y[i] < 0 || d->test_y[i] >= d->classes;
    if (bad) {
        fprintf(stderr, "digits: %s is truncated or corrupt (or out of memory)\n", path);
        digits_free(d);
        return -1;
    }
    return 0;
}

void digits_free(digits_data *d)
{
    free(d->train_x);
    free(d->train_y);
    free(d->test_x);
    free(d->test_y);
    memset(d, 0, sizeof *d);
}

/* ---------------------------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------------------------- */
static void usage(const char *prog)
{
    printf("usage: %s DATA [options]     (DATA: written by scripts/digits_data.py)\n"
           "  --csv FILE          per-epoch loss curve: epoch,train_loss,test_acc,lr\n"
           "  --epochs N          epochs (30)\n"
           "  --hidden N          hidden units (128)\n"
           "  --batch N           mini-batch size (64)\n"
           "  --lr X              peak learning rate (3e-3)\n"
           "  --min-lr X          learning rate at the end of the cosine (0)\n"
           "  --warmup N          linear warmup steps (20)\n"
           "  --weight-decay X    AdamW decay of the weights; biases get none (1e-2)\n"
           "  --seed N            initialisation and batch order (1)\n"
           "  --checkpoint FILE   save parameters, optimizer state, step and epoch here ...\n"
           "  --stop-after N      ... after N epochs, and stop (without it: at the end)\n"
           "  --resume FILE       continue from a checkpoint of the same settings\n"
           "  --quiet             no per-epoch lines\n",
           prog);
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !isfinite(v) || v < 0.0)
        return -1;
    *out = v;
    return 0;
}

static int takes_value(const char *a)
{
    static const char *const names[] = {"--csv",    "--checkpoint", "--resume", "--epochs",
                                         "--hidden", "--batch",      "--warmup", "--stop-after",
                                         "--seed",   "--lr",         "--min-lr", "--weight-decay"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(a, names[i]))
            return 1;
    return 0;
}

/* 0: run; 1: --help was printed; -1: bad arguments (message on stderr). */
static int parse_args(int argc, char **argv, digits_options *o)
{
    const char *prog = argc > 0 ? argv[0] : "digits_mlp";
    memset(o, 0, sizeof *o);
    o->epochs = 30;
    o->hidden = 128;
    o->batch = 64;
    o->warmup = 20;
    o->seed = 1;
    o->lr = 3e-3;
    o->min_lr = 0.0;
    o->weight_decay = 1e-2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0, takes = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(prog);
            return 1;
        } else if (!strcmp(a, "--quiet")) {
            o->quiet = 1;
            takes = 0;
        } else if (a[0] != '-') {
            if (o->data_path) {
                fprintf(stderr, "%s: more than one data file given (see --help)\n", prog);
                return -1;
            }
            o->data_path = a;
            takes = 0;
        } else if (!takes_value(a)) {
            fprintf(stderr, "%s: unknown option %s (see --help)\n", prog, a);
            return -1;
        } else if (!v) {
            bad = 1;
        } else if (!strcmp(a, "--csv")) {
            o->csv_path = v;
        } else if (!strcmp(a, "--checkpoint")) {
            o->checkpoint_path = v;
        } else if (!strcmp(a, "--resume")) {
            o->resume_path = v;
        } else if (!strcmp(a, "--epochs")) {
            bad = parse_int(v, 1, 100000, &o->epochs);
        } else if (!strcmp(a, "--hidden")) {
            bad = parse_int(v, 1, 65536, &o->hidden);
        } else if (!strcmp(a, "--batch")) {
            bad = parse_int(v, 1, 1 << 20, &o->batch);
        } else if (!strcmp(a, "--warmup")) {
            bad = parse_int(v, 0, 1 << 30, &o->warmup);
        } else if (!strcmp(a, "--stop-after")) {
            bad = parse_int(v, 1, 100000, &o->stop_after);
        } else if (!strcmp(a, "--seed")) {
            int s = 0;
            bad = parse_int(v, 0, 0x7fffffff, &s);
            o->seed = (uint64_t)s;
        } else if (!strcmp(a, "--lr")) {
            bad = parse_double(v, &o->lr);
        } else if (!strcmp(a, "--min-lr")) {
            bad = parse_double(v, &o->min_lr);
        } else { /* --weight-decay */
            bad = parse_double(v, &o->weight_decay);
        }
        if (bad) {
            fprintf(stderr, "%s: bad or missing value for %s (see --help)\n", prog, a);
            return -1;
        }
        i += takes;
    }
    if (!o->data_path) {
        fprintf(stderr, "%s: no data file given (see --help)\n", prog);
        return -1;
    }
    if (o->stop_after && (!o->checkpoint_path || o->stop_after >= o->epochs)) {
        fprintf(stderr, "%s: --stop-after N needs --checkpoint FILE and N < --epochs\n", prog);
        return -1;
    }
    return 0;
}

void digits_parse_args(int argc, char **argv, digits_options *o)
{
    int parsed = parse_args(argc, argv, o);
    if (parsed)
        exit(parsed > 0 ? 0 : 2);
}

/* ---------------------------------------------------------------------------------------------
 * Parameters, initialisation, order, schedule
 * ------------------------------------------------------------------------------------------- */
static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

void digits_layout_init(digits_layout *l, int in, int hidden, int out)
{
    l->in = in;
    l->hidden = hidden;
    l->out = out;
    l->w1 = 0;
    l->b1 = l->w1 + round16((size_t)in * hidden);
    l->w2 = l->b1 + round16((size_t)hidden);
    l->b2 = l->w2 + round16((size_t)hidden * out);
    l->total = l->b2 + round16((size_t)out);
}

/* splitmix64: a small, good 64-bit generator; the whole state is one number. */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in (0, 1): 53 random bits, never 0 */
static double uniform01(uint64_t *s)
{
    return ((double)(splitmix64(s) >> 11) + 0.5) / 9007199254740992.0;
}

static double normal(uint64_t *s) /* Box-Muller, one value per call */
{
    double u1 = uniform01(s), u2 = uniform01(s);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void digits_init_params(const digits_layout *l, uint64_t seed, float *params)
{
    uint64_t s = seed ^ 0x5EED0F0D16175ull;
    memset(params, 0, l->total * sizeof(float));
    double std1 = sqrt(2.0 / l->in), std2 = sqrt(1.0 / l->hidden);
    for (size_t i = 0; i < (size_t)l->in * l->hidden; i++)
        params[l->w1 + i] = (float)(std1 * normal(&s));
    for (size_t i = 0; i < (size_t)l->hidden * l->out; i++)
        params[l->w2 + i] = (float)(std2 * normal(&s));
}

void digits_epoch_order(uint64_t seed, int epoch, int n, int32_t *order)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 0xD161757ull +
                 (uint64_t)epoch * 0xA24BAED4963EE407ull;
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = n - 1; i > 0; i--) { /* Fisher-Yates; the modulo bias is negligible here */
        int j = (int)(splitmix64(&s) % (uint64_t)(i + 1));
        int32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

double digits_lr(const digits_options *o, int64_t step, int64_t total)
{
    int64_t warm = o->warmup < total ? o->warmup : 0;
    if (step <= warm)
        return o->lr * (double)step / (double)warm;
    double t = (double)(step - 1 - warm) / (double)(total - warm); /* in [0, 1) */
    return o->min_lr + 0.5 * (o->lr - o->min_lr) * (1.0 + cos(M_PI * t));
}

/* ---------------------------------------------------------------------------------------------
 * The model in plain C. Inner loops run along contiguous rows (axpy form), so they vectorise
 * without reassociating sums.
 * ------------------------------------------------------------------------------------------- */
void digits_forward(const digits_layout *l, const float *params, const float *x, int rows,
                    float *hidden, float *logits)
{
    const int in = l->in, hid = l->hidden, out = l->out;
    const float *w1 = params + l->w1, *b1 = params + l->b1;
    const float *w2 = params + l->w2, *b2 = params + l->b2;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * in;
        float *h = hidden + (size_t)r * hid;
        memcpy(h, b1, (size_t)hid * sizeof(float));
        for (int k = 0; k < in; k++) {
            const float a = xr[k];
            const float *w = w1 + (size_t)k * hid;
            if (a != 0.0f) /* digits are mostly blank pixels */
                for (int j = 0; j < hid; j++)
                    h[j] += a * w[j];
        }
        for (int j = 0; j < hid; j++)
            h[j] = h[j] > 0.0f ? h[j] : 0.0f;
        float *z = logits + (size_t)r * out;
        memcpy(z, b2, (size_t)out * sizeof(float));
        for (int j = 0; j < hid; j++) {
            const float a = h[j];
            const float *w = w2 + (size_t)j * out;
            for (int o = 0; o < out; o++)
                z[o] += a * w[o];
        }
    }
}

void digits_softmax_xent(const float *logits, const int32_t *y, int rows, int classes, float scale,
                         float *loss, float *dlogits)
{
    for (int r = 0; r < rows; r++)
        digits_xent_row(logits + (size_t)r * classes, y[r], classes, scale, &loss[r],
                        dlogits ? dlogits + (size_t)r * classes : NULL);
}

void digits_backward(const digits_layout *l, const float *params, const float *x, int rows,
                     const float *hidden, const float *dlogits, float *dhidden, float *grads)
{
    const int in = l->in, hid = l->hidden, out = l->out;
    const float *w2 = params + l->w2;
    float *gw1 = grads + l->w1, *gb1 = grads + l->b1, *gw2 = grads + l->w2, *gb2 = grads + l->b2;
    memset(grads, 0, l->total * sizeof(float));
    for (int r = 0; r < rows; r++) {
        const float *h = hidden + (size_t)r * hid;
        const float *dz = dlogits + (size_t)r * out;
        float *dh = dhidden + (size_t)r * hid;
        /* layer 2: dW2 += h^T dz, db2 += dz, dh = (dz W2^T) masked by the ReLU */
        for (int j = 0; j < hid; j++) {
            const float a = h[j];
            float *g = gw2 + (size_t)j * out;
            for (int o = 0; o < out; o++)
                g[o] += a * dz[o];
        }
        for (int o = 0; o < out; o++)
            gb2[o] += dz[o];
        for (int j = 0; j < hid; j++) {
            const float *w = w2 + (size_t)j * out;
            float acc = 0.0f;
            for (int o = 0; o < out; o++)
                acc += dz[o] * w[o];
            dh[j] = h[j] > 0.0f ? acc : 0.0f;
        }
        /* layer 1: dW1 += x^T dh, db1 += dh */
        const float *xr = x + (size_t)r * in;
        for (int k = 0; k < in; k++) {
            const float a = xr[k];
            float *g = gw1 + (size_t)k * hid;
            if (a != 0.0f)
                for (int j = 0; j < hid; j++)
                    g[j] += a * dh[j];
        }
        for (int j = 0; j < hid; j++)
            gb1[j] += dh[j];
    }
}

double digits_accuracy(const float *logits, const int32_t *y, int rows, int classes)
{
    int right = 0;
    for (int r = 0; r < rows; r++) {
        const float *z = logits + (size_t)r * classes;
        int best = 0;
        for (int c = 1; c < classes; c++)
            if (z[c] > z[best])
                best = c;
        right += best == y[r];
    }
    return rows ? (double)right / rows : 0.0;
}

uint64_t digits_checksum(const void *data, size_t bytes)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < bytes; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* ---------------------------------------------------------------------------------------------
 * Checkpoints (host byte order), written by digits_train:
 *   ckpt_header                       96 bytes, below
 *   f64 history[epoch][3]             train_loss, test_acc, lr of each epoch done (for the CSV)
 *   f32 params[n_params]              the whole parameter array (layout.total)
 *   u8  state[state_bytes]            the backend's optimizer state (CPU: exp_avg then
 *                                     exp_avg_sq, n_params floats each; GPU: fopt_state_save)
 * A checkpoint resumes only with the same backend kind and the same settings.
 * ------------------------------------------------------------------------------------------- */
#define CKPT_MAGIC "FOPTDCKP"

typedef struct ckpt_header {
    char magic[8];
    uint32_t version; /* 1 */
    uint32_t kind;    /* 1 cpu, 2 gpu */
    uint32_t hidden, batch, epochs, warmup;
    uint32_t epoch; /* epochs done */
    uint32_t pad;
    uint64_t seed, n_params, state_bytes;
    int64_t step; /* optimizer steps done */
    double lr, min_lr, weight_decay;
} ckpt_header;

typedef struct epoch_log {
    double train_loss, test_acc, lr;
} epoch_log;

static uint32_t backend_kind(const digits_backend *b) { return strcmp(b->name, "gpu") ? 1u : 2u; }

static void fill_header(ckpt_header *h, const digits_options *o, const digits_layout *l,
                        const digits_backend *b)
{
    memset(h, 0, sizeof *h);
    memcpy(h->magic, CKPT_MAGIC, 8);
    h->version = 1;
    h->kind = backend_kind(b);
    h->hidden = (uint32_t)o->hidden;
    h->batch = (uint32_t)o->batch;
    h->epochs = (uint32_t)o->epochs;
    h->warmup = (uint32_t)o->warmup;
    h->seed = o->seed;
    h->n_params = l->total;
    h->lr = o->lr;
    h->min_lr = o->min_lr;
    h->weight_decay = o->weight_decay;
}

static int save_checkpoint(const char *path, const ckpt_header *h, const epoch_log *log,
                           const float *params, const void *state)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        fprintf(stderr, "digits: checkpoint path too long\n");
        return -1;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        fprintf(stderr, "digits: cannot write %s\n", tmp);
        return -1;
    }
    int bad = fwrite(h, sizeof *h, 1, f) != 1 ||
              (h->epoch && fwrite(log, sizeof *log, h->epoch, f) != h->epoch) ||
              fwrite(params, sizeof(float), h->n_params, f) != h->n_params ||
              (h->state_bytes && fwrite(state, 1, h->state_bytes, f) != h->state_bytes);
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        fprintf(stderr, "digits: writing the checkpoint %s failed\n", path);
        remove(tmp);
        return -1;
    }
    return 0;
}

/* Reads a checkpoint made with the same settings; *state is malloc'ed (the caller frees it). */
static int load_checkpoint(const char *path, const ckpt_header *want, ckpt_header *h,
                           epoch_log *log, float *params, void **state)
{
    *state = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "digits: cannot open the checkpoint %s\n", path);
        return -1;
    }
    const char *why = NULL;
    if (read_exact(f, h, sizeof *h) || memcmp(h->magic, CKPT_MAGIC, 8) || h->version != 1)
        why = "not a digits checkpoint";
    else if (h->kind != want->kind)
        why = h->kind == 1 ? "made by the CPU example" : "made by the GPU example";
    else if (h->hidden != want->hidden || h->batch != want->batch || h->epochs != want->epochs ||
             h->warmup != want->warmup || h->seed != want->seed || h->n_params != want->n_params ||
             h->lr != want->lr || h->min_lr != want->min_lr ||
             h->weight_decay != want->weight_decay)
        why = "made with other settings (hidden, batch, epochs, warmup, seed, lr, min-lr or "
              "weight-decay differ)";
    else if (h->epoch == 0 || h->epoch > h->epochs || h->state_bytes > ((uint64_t)1 << 32))
        why = "corrupt header";
    else if (h->epoch == h->epochs)
        why = "the run it saved is complete";
    if (!why) {
        *state = malloc(h->state_bytes ? h->state_bytes : 1);
        if (!*state)
            why = "out of memory";
        else if (read_exact(f, log, h->epoch * sizeof *log) ||
                 read_exact(f, params, h->n_params * sizeof(float)) ||
                 read_exact(f, *state, h->state_bytes) || fgetc(f) != EOF)
            why = "truncated or too long";
    }
    fclose(f);
    if (why) {
        fprintf(stderr, "digits: cannot resume from %s: %s\n", path, why);
        free(*state);
        *state = NULL;
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The epoch loop
 * ------------------------------------------------------------------------------------------- */
static double now_ms(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int write_csv_row(FILE *csv, int epoch, const epoch_log *e)
{
    return fprintf(csv, "%d,%.9g,%.6f,%.9g\n", epoch, e->train_loss, e->test_acc, e->lr) < 0;
}

int digits_train(const digits_options *o, const digits_data *d, const digits_layout *l,
                 const digits_backend *b, digits_result *res)
{
    const int steps_per_epoch = (d->n_train + o->batch - 1) / o->batch;
    const int64_t total_steps = (int64_t)steps_per_epoch * o->epochs;
    float *params = malloc(l->total * sizeof(float));
    float *losses = malloc((size_t)d->n_train * sizeof(float));
    float *logits = malloc((size_t)d->n_test * d->classes * sizeof(float));
    int32_t *order = malloc((size_t)d->n_train * sizeof(int32_t));
    epoch_log *log = calloc((size_t)o->epochs, sizeof *log);
    void *state = NULL;
    FILE *csv = NULL;
    int rc = -1, first_epoch = 0;
    int64_t step = 0;
    ckpt_header want, h;
    memset(res, 0, sizeof *res);
    fill_header(&want, o, l, b);
    if (!params || !losses || !logits || !order || !log) {
        fprintf(stderr, "digits: out of memory\n");
        goto done;
    }

    if (o->resume_path) {
        if (load_checkpoint(o->resume_path, &want, &h, log, params, &state) ||
            b->set_params(b->ctx, params) ||
            b->load_state(b->ctx, state, (size_t)h.state_bytes, h.step))
            goto done;
        first_epoch = (int)h.epoch;
        step = h.step;
        printf("%s: resumed from %s after epoch %d (step %lld)\n", b->name, o->resume_path,
               first_epoch, (long long)step);
    } else {
        digits_init_params(l, o->seed, params);
        if (b->set_params(b->ctx, params))
            goto done;
    }
    if (o->csv_path) {
        csv = fopen(o->csv_path, "w");
        if (!csv || fprintf(csv, "epoch,train_loss,test_acc,lr\n") < 0) {
            fprintf(stderr, "digits: cannot write %s\n", o->csv_path);
            goto done;
        }
        for (int e = 0; e < first_epoch; e++)
            if (write_csv_row(csv, e + 1, &log[e]))
                goto csv_failed;
    }

    const int last_epoch = o->stop_after ? o->stop_after : o->epochs;
    double ms_sum = 0.0;
    for (int epoch = first_epoch; epoch < last_epoch; epoch++) {
        double t0 = now_ms(), lr = 0.0;
        digits_epoch_order(o->seed, epoch, d->n_train, order);
        if (b->begin_epoch(b->ctx, order))
            goto done;
        for (int start = 0; start < d->n_train; start += o->batch) {
            int rows = d->n_train - start < o->batch ? d->n_train - start : o->batch;
            lr = digits_lr(o, ++step, total_steps);
            if (b->train_batch(b->ctx, start, rows, step, lr))
                goto done;
        }
        if (b->end_epoch(b->ctx, losses) || b->predict(b->ctx, logits))
            goto done;
        double loss_sum = 0.0; /* in epoch order, in double: the same on every backend */
        for (int i = 0; i < d->n_train; i++)
            loss_sum += losses[i];
        epoch_log *e = &log[epoch];
        e->train_loss = loss_sum / d->n_train;
        e->test_acc = digits_accuracy(logits, d->test_y, d->n_test, d->classes);
        e->lr = lr;
        double ms = now_ms() - t0;
        ms_sum += ms;
        if (!o->quiet)
            printf("%s: epoch %3d  train loss %.6f  test acc %6.2f%%  lr %.3e  (%.1f ms)\n",
                   b->name, epoch + 1, e->train_loss, 100.0 * e->test_acc, e->lr, ms);
        if (csv && write_csv_row(csv, epoch + 1, e))
            goto csv_failed;
        res->epochs_done = epoch + 1;
        res->test_acc = e->test_acc;
        res->train_loss = e->train_loss;
        res->epoch_ms = ms_sum / (epoch + 1 - first_epoch);
    }
    if (first_epoch >= last_epoch) { /* nothing left to train: report the checkpoint's last epoch */
        res->epochs_done = first_epoch;
        res->test_acc = log[first_epoch - 1].test_acc;
        res->train_loss = log[first_epoch - 1].train_loss;
    }

    if (b->get_params(b->ctx, params))
        goto done;
    res->checksum = digits_checksum(params, l->total * sizeof(float));
    res->stopped = o->stop_after != 0;
    if (o->checkpoint_path) {
        ckpt_header out = want;
        out.epoch = (uint32_t)res->epochs_done;
        out.step = step;
        out.state_bytes = b->state_size(b->ctx);
        free(state);
        state = malloc(out.state_bytes ? out.state_bytes : 1);
        if (!state) {
            fprintf(stderr, "digits: out of memory\n");
            goto done;
        }
        if (b->save_state(b->ctx, state, (size_t)out.state_bytes) ||
            save_checkpoint(o->checkpoint_path, &out, log, params, state))
            goto done;
        printf("%s: checkpoint after epoch %d (step %lld) -> %s\n", b->name, res->epochs_done,
               (long long)step, o->checkpoint_path);
    }
    if (csv) {
        int bad = fclose(csv) != 0;
        csv = NULL;
        if (bad)
            goto csv_failed;
    }
    rc = 0;
    goto done;
csv_failed:
    fprintf(stderr, "digits: writing %s failed\n", o->csv_path);
done:
    if (csv)
        fclose(csv);
    free(state);
    free(log);
    free(order);
    free(logits);
    free(losses);
    free(params);
    return rc;
}
