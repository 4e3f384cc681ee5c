/* The GPU optimizer object: binds tensors, owns the device state and the multi-tensor table, and
 * launches one fused kernel per step.
 *
 * Device memory per optimizer: one allocation for all state buffers (zeroed at creation), one for
 * the table (entries + chunks, built once on the host). Every CUDA failure becomes an fopt_status
 * with the call, file and line kept for fopt_last_error(); nothing ever exits the process. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "launch.h"
#include "table.h"

enum { KIND_ADAM = 1, KIND_RMSPROP = 2 };

struct fopt_optimizer {
    int kind;
    fopt_adam_config adam;
    fopt_rmsprop_config rmsprop;
    unsigned state_mask;
    int device;
    int64_t step;
    size_t tensor_count;
    uint64_t numel_hash; /* identifies the tensor list in checkpoints */
    float *state;        /* device: fopt_state_count(state_mask) buffers */
    size_t state_bytes;
    void *table_memory; /* device: entries then chunks */
    fopt_table table;   /* points into table_memory */
};

/* ---- CUDA errors ---------------------------------------------------------------------------- */

static fopt_status cuda_fail(cudaError_t err, const char *call, const char *file, int line)
{
    (void)cudaGetLastError(); /* clear a non-sticky error so the caller's next call is clean */
    fopt_status st = FOPT_ERROR_CUDA;
    if (err == cudaErrorMemoryAllocation)
        st = FOPT_ERROR_OUT_OF_MEMORY;
    else if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver)
        st = FOPT_ERROR_NO_DEVICE;
    return fopt_fail(st, "%s failed at %s:%d: %s (%s)", call, file, line, cudaGetErrorString(err),
                     cudaGetErrorName(err));
}

/* Evaluates a CUDA call; on failure records it and jumps to `fail` with `status` set. */
#define FOPT_CUDA_TRY(expr)                                                                        \
    do {                                                                                           \
        cudaError_t fopt_err_ = (expr);                                                            \
        if (fopt_err_ != cudaSuccess) {                                                            \
            status = cuda_fail(fopt_err_, #expr, __FILE__, __LINE__);                              \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

/* Makes the optimizer's device current for the duration of a call. */
typedef struct device_scope {
    int previous;
    int switched;
} device_scope;

static fopt_status device_enter(const fopt_optimizer *opt, device_scope *scope)
{
    fopt_status status = FOPT_SUCCESS;
    scope->switched = 0;
    FOPT_CUDA_TRY(cudaGetDevice(&scope->previous));
    if (scope->previous != opt->device) {
        FOPT_CUDA_TRY(cudaSetDevice(opt->device));
        scope->switched = 1;
    }
    return FOPT_SUCCESS;
fail:
    return status;
}

static void device_leave(const device_scope *scope)
{
    if (scope->switched)
        (void)cudaSetDevice(scope->previous);
}

/* ---- creation ------------------------------------------------------------------------------- */

static uint64_t hash_bytes(uint64_t h, const void *data, size_t n)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull; /* FNV-1a */
    return h;
}

static uint64_t numel_hash(const fopt_tensor *tensors, size_t count)
{
    uint64_t h = 0xcbf29ce484222325ull;
    uint64_t c = count;
    h = hash_bytes(h, &c, sizeof c);
    for (size_t k = 0; k < count; k++) {
        uint64_t n = tensors[k].numel;
        h = hash_bytes(h, &n, sizeof n);
    }
    return h;
}

static fopt_status check_tensors(const fopt_tensor *tensors, size_t count)
{
    if (!tensors)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensors is NULL");
    if (count == 0)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "the tensor list is empty");
    for (size_t k = 0; k < count; k++) {
        const fopt_tensor *t = &tensors[k];
        if (t->dtype == FOPT_FLOAT16 || t->dtype == FOPT_BFLOAT16)
            return fopt_fail(FOPT_ERROR_NOT_SUPPORTED,
                             "tensor %zu: float16/bfloat16 storage is not supported yet", k);
        if (t->dtype != FOPT_FLOAT32)
            return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensor %zu: unknown dtype %d", k, (int)t->dtype);
        if (t->numel > 0 && (!t->param || !t->grad))
            return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensor %zu: NULL param or grad with numel %zu",
                             k, t->numel);
    }
    return FOPT_SUCCESS;
}

