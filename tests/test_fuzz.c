/* Checkpoint loader fuzzing (issue 11): a valid checkpoint of a mixed-precision optimizer (fp32,
 * bf16 and fp16 tensors, fp32 masters, bf16 states, AMSGrad, two groups) is truncated at every
 * length, bit-flipped and byte-edited at seeded random places, has every field of its header
 * edited (with its checksum left stale, and re-sealed with a valid checksum so that the field's
 * own validation must reject it; but the seed, which acts on no tensor of this list and must
 * load), and is replaced by seeded random garbage. Every case is loaded
 * from a heap buffer of exactly its size (so that the sanitizer build sees any read past it): it
 * must be rejected with FOPT_ERROR_INVALID_VALUE and a message, and the optimizer must be
 * unchanged (its checkpoint and step count identical to before). About 22,000 cases; the exact
 * number is logged (cr_log_info, --verbose). Reports SKIP without a device. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "checkpoint.h"
#include "gpu_util.h"

TestSuite(fuzz, .init = gt_require_device);

static void reseal(unsigned char *buf, size_t size)
{
    state_header h;
    memcpy(&h, buf, sizeof h);
    h.checksum = fopt_state_checksum(&h, buf + sizeof h, size - sizeof h);
    memcpy(buf, &h, sizeof h);
}

typedef struct fuzz_ctx {
    fopt_optimizer *opt;
    const unsigned char *valid;
    size_t size;
    unsigned char *before; /* the optimizer's checkpoint before any case */
    int64_t step;
    long cases;
} fuzz_ctx;

/* Loads `len` bytes of `data` from an exact-size heap copy: must be rejected, change nothing. */
static void expect_rejected(fuzz_ctx *c, const unsigned char *data, size_t len, const char *what, long index)
{
    unsigned char *buf = malloc(len ? len : 1);
    cr_assert_not_null(buf);
    if (len)
        memcpy(buf, data, len);
    fopt_status st = fopt_state_load(c->opt, len ? buf : buf, len);
    free(buf);
    cr_assert_eq(st, FOPT_ERROR_INVALID_VALUE, "%s (case %ld, %zu bytes): %s", what, index, len,
                 st == FOPT_SUCCESS ? "accepted" : fopt_status_string(st));
    cr_assert(fopt_last_error()[0] != '\0', "%s: no message", what);
    size_t n;
    unsigned char *now = gt_save(c->opt, &n);
    cr_assert_eq(memcmp(now, c->before, n), 0, "%s (case %ld): the state changed", what, index);
    free(now);
    cr_assert_eq(fopt_step_count(c->opt), c->step, "%s (case %ld): the step count changed", what, index);
    c->cases++;
}

static const gt_spec fuzz_list[] = {{5, FOPT_FLOAT32, 0, 0}, {37, FOPT_BFLOAT16, 1, 1}, {8, FOPT_FLOAT16, 0, 0}};

static gt_problem *fuzz_problem(void)
{
    gt_cfg cfg = gt_adamw();
    *gt_precision(&cfg) = (fopt_precision){FOPT_BFLOAT16, true, false, false, 0};
    gt_problem *p = gt_problem_make(&cfg, fuzz_list, 3, 17, true);
    FOPT_OK(fopt_set_group_lr(p->opt, 1, 3e-3));
    FOPT_OK(fopt_set_group_weight_decay(p->opt, 1, 0.2));
    for (int s = 0; s < 3; s++) {
        gt_new_grads(p);
        FOPT_OK(fopt_step(p->opt, 0));
    }
    return p;
}

typedef struct field {
    const char *name;
    size_t offset, size;
} field;

#define FIELD(f) {#f, offsetof(state_header, f), sizeof(((state_header *)0)->f)}
static const field fields[] = {
    FIELD(magic), FIELD(version), FIELD(header_bytes), FIELD(kind), FIELD(states), FIELD(state_dtype),
    FIELD(precision), FIELD(seed), FIELD(tensor_count), FIELD(list_hash), FIELD(shard_begin),
    FIELD(shard_end), FIELD(state_bytes), FIELD(step),
    FIELD(group_count), FIELD(pad_), FIELD(lr), FIELD(wd), FIELD(checksum),
};

