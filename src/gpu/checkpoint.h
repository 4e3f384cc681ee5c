/* The checkpoint format of checkpoint.c: the header that precedes the state bytes, and its
 * checksum (the checkpoint fuzz test edits headers and re-seals them with it). */
#ifndef FUSEDOPT_CHECKPOINT_H
#define FUSEDOPT_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "fusedopt.h"

typedef struct state_header {
    char magic[8];         /* "FOPTSTAT" */
    uint32_t version;      /* FOPT_VERSION_NUMBER of the writer */
    uint32_t header_bytes; /* sizeof(state_header) */
    uint32_t kind;         /* fopt_kind */
    uint32_t states;       /* state slot bits */
    uint32_t state_dtype;  /* precision.state_dtype */
    uint32_t precision;    /* bit 0 master_weights, 1 master_remainder, 2 stochastic_rounding */
    uint64_t seed;
    uint64_t tensor_count;
    uint64_t list_hash;
    uint64_t shard_begin;  /* the elements [shard_begin, shard_end) of the list's concatenation */
    uint64_t shard_end;
    uint64_t state_bytes;
    int64_t step;
    uint32_t group_count;
    uint32_t pad_;
    double lr[FOPT_MAX_GROUPS];
    double wd[FOPT_MAX_GROUPS];
    uint64_t checksum;     /* of this header (with checksum 0) and the payload */
} state_header;

/* The checksum of header h (its checksum field taken as 0) and the n payload bytes after it. */
uint64_t fopt_state_checksum(const state_header *h, const void *payload, size_t n);

#endif