/* A pointer the kernels can dereference on `device`: device memory of that device, or managed. */
static fopt_status check_device_pointer(const void *ptr, int device, size_t k, const char *what)
{
    struct cudaPointerAttributes a;
    cudaError_t err = cudaPointerGetAttributes(&a, ptr);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensor %zu: %s is not a CUDA pointer (%s)", k,
                         what, cudaGetErrorString(err));
    }
    if (a.type == cudaMemoryTypeManaged)
        return FOPT_SUCCESS;
    if (a.type != cudaMemoryTypeDevice)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensor %zu: %s is host memory, not device memory",
                         k, what);
    if (a.device != device)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensor %zu: %s is on device %d, not on device %d",
                         k, what, a.device, device);
    return FOPT_SUCCESS;
}

static fopt_status create(fopt_optimizer **out, fopt_optimizer *proto, const fopt_tensor *tensors,
                          size_t count)
{
    fopt_status status = check_tensors(tensors, count);
    if (status != FOPT_SUCCESS)
        return status;
    size_t floats_per_state = 0, chunk_count = 0;
    status = fopt_table_plan(tensors, count, &floats_per_state, &chunk_count);
    if (status != FOPT_SUCCESS)
        return status;

    int devices = 0;
    cudaError_t err = cudaGetDeviceCount(&devices);
    if (err != cudaSuccess || devices == 0) {
        (void)cudaGetLastError();
        return fopt_fail(FOPT_ERROR_NO_DEVICE, "no usable CUDA device (%s)",
                         err != cudaSuccess ? cudaGetErrorString(err) : "device count is 0");
    }
    int device = 0;
    if ((err = cudaGetDevice(&device)) != cudaSuccess)
        return cuda_fail(err, "cudaGetDevice", __FILE__, __LINE__);
    for (size_t k = 0; k < count; k++) {
        if (tensors[k].numel == 0)
            continue;
        if ((status = check_device_pointer(tensors[k].param, device, k, "param")) != FOPT_SUCCESS ||
            (status = check_device_pointer(tensors[k].grad, device, k, "grad")) != FOPT_SUCCESS)
            return status;
    }

    fopt_optimizer *opt = NULL;
    void *host_table = NULL;
    size_t entries_bytes = count * sizeof(fopt_tensor_entry);
    size_t table_bytes = entries_bytes + chunk_count * sizeof(fopt_chunk);

    opt = malloc(sizeof *opt);
    host_table = malloc(table_bytes);
    if (!opt || !host_table) {
        status = fopt_fail(FOPT_ERROR_OUT_OF_MEMORY, "host allocation of %zu bytes failed",
                           sizeof *opt + table_bytes);
        goto fail;
    }
    *opt = *proto;
    opt->device = device;
    opt->step = 0;
    opt->tensor_count = count;
    opt->numel_hash = numel_hash(tensors, count);
    opt->state = NULL;
    opt->table_memory = NULL;
    opt->state_bytes = (size_t)fopt_state_count(opt->state_mask) * floats_per_state * sizeof(float);

    if (opt->state_bytes > 0) {
        FOPT_CUDA_TRY(cudaMalloc((void **)&opt->state, opt->state_bytes));
        FOPT_CUDA_TRY(cudaMemset(opt->state, 0, opt->state_bytes));
    }
    FOPT_CUDA_TRY(cudaMalloc(&opt->table_memory, table_bytes));

    fopt_tensor_entry *entries = host_table;
    fopt_chunk *chunks = (fopt_chunk *)((char *)host_table + entries_bytes);
    fopt_table_fill(tensors, count, opt->state_mask, opt->state, floats_per_state, entries, chunks);
    FOPT_CUDA_TRY(cudaMemcpy(opt->table_memory, host_table, table_bytes, cudaMemcpyHostToDevice));
    /* The memset and copy run on the legacy default stream; finish them before any user stream
     * can launch a step. */
    FOPT_CUDA_TRY(cudaDeviceSynchronize());

    opt->table.entries = opt->table_memory;
    opt->table.chunks = (const fopt_chunk *)((const char *)opt->table_memory + entries_bytes);
    opt->table.tensor_count = (uint32_t)count;
    opt->table.chunk_count = (uint32_t)chunk_count;
    free(host_table);
    *out = opt;
    return FOPT_SUCCESS;

fail:
    if (opt) {
        if (opt->table_memory)
            (void)cudaFree(opt->table_memory);
        if (opt->state)
            (void)cudaFree(opt->state);
    }
    free(opt);
    free(host_table);
    return status;
}