/* Invalid values of each field (re-sealed, so only the field's own check can reject them). */
static void sealed_field_edits(fuzz_ctx *c, unsigned char *buf)
{
    const state_header *v = (const state_header *)(const void *)c->valid;
    state_header h;
#define SEALED(stmt, what)                                                                         \
    do {                                                                                           \
        memcpy(buf, c->valid, c->size);                                                            \
        memcpy(&h, buf, sizeof h);                                                                 \
        stmt;                                                                                      \
        memcpy(buf, &h, sizeof h);                                                                 \
        reseal(buf, c->size);                                                                      \
        expect_rejected(c, buf, c->size, "re-sealed " what, c->cases);                             \
    } while (0)
    SEALED(h.magic[0] = 'X', "magic");
    SEALED(h.magic[7] = 0, "magic");
    SEALED(h.version++, "version + 1");
    SEALED(h.version--, "version - 1");
    SEALED(h.version = 0, "version 0");
    SEALED(h.header_bytes++, "header_bytes + 1");
    SEALED(h.header_bytes = 0, "header_bytes 0");
    SEALED(h.kind = 2, "kind RMSprop");
    SEALED(h.kind = 0, "kind 0");
    SEALED(h.kind = 77, "kind 77");
    SEALED(h.states = 3, "states without amsgrad");
    SEALED(h.states = 0, "states 0");
    SEALED(h.states = 0xff, "states 0xff");
    SEALED(h.state_dtype = FOPT_FLOAT32, "state dtype fp32");
    SEALED(h.state_dtype = FOPT_FLOAT16, "state dtype fp16");
    SEALED(h.state_dtype = 9, "state dtype 9");
    SEALED(h.precision = 0, "precision: no master");
    SEALED(h.precision = 3, "precision: remainders");
    SEALED(h.precision = 5, "precision: stochastic rounding");
    SEALED(h.precision = 0xffffffffu, "precision: every bit");
    SEALED(h.precision = 6, "precision: remainders without master weights");
    SEALED(h.precision = 8, "precision: an unknown bit");
    /* The seed acts on no tensor of this list (its bf16 params have masters: no stochastic
     * rounding), so another seed is no damage: such a checkpoint loads (issue 16). */
    const uint64_t seeds[] = {1, UINT64_MAX};
    for (size_t i = 0; i < 2; i++) {
        memcpy(buf, c->valid, c->size);
        memcpy(&h, buf, sizeof h);
        h.seed = seeds[i];
        memcpy(buf, &h, sizeof h);
        reseal(buf, c->size);
        cr_assert_eq(fopt_state_load(c->opt, buf, c->size), FOPT_SUCCESS, "re-sealed seed %llu: %s",
                     (unsigned long long)seeds[i], fopt_last_error());
        size_t n;
        unsigned char *now = gt_save(c->opt, &n);
        cr_assert_eq(memcmp(now, c->before, n), 0, "re-sealed seed %llu: the state changed", (unsigned long long)seeds[i]);
        free(now);
    }
    SEALED(h.tensor_count++, "tensor_count + 1");
    SEALED(h.tensor_count--, "tensor_count - 1");
    SEALED(h.tensor_count = UINT64_MAX, "tensor_count max");
    SEALED(h.list_hash ^= 1, "list_hash ^ 1");
    SEALED(h.list_hash = 0, "list_hash 0");
    SEALED(h.shard_begin = 8, "shard_begin 8");
    SEALED(h.shard_end -= 8, "shard_end - 8");
    SEALED(h.shard_end = UINT64_MAX, "shard_end max");
    SEALED(h.shard_begin = h.shard_end, "an empty range");
    SEALED(h.state_bytes += 8, "state_bytes + 8");
    SEALED(h.state_bytes -= 8, "state_bytes - 8");
    SEALED(h.state_bytes = 0, "state_bytes 0");
    SEALED(h.state_bytes = UINT64_MAX, "state_bytes max");
    SEALED(h.state_bytes = (uint64_t)1 << 62, "state_bytes 2^62");
    SEALED(h.step = -1, "step -1");
    SEALED(h.step = INT64_MIN, "step min");
    SEALED(h.group_count = 1, "group_count 1");
    SEALED(h.group_count = 3, "group_count 3");
    SEALED(h.group_count = 0, "group_count 0");
    SEALED(h.group_count = UINT32_MAX, "group_count max");
    const uint32_t groups[] = {0, 1, 2, FOPT_MAX_GROUPS - 1};
    const double bad[] = {NAN, -NAN, -1e-3, INFINITY, -INFINITY, 1e39, -0.5};
    for (size_t g = 0; g < 4; g++)
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            SEALED(h.lr[groups[g]] = bad[b], "lr");
            if (bad[b] != 1e39) /* a valid AdamW weight decay while lr*wd fits a float */
                SEALED(h.wd[groups[g]] = bad[b], "weight decay");
        }
    SEALED(h.wd[1] = 1e300, "weight decay overflowing 1 - lr*wd");
    SEALED(h.wd[FOPT_MAX_GROUPS - 1] = 1e300, "weight decay overflowing 1 - lr*wd (unused group)");
    (void)v;
#undef SEALED
}

/* `count` copies of the valid checkpoint, each with 1 to max_edits random edits: a bit flipped
 * anywhere (flip), or a byte set to a random value (in the header for even copies); copies whose
 * edits undid each other are skipped. */
static void random_edits(fuzz_ctx *c, unsigned char *buf, test_rng *r, int count, int max_edits, bool flip,
                         const char *what)
{
    for (int i = 0; i < count; i++) {
        memcpy(buf, c->valid, c->size);
        int edits = 1 + (int)(test_rng_next(r) % (uint64_t)max_edits);
        for (int e = 0; e < edits; e++) {
            if (flip) {
                size_t bit = test_rng_next(r) % (c->size * 8);
                buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            } else {
                size_t at = test_rng_next(r) % (i % 2 ? c->size : sizeof(state_header));
                buf[at] = (unsigned char)test_rng_next(r);
            }
        }
        if (memcmp(buf, c->valid, c->size) != 0)
            expect_rejected(c, buf, c->size, what, i);
    }
}

