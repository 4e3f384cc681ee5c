/* The device-independent half of the digits MLP example (digits_mlp.c on the CPU,
 * digits_mlp_gpu.cu on the GPU): the data file, the model's layout and initialisation, the sample
 * order, the learning-rate schedule, the model's forward and backward pass in plain C (the CPU
 * front end trains with it, the GPU front end checks its gradients against it), checkpoints, and
 * the training driver that runs the epochs over a device's backend.
 *
 * Model: 64 inputs -> hidden units (ReLU) -> 10 logits, softmax cross-entropy, mean over the batch.
 * Row-major matrices, weights stored [in][out] (y = x W + b), all parameters in one float array:
 * W1 [64][hidden], b1 [hidden], W2 [hidden][10], b2 [10], each starting on a 64-byte boundary. */
#ifndef DIGITS_COMMON_H
#define DIGITS_COMMON_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- data: the file written by scripts/digits_data.py ---- */
typedef struct digits_data {
    int n_train, n_test, features, classes;
    float *train_x;   /* [n_train][features], in [0, 1] */
    int32_t *train_y; /* [n_train], in [0, classes) */
    float *test_x;    /* [n_test][features] */
    int32_t *test_y;  /* [n_test] */
} digits_data;

/* Reads and checks the file; 0 on success, -1 with a message on stderr. */
int digits_load(const char *path, digits_data *d);
void digits_free(digits_data *d);

/* ---- options (shared command line) ---- */
typedef struct digits_options {
    const char *data_path;       /* the data file (first positional argument) */
    const char *csv_path;        /* --csv: per-epoch loss curve, NULL = none */
    const char *checkpoint_path; /* --checkpoint: saved after --stop-after epochs (or at the end) */
    const char *resume_path;     /* --resume: continue from this checkpoint */
    int epochs, hidden, batch, warmup, stop_after;
    uint64_t seed;
    double lr, min_lr, weight_decay;
    int quiet; /* --quiet: no per-epoch lines */
} digits_options;

/* Fills o from argv. --help prints the usage and exits with status 0, bad arguments print a
 * message to stderr and exit with status 2. */
void digits_parse_args(int argc, char **argv, digits_options *o);

/* ---- parameters ---- */
typedef struct digits_layout {
    int in, hidden, out;
    size_t w1, b1, w2, b2; /* offsets in the parameter array, multiples of 16 floats */
    size_t total;          /* floats in the array, padding included (padding stays 0) */
} digits_layout;

void digits_layout_init(digits_layout *l, int in, int hidden, int out);

/* Deterministic initialisation from the seed: W1 ~ N(0, 2/in) (He, for the ReLU layer),
 * W2 ~ N(0, 1/hidden), biases and padding 0. */
void digits_init_params(const digits_layout *l, uint64_t seed, float *params);

/* The sample order of one epoch: a permutation of 0..n-1 that depends only on (seed, epoch),
 * so a resumed run sees the same batches. */
void digits_epoch_order(uint64_t seed, int epoch, int n, int32_t *order);

/* Learning rate of optimizer step `step` (1-based) out of `total`: linear warmup over the first
 * o->warmup steps, then a cosine from o->lr down to o->min_lr. */
double digits_lr(const digits_options *o, int64_t step, int64_t total);

/* ---- the model in plain C (the CPU front end, and the GPU front end's gradient check) ---- */

/* hidden[rows][H] = relu(x W1 + b1), logits[rows][10] = hidden W2 + b2. */
void digits_forward(const digits_layout *l, const float *params, const float *x, int rows,
                    float *hidden, float *logits);

#ifdef __CUDACC__
#define DIGITS_HOST_DEVICE __host__ __device__
#else
#define DIGITS_HOST_DEVICE
#endif

/* Softmax cross-entropy of one row of logits z: *loss = logsumexp(z) - z[label], and, when dz is
 * not NULL, dz = (softmax(z) - onehot(label)) * scale. The CPU loop and the GPU kernel both call
 * it. */
static inline DIGITS_HOST_DEVICE void digits_xent_row(const float *z, int32_t label, int classes,
                                                      float scale, float *loss, float *dz)
{
    float m = z[0];
    for (int c = 1; c < classes; c++)
        m = z[c] > m ? z[c] : m;
    float sum = 0.0f;
    for (int c = 0; c < classes; c++)
        sum += expf(z[c] - m);
    *loss = logf(sum) - (z[label] - m);
    if (dz)
        for (int c = 0; c < classes; c++)
            dz[c] = (expf(z[c] - m) / sum - (c == label ? 1.0f : 0.0f)) * scale;
}

/* digits_xent_row() over rows: loss[rows], dlogits[rows][classes] (or NULL), scale = 1/rows for
 * a batch mean. */
void digits_softmax_xent(const float *logits, const int32_t *y, int rows, int classes, float scale,
                         float *loss, float *dlogits);

/* Gradients of every parameter (the whole array is written, padding 0) from the forward pass's
 * hidden activations and dlogits; dhidden is [rows][H] scratch. */
void digits_backward(const digits_layout *l, const float *params, const float *x, int rows,
                     const float *hidden, const float *dlogits, float *dhidden, float *grads);

/* Share of rows whose largest logit (first one on ties) is the label. */
double digits_accuracy(const float *logits, const int32_t *y, int rows, int classes);

/* FNV-1a over bytes: the parameter checksum printed at the end. */
uint64_t digits_checksum(const void *data, size_t bytes);

/* ---- the training driver ----
 * A backend owns the parameters, gradients and optimizer state on its device. Every callback
 * returns 0, or -1 after printing what failed. */
typedef struct digits_backend {
    const char *name; /* "cpu" or "gpu": printed, and a checkpoint only resumes on its own kind */
    void *ctx;
    /* the epoch's sample order (n_train entries) before its batches */
    int (*begin_epoch)(void *ctx, const int32_t *order);
    /* one optimizer step (step counts from 1) at lr on the samples order[start .. start+rows):
     * forward, loss, backward, AdamW over both parameter groups */
    int (*train_batch)(void *ctx, int start, int rows, int64_t step, double lr);
    /* after the epoch's batches: each sample's training loss, in epoch order (n_train floats) */
    int (*end_epoch)(void *ctx, float *losses);
    /* the test set's logits, [n_test][classes] */
    int (*predict)(void *ctx, float *logits);
    int (*get_params)(void *ctx, float *params); /* layout.total floats, to the host */
    int (*set_params)(void *ctx, const float *params);
    /* the optimizer state as bytes (a checkpoint holds them after the parameters) */
    size_t (*state_size)(void *ctx);
    int (*save_state)(void *ctx, void *buf, size_t size);
    int (*load_state)(void *ctx, const void *buf, size_t size, int64_t step);
} digits_backend;

typedef struct digits_result {
    int epochs_done;     /* epochs trained in all (those before a resume included) */
    int stopped;         /* 1 when --stop-after ended the run early (checkpoint written) */
    double test_acc;     /* after the last epoch trained */
    double train_loss;   /* mean training loss of the last epoch */
    double epoch_ms;     /* mean wall time of the epochs trained by this process */
    uint64_t checksum;   /* of the final parameters */
} digits_result;

/* Initialises the parameters (or resumes from o->resume_path), trains the epochs, prints a line
 * per epoch, writes the CSV and the checkpoint. 0 on success, -1 on failure. */
int digits_train(const digits_options *o, const digits_data *d, const digits_layout *l,
                 const digits_backend *b, digits_result *res);

#ifdef __cplusplus
}
#endif

#endif /* DIGITS_COMMON_H */