fopt_status fopt_adam_create(fopt_optimizer **out, const fopt_adam_config *cfg,
                             const fopt_tensor *tensors, size_t count)
{
    if (!out)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "out is NULL");
    fopt_status st = fopt_adam_config_check(cfg);
    if (st != FOPT_SUCCESS)
        return st;
    fopt_optimizer proto;
    memset(&proto, 0, sizeof proto);
    proto.kind = KIND_ADAM;
    proto.adam = *cfg;
    fopt_adam_scalars s = fopt_adam_scalars_make(cfg, 1);
    proto.state_mask = fopt_adam_state_mask(&s);
    return create(out, &proto, tensors, count);
}

fopt_status fopt_rmsprop_create(fopt_optimizer **out, const fopt_rmsprop_config *cfg,
                                const fopt_tensor *tensors, size_t count)
{
    if (!out)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "out is NULL");
    fopt_status st = fopt_rmsprop_config_check(cfg);
    if (st != FOPT_SUCCESS)
        return st;
    fopt_optimizer proto;
    memset(&proto, 0, sizeof proto);
    proto.kind = KIND_RMSPROP;
    proto.rmsprop = *cfg;
    fopt_rmsprop_scalars s = fopt_rmsprop_scalars_make(cfg);
    proto.state_mask = fopt_rmsprop_state_mask(&s);
    return create(out, &proto, tensors, count);
}

void fopt_destroy(fopt_optimizer *opt)
{
    if (!opt)
        return;
    device_scope scope;
    int entered = device_enter(opt, &scope) == FOPT_SUCCESS;
    /* cudaFree waits for work in flight that may still use these buffers. */
    if (opt->table_memory)
        (void)cudaFree(opt->table_memory);
    if (opt->state)
        (void)cudaFree(opt->state);
    if (entered)
        device_leave(&scope);
    free(opt);
}

/* ---- stepping ------------------------------------------------------------------------------- */

fopt_status fopt_step(fopt_optimizer *opt, cudaStream_t stream)
{
    if (!opt)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "optimizer is NULL");
    if (opt->step == INT64_MAX)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "step counter would overflow");
    device_scope scope;
    fopt_status status = device_enter(opt, &scope);
    if (status != FOPT_SUCCESS)
        return status;
    cudaError_t err;
    if (opt->kind == KIND_ADAM) {
        fopt_adam_scalars s = fopt_adam_scalars_make(&opt->adam, opt->step + 1);
        err = fopt_adam_launch(&opt->table, &s, stream);
    } else {
        fopt_rmsprop_scalars s = fopt_rmsprop_scalars_make(&opt->rmsprop);
        err = fopt_rmsprop_launch(&opt->table, &s, stream);
    }
    device_leave(&scope);
    if (err != cudaSuccess)
        return cuda_fail(err, "optimizer kernel launch", __FILE__, __LINE__);
    opt->step++;
    return FOPT_SUCCESS;
}

fopt_status fopt_set_lr(fopt_optimizer *opt, double lr)
{
    if (!opt)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "optimizer is NULL");
    if (!(isfinite(lr) && lr >= 0.0))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "lr must be finite and >= 0, got %g", lr);
    if (opt->kind == KIND_ADAM)
        opt->adam.lr = lr;
    else
        opt->rmsprop.lr = lr;
    return FOPT_SUCCESS;
}

int64_t fopt_step_count(const fopt_optimizer *opt) { return opt ? opt->step : -1; }

/* ---- checkpoints ---------------------------------------------------------------------------- */

/* The checkpoint: this header, then the state allocation byte for byte. */
typedef struct state_header {
    char magic[8];          /* "FOPTSTAT" */
    uint32_t version;       /* FOPT_VERSION_NUMBER of the writer */
    uint32_t header_bytes;  /* sizeof(state_header) */
    uint32_t kind;          /* KIND_ADAM or KIND_RMSPROP */
    uint32_t state_mask;    /* which buffers */
    uint64_t tensor_count;
    uint64_t numel_hash;
    uint64_t state_bytes;
    int64_t step;
    double lr;
    uint64_t payload_hash;  /* of the state bytes, catches truncation and corruption */
} state_header;

