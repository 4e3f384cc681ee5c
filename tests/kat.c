/* Loader of the known-answer table (tests/kat.h). */
#define _POSIX_C_SOURCE 200809L /* strtok_r, strdup */
#include "kat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "mixed.h"

typedef struct kat_table {
    kat_row *rows;
    char (*kinds)[16];
    size_t count;
} kat_table;

/* One line without its comment: kind, inputs, ':', outputs. Returns 0 for a blank line. */
static int parse_line(char *s, int line, kat_row *r, char kind[16])
{
    char *hash = strchr(s, '#');
    if (hash)
        *hash = '\0';
    size_t len = strlen(s);
    while (len && (s[len - 1] == '\n' || s[len - 1] == ' ' || s[len - 1] == '\r'))
        s[--len] = '\0';
    char *save = NULL, *tok = strtok_r(s, " ", &save);
    if (!tok)
        return 0;
    cr_assert_lt(strlen(tok), 16, "kat.txt:%d: kind '%s'", line, tok);
    strcpy(kind, tok);
    memset(r, 0, sizeof *r);
    r->line = line;
    int outputs = 0;
    while ((tok = strtok_r(NULL, " ", &save))) {
        if (strcmp(tok, ":") == 0) {
            cr_assert(!outputs, "kat.txt:%d: two ':'", line);
            outputs = 1;
            continue;
        }
        char *end;
        uint64_t v = strtoull(tok, &end, 16);
        cr_assert(*tok && !*end, "kat.txt:%d: field '%s' is not hexadecimal", line, tok);
        int *n = outputs ? &r->nout : &r->nin;
        cr_assert_lt(*n, KAT_MAX_FIELDS, "kat.txt:%d: too many fields", line);
        (outputs ? r->out : r->in)[(*n)++] = v;
    }
    cr_assert(outputs && r->nout > 0, "kat.txt:%d: no outputs", line);
    return 1;
}

/* The rows grouped by kind (each kind's rows in file order), once. */
static void group_by_kind(kat_table *t)
{
    kat_row *rows = malloc(t->count * sizeof *rows);
    char(*kinds)[16] = malloc(t->count * sizeof *kinds);
    char *taken = calloc(t->count, 1);
    cr_assert(rows && kinds && taken);
    size_t n = 0;
    for (size_t i = 0; i < t->count; i++)
        for (size_t j = i; j < t->count && !taken[i]; j++)
            if (!taken[j] && strcmp(t->kinds[j], t->kinds[i]) == 0) {
                taken[j] = 1;
                rows[n] = t->rows[j];
                strcpy(kinds[n++], t->kinds[j]);
            }
    free(taken), free(t->rows), free(t->kinds);
    t->rows = rows;
    t->kinds = kinds;
}

static const kat_table *kat_load(void)
{
    static kat_table t;
    if (t.rows)
        return &t;
    const char *path = FOPT_TEST_DATA_DIR "/kat.txt";
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s (scripts/kat_gen.py writes it)", path);
    char buf[4096];
    size_t cap = 0;
    int line = 0;
    while (fgets(buf, sizeof buf, f)) {
        line++;
        cr_assert(strchr(buf, '\n') || feof(f), "kat.txt:%d: line too long", line);
        char copy[sizeof buf];
        strcpy(copy, buf);
        kat_row r;
        char kind[16];
        if (!parse_line(buf, line, &r, kind))
            continue;
        if (t.count == cap) {
            cap = cap ? 2 * cap : 1024;
            t.rows = realloc(t.rows, cap * sizeof *t.rows);
            t.kinds = realloc(t.kinds, cap * sizeof *t.kinds);
            cr_assert(t.rows && t.kinds);
        }
        copy[strcspn(copy, "\n")] = '\0';
        r.text = strdup(copy);
        strcpy(t.kinds[t.count], kind);
        t.rows[t.count++] = r;
    }
    fclose(f);
    group_by_kind(&t);
    return &t;
}

const kat_row *kat_rows(const char *kind, int nin, int nout, size_t min_rows, size_t *count)
{
    const kat_table *t = kat_load();
    size_t first = 0, n = 0;
    while (first < t->count && strcmp(t->kinds[first], kind) != 0)
        first++;
    while (first + n < t->count && strcmp(t->kinds[first + n], kind) == 0) {
        const kat_row *r = &t->rows[first + n++];
        cr_assert((nin < 0 || r->nin == nin) && r->nout == nout, "kat.txt:%d: %s has %d inputs and %d outputs, "
                  "want %d and %d", r->line, kind, r->nin, r->nout, nin, nout);
    }
    cr_assert_geq(n, min_rows, "kat.txt: %zu rows of kind %s, want at least %zu", n, kind, min_rows);
    *count = n;
    return t->rows + first;
}

uint32_t kat_f32_bits(float x) { return mx_bits(x); }

float kat_f32(uint64_t bits) { return mx_float((uint32_t)bits); }

/* A union reads the other member's bytes (C11 6.5.2.3). */
typedef union kat_f64_pun {
    double d;
    uint64_t u;
} kat_f64_pun;

uint64_t kat_f64_bits(double x) { return (kat_f64_pun){.d = x}.u; }

double kat_f64(uint64_t bits) { return (kat_f64_pun){.u = bits}.d; }

/* The grads of a sqsum row: xorshift32 from the seed, one step per element across the list; sign,
 * exponent 96 + 6 bits, significand (scripts/kat_gen.py). */
void kat_sqsum_make(const kat_row *r, kat_sqsum *out)
{
    cr_assert_geq(r->nin, 3, "kat.txt:%d", r->line);
    const uint64_t pairs = r->in[2];
    cr_assert_eq(r->nin, 3 + 2 * (int)pairs, "kat.txt:%d: sqsum with %d fields for %llu pairs", r->line, r->nin,
                 (unsigned long long)pairs);
    memset(out, 0, sizeof *out);
    for (uint64_t p = 0; p < pairs; p++)
        out->count += r->in[3 + 2 * p];
    out->tensors = calloc(out->count, sizeof *out->tensors);
    cr_assert_not_null(out->tensors);
    uint32_t x = (uint32_t)r->in[0];
    size_t k = 0;
    for (uint64_t p = 0; p < pairs; p++)
        for (uint64_t c = 0; c < r->in[3 + 2 * p]; c++, k++) {
            const size_t n = r->in[4 + 2 * p];
            float *g = malloc((n ? n : 1) * sizeof *g);
            cr_assert_not_null(g);
            for (size_t i = 0; i < n; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                g[i] = kat_f32((x & 0x80000000u) | ((96u + ((x >> 23) & 63u)) << 23) | (x & 0x7fffffu));
            }
            out->tensors[k] = (fopt_host_tensor){.param = g, .grad = g, .numel = n, .dtype = FOPT_FLOAT32};
        }
    out->scale_value = kat_f32(r->in[1]);
    out->scale = r->in[1] ? &out->scale_value : NULL;
    out->want = kat_f64(r->out[0]);
}

void kat_sqsum_free(kat_sqsum *s)
{
    for (size_t k = 0; k < s->count; k++)
        free(s->tensors[k].param);
    free(s->tensors);
    s->tensors = NULL;
}
