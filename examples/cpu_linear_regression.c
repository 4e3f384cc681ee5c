/* Fits y = W x + b to noisy synthetic data with AdamW on the fast CPU path: the shape of a
 * training loop (forward, loss, backward, optimizer step) around fopt_adam_step_cpu().
 * Exits 0 when the loss fell below 1% of its start. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fusedopt.h"

enum { IN = 16, OUT = 4, BATCH = 256, STEPS = 300 };

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / 16777216.0f * 2.0f - 1.0f;
}

int main(void)
{
    unsigned seed = 1;
    static float x[BATCH][IN], y[BATCH][OUT], true_w[OUT][IN];
    for (int o = 0; o < OUT; o++)
        for (int i = 0; i < IN; i++)
            true_w[o][i] = frand(&seed);
    for (int n = 0; n < BATCH; n++) {
        for (int i = 0; i < IN; i++)
            x[n][i] = frand(&seed);
        for (int o = 0; o < OUT; o++) {
            float acc = 0.5f * (float)o + 0.01f * frand(&seed);
            for (int i = 0; i < IN; i++)
                acc += true_w[o][i] * x[n][i];
            y[n][o] = acc;
        }
    }

    /* Parameters W (OUT*IN) and b (OUT) in one array, like a flattened parameter list. */
    enum { P = OUT * IN + OUT };
    float param[P] = {0}, grad[P], exp_avg[P] = {0}, exp_avg_sq[P] = {0};
    fopt_adam_config cfg = fopt_adam_config_default();
    cfg.lr = 5e-2;
    cfg.decoupled_weight_decay = true; /* AdamW */
    cfg.weight_decay = 1e-4;

    float first = 0.0f, loss = 0.0f;
    for (int step = 1; step <= STEPS; step++) {
        memset(grad, 0, sizeof grad);
        loss = 0.0f;
        for (int n = 0; n < BATCH; n++)
            for (int o = 0; o < OUT; o++) {
                float pred = param[OUT * IN + o];
                for (int i = 0; i < IN; i++)
                    pred += param[o * IN + i] * x[n][i];
                float err = pred - y[n][o];
                loss += err * err / BATCH;
                for (int i = 0; i < IN; i++)
                    grad[o * IN + i] += 2.0f * err * x[n][i] / BATCH;
                grad[OUT * IN + o] += 2.0f * err / BATCH;
            }
        if (step == 1)
            first = loss;
        if (step % 50 == 0 || step == 1)
            printf("step %3d  loss %.6f\n", step, loss);
        fopt_status st = fopt_adam_step_cpu(&cfg, step, P, param, grad, exp_avg, exp_avg_sq, NULL);
        if (st != FOPT_SUCCESS) {
            fprintf(stderr, "step failed: %s\n", fopt_last_error());
            return 1;
        }
    }
    printf("loss %.6f -> %.6f (%s, %d threads)\n", first, loss, fopt_cpu_isa(), fopt_cpu_threads());
    return loss < 0.01f * first ? 0 : 1;
}