static const char state_magic[8] = {'F', 'O', 'P', 'T', 'S', 'T', 'A', 'T'};

static uint64_t payload_hash(const void *data, size_t n)
{
    /* 8 bytes at a time: a checkpoint can be gigabytes. */
    const unsigned char *b = data;
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    return hash_bytes(h, b + i, n - i);
}

size_t fopt_state_size(const fopt_optimizer *opt)
{
    return opt ? sizeof(state_header) + opt->state_bytes : 0;
}

fopt_status fopt_state_save(const fopt_optimizer *opt, void *host_buf, size_t size)
{
    if (!opt || !host_buf)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "optimizer or buffer is NULL");
    if (size < fopt_state_size(opt))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "buffer holds %zu bytes; the state needs %zu",
                         size, fopt_state_size(opt));
    device_scope scope;
    fopt_status status = device_enter(opt, &scope);
    if (status != FOPT_SUCCESS)
        return status;
    unsigned char *payload = (unsigned char *)host_buf + sizeof(state_header);
    FOPT_CUDA_TRY(cudaDeviceSynchronize());
    if (opt->state_bytes > 0)
        FOPT_CUDA_TRY(cudaMemcpy(payload, opt->state, opt->state_bytes, cudaMemcpyDeviceToHost));
    device_leave(&scope);

    state_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, state_magic, sizeof h.magic);
    h.version = FOPT_VERSION_NUMBER;
    h.header_bytes = sizeof h;
    h.kind = (uint32_t)opt->kind;
    h.state_mask = opt->state_mask;
    h.tensor_count = opt->tensor_count;
    h.numel_hash = opt->numel_hash;
    h.state_bytes = opt->state_bytes;
    h.step = opt->step;
    h.lr = opt->kind == KIND_ADAM ? opt->adam.lr : opt->rmsprop.lr;
    h.payload_hash = payload_hash(payload, opt->state_bytes);
    memcpy(host_buf, &h, sizeof h);
    return FOPT_SUCCESS;
fail:
    device_leave(&scope);
    return status;
}

fopt_status fopt_state_load(fopt_optimizer *opt, const void *host_buf, size_t size)
{
    if (!opt || !host_buf)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "optimizer or buffer is NULL");
    state_header h;
    if (size < sizeof h)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "buffer of %zu bytes is too small for a checkpoint", size);
    memcpy(&h, host_buf, sizeof h);
    if (memcmp(h.magic, state_magic, sizeof h.magic) != 0 || h.header_bytes != sizeof h)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "not a fusedopt checkpoint");
    if (h.version != FOPT_VERSION_NUMBER)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "checkpoint from library version %u, this is %u",
                         h.version, (unsigned)FOPT_VERSION_NUMBER);
    if (h.kind != (uint32_t)opt->kind || h.state_mask != opt->state_mask)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE,
                         "checkpoint from another optimizer or variant (kind %u mask %u, this is kind %d mask %u)",
                         h.kind, h.state_mask, opt->kind, opt->state_mask);
    if (h.tensor_count != opt->tensor_count || h.numel_hash != opt->numel_hash ||
        h.state_bytes != opt->state_bytes)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "checkpoint over another tensor list");
    if (size - sizeof h < h.state_bytes)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "checkpoint is truncated");
    if (h.step < 0 || !(isfinite(h.lr) && h.lr >= 0.0))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "checkpoint has an invalid step or lr");
    const unsigned char *payload = (const unsigned char *)host_buf + sizeof h;
    if (payload_hash(payload, h.state_bytes) != h.payload_hash)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "checkpoint is corrupted (checksum mismatch)");

    device_scope scope;
    fopt_status status = device_enter(opt, &scope);
    if (status != FOPT_SUCCESS)
        return status;
    /* Enqueued steps must not run after (or during) the copy. */
    FOPT_CUDA_TRY(cudaDeviceSynchronize());
    if (h.state_bytes > 0)
        FOPT_CUDA_TRY(cudaMemcpy(opt->state, payload, h.state_bytes, cudaMemcpyHostToDevice));
    device_leave(&scope);
    opt->step = h.step;
    if (opt->kind == KIND_ADAM)
        opt->adam.lr = h.lr;
    else
        opt->rmsprop.lr = h.lr;
    return FOPT_SUCCESS;
fail:
    device_leave(&scope);
    return status;
}