Test(fuzz, the_loader_rejects_every_damaged_checkpoint_and_changes_nothing)
{
    gt_problem *p = fuzz_problem();
    size_t size;
    unsigned char *valid = gt_save(p->opt, &size);
    cr_assert_gt(size, sizeof(state_header));
    /* the replica is faithful: re-sealing the valid checkpoint changes nothing */
    unsigned char *buf = malloc(2 * size + 64);
    cr_assert_not_null(buf);
    memcpy(buf, valid, size);
    reseal(buf, size);
    cr_assert_eq(memcmp(buf, valid, size), 0, "re-sealing the valid checkpoint changed it");

    fuzz_ctx c = {p->opt, valid, size, NULL, 0, 0};
    c.before = gt_save(p->opt, &size);
    c.step = fopt_step_count(p->opt);
    test_rng r = test_rng_make(20261127);
    long counts[6] = {0};
    long mark = 0;

    /* 1. every truncation */
    for (size_t len = 0; len < size; len++)
        expect_rejected(&c, valid, len, "truncated", (long)len);
    counts[0] = c.cases - mark;
    mark = c.cases;

    /* 2. random bit flips (1 to 3 bits) anywhere */
    random_edits(&c, buf, &r, 10000, 3, true, "bit flip");
    counts[1] = c.cases - mark;
    mark = c.cases;

    /* 3. random byte edits (1 to 8 bytes set to random values), half of them in the header */
    random_edits(&c, buf, &r, 5000, 8, false, "byte edit");
    counts[2] = c.cases - mark;
    mark = c.cases;

    /* 4. every header field edited with a stale checksum: its first byte, its last byte, all 0xff,
     *    all 0; then invalid values re-sealed */
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        const field *fd = &fields[f];
        for (int how = 0; how < 4; how++) {
            memcpy(buf, valid, size);
            if (how == 0)
                buf[fd->offset] ^= 0x01;
            else if (how == 1)
                buf[fd->offset + fd->size - 1] ^= 0x80;
            else
                memset(buf + fd->offset, how == 2 ? 0xff : 0x00, fd->size);
            if (memcmp(buf, valid, size) == 0)
                continue;
            expect_rejected(&c, buf, size, fd->name, how);
        }
        /* and every 8-byte word of the lr and wd arrays */
        if (fd->size > 8)
            for (size_t w = 0; w < fd->size; w += 8) {
                memcpy(buf, valid, size);
                buf[fd->offset + w + 3] ^= 0x10;
                expect_rejected(&c, buf, size, fd->name, (long)w);
            }
    }
    sealed_field_edits(&c, buf);
    counts[3] = c.cases - mark;
    mark = c.cases;

    /* 5. payload words edited (the checksum covers the state and the master) */
    for (size_t at = sizeof(state_header); at < size; at += 7) {
        memcpy(buf, valid, size);
        buf[at] ^= 0x04;
        expect_rejected(&c, buf, size, "payload byte", (long)at);
    }
    counts[4] = c.cases - mark;
    mark = c.cases;

    /* 6. random garbage of random lengths: plain, behind a valid magic/version/size prefix, and
     *    behind the whole valid header */
    for (int i = 0; i < 5000; i++) {
        size_t len = test_rng_next(&r) % (2 * size + 1);
        for (size_t j = 0; j < len; j++)
            buf[j] = (unsigned char)test_rng_next(&r);
        int kind = i % 4;
        if (kind == 1 && len >= 16)
            memcpy(buf, valid, 16);
        else if (kind == 2 && len >= sizeof(state_header))
            memcpy(buf, valid, sizeof(state_header));
        else if (kind == 3 && len >= 16) { /* a valid prefix and a re-sealed header over garbage */
            memcpy(buf, valid, len < sizeof(state_header) ? 16 : sizeof(state_header));
            if (len >= sizeof(state_header)) {
                state_header h;
                memcpy(&h, buf, sizeof h);
                h.checksum = fopt_state_checksum(&h, buf + sizeof h, len - sizeof h);
                memcpy(buf, &h, sizeof h);
                if (len == size)
                    continue; /* a well-formed checkpoint of garbage state: not a rejection case */
            }
        }
        expect_rejected(&c, buf, len, "garbage", i);
    }
    counts[5] = c.cases - mark;

    /* the valid checkpoint itself still loads, and NULL/size edge cases are rejected */
    FOPT_OK(fopt_state_load(p->opt, valid, size));
    cr_expect_eq(fopt_state_load(p->opt, NULL, size), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_state_load(NULL, valid, size), FOPT_ERROR_INVALID_VALUE);
    cr_log_info("fuzz: %ld cases: %ld truncations, %ld bit flips, %ld byte edits, %ld header field edits, "
                "%ld payload edits, %ld garbage buffers (checkpoint of %zu bytes)",
                c.cases, counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], size);
    cr_expect_gt(c.cases, 20000);
    gt_expect_no_host_leaks("fuzz");
    free(c.before);
    free(buf);
    free(valid);
    gt_problem_free(p);
}
