/* The device layer over an emulated device (src/gpu/device.h), for machines without a GPU: the
 * optimizer object, its checkpoints and error paths, the GPU test suites, the examples and the
 * correctness half of the benchmark all run on it in CI.
 *
 * Device memory is host memory kept in a sorted registry (pointer queries answer "device" for any
 * address inside a live allocation), with an H100's 80 GiB as capacity. Work on a stream runs at
 * once, in order; a kernel runs its __host__ __device__ body over every block and thread on the
 * calling thread. A stream under capture records its work instead, and a graph replays it. Any
 * synchronising call while a capture is open fails, as CUDA's does, so a capturable step that
 * synchronises is caught here too; so does a captured copy to or from host memory, which a replay
 * would read or write long after the call that enqueued it returned (device.h). */
#ifdef FOPT_DEVICE_EMULATION
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "device.h"

#define EMU_CAPACITY (80ull << 30)
#define EMU_SM_COUNT 132

/* ---- fault injection ---- */
static long g_calls;
static long g_fail_call; /* absolute call number that fails; 0: none */
static int g_fail_env_read;
static cudaError_t g_last_error = cudaSuccess;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

void fopt_emu_fail_at(long n) { g_fail_call = n > 0 ? g_calls + n : 0; g_fail_env_read = 1; }
long fopt_emu_calls(void) { return g_calls; }

/* Counts a call; true when this one must fail. */
static int injected_failure(void)
{
    if (!g_fail_env_read) {
        g_fail_env_read = 1;
        const char *env = getenv("FOPT_EMU_FAIL_AT");
        long n = env ? strtol(env, NULL, 10) : 0;
        g_fail_call = n > 0 ? n : 0;
    }
    g_calls++;
    return g_fail_call != 0 && g_calls == g_fail_call;
}

/* ---- allocations ---- */
typedef struct block {
    uintptr_t base;
    size_t size;
    int reserved; /* fopt_emu_reserve: inaccessible address space, not counted as live */
} block;
static block *g_blocks;
static size_t g_nblocks, g_capblocks;
static unsigned long long g_live;

long long fopt_emu_live_bytes(void) { return (long long)g_live; }

/* Index of the first block with base > p. */
static size_t upper(uintptr_t p)
{
    size_t lo = 0, hi = g_nblocks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g_blocks[mid].base <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The block holding p, or NULL. */
static const block *find(const void *ptr)
{
    uintptr_t p = (uintptr_t)ptr;
    size_t i = upper(p);
    if (i == 0)
        return NULL;
    const block *b = &g_blocks[i - 1];
    return p < b->base + (b->size ? b->size : 1) ? b : NULL;
}

int fopt_dev_emulated(void) { return 1; }

static int g_device_count = 1;
static int g_driver_version = CUDART_VERSION;
void fopt_emu_set_device_count(int n) { g_device_count = n; }
void fopt_emu_set_driver_version(int v) { g_driver_version = v; }

cudaError_t fopt_dev_count(int *count)
{
    *count = 0;
    if (g_driver_version < CUDART_VERSION) /* none, or older than the runtime */
        return cudaErrorInsufficientDriver;
    *count = g_device_count;
    return g_device_count > 0 ? cudaSuccess : cudaErrorNoDevice;
}

cudaError_t fopt_dev_versions(int *driver, int *runtime)
{
    *driver = g_driver_version;
    *runtime = CUDART_VERSION;
    return cudaSuccess;
}

static int g_current;
cudaError_t fopt_dev_get(int *device)
{
    *device = g_current;
    return cudaSuccess;
}

cudaError_t fopt_dev_set(int device)
{
    if (device != 0)
        return cudaErrorInvalidDevice;
    g_current = device;
    return cudaSuccess;
}

cudaError_t fopt_dev_sm_count(int device, int *count)
{
    if (device != 0)
        return cudaErrorInvalidDevice;
    *count = EMU_SM_COUNT;
    return cudaSuccess;
}

cudaError_t fopt_dev_pointer(const void *ptr, fopt_mem_kind *kind, int *device)
{
    pthread_mutex_lock(&g_lock);
    *kind = find(ptr) ? FOPT_MEM_DEVICE : FOPT_MEM_HOST;
    pthread_mutex_unlock(&g_lock);
    *device = *kind == FOPT_MEM_DEVICE ? 0 : -2;
    return cudaSuccess;
}

/* Registers the block [p, p + bytes); false (nothing registered) when the registry cannot grow. */
static int add_block(void *p, size_t bytes, int reserved)
{
    pthread_mutex_lock(&g_lock);
    if (g_nblocks == g_capblocks) {
        size_t cap = g_capblocks ? 2 * g_capblocks : 64;
        block *nb = realloc(g_blocks, cap * sizeof *nb);
        if (!nb) {
            pthread_mutex_unlock(&g_lock);
            return 0;
        }
        g_blocks = nb;
        g_capblocks = cap;
    }
    size_t i = upper((uintptr_t)p);
    memmove(&g_blocks[i + 1], &g_blocks[i], (g_nblocks - i) * sizeof *g_blocks);
    g_blocks[i] = (block){(uintptr_t)p, bytes, reserved};
    g_nblocks++;
    g_live += reserved ? 0 : bytes;
    pthread_mutex_unlock(&g_lock);
    return 1;
}

cudaError_t fopt_dev_malloc(void **ptr, size_t bytes)
{
    if (injected_failure() || bytes > EMU_CAPACITY - g_live)
        return cudaErrorMemoryAllocation;
    /* 256-byte alignment, as cudaMalloc gives */
    void *p = aligned_alloc(256, ((bytes ? bytes : 1) + 255) & ~(size_t)255);
    if (!p)
        return cudaErrorMemoryAllocation;
    if (!add_block(p, bytes, 0)) {
        free(p);
        return cudaErrorMemoryAllocation;
    }
    *ptr = p;
    return cudaSuccess;
}

cudaError_t fopt_emu_reserve(void **ptr, size_t bytes)
{
    void *p = mmap(NULL, bytes ? bytes : 1, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return cudaErrorMemoryAllocation;
    if (!add_block(p, bytes ? bytes : 1, 1)) {
        munmap(p, bytes ? bytes : 1);
        return cudaErrorMemoryAllocation;
    }
    *ptr = p;
    return cudaSuccess;
}

cudaError_t fopt_dev_free(void *ptr)
{
    if (!ptr)
        return cudaSuccess;
    pthread_mutex_lock(&g_lock);
    size_t i = upper((uintptr_t)ptr);
    if (i == 0 || g_blocks[i - 1].base != (uintptr_t)ptr) {
        pthread_mutex_unlock(&g_lock);
        return cudaErrorInvalidValue;
    }
    const block gone = g_blocks[i - 1];
    g_live -= gone.reserved ? 0 : gone.size;
    memmove(&g_blocks[i - 1], &g_blocks[i], (g_nblocks - i) * sizeof *g_blocks);
    g_nblocks--;
    if (g_nblocks == 0) { /* let leak checkers see a clean heap */
        free(g_blocks);
        g_blocks = NULL;
        g_capblocks = 0;
    }
    pthread_mutex_unlock(&g_lock);
    if (gone.reserved)
        munmap(ptr, gone.size);
    else
        free(ptr);
    return cudaSuccess;
}

/* ---- streams and graphs ---- */
typedef enum { OP_LAUNCH, OP_COPY, OP_SET } op_kind;
typedef struct op {
    op_kind kind;
    fopt_kernel kernel;
    void *args;
    void *dst;
    const void *src;
    size_t bytes;
    int value;
} op;
struct fopt_dev_graph {
    op *ops;
    size_t count, cap;
};
static cudaStream_t g_capturing;
static int g_capture_open;
static fopt_dev_graph *g_capture;

static cudaError_t record(cudaStream_t stream, op o, int *recorded)
{
    *recorded = 0;
    if (!g_capture_open || stream != g_capturing)
        return cudaSuccess;
    fopt_dev_graph *g = g_capture;
    if (g->count == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 8;
        op *n = realloc(g->ops, cap * sizeof *n);
        if (!n)
            return cudaErrorMemoryAllocation;
        g->ops = n;
        g->cap = cap;
    }
    g->ops[g->count++] = o;
    *recorded = 1;
    return cudaSuccess;
}

static cudaError_t run_op(const op *o)
{
    if (o->kind == OP_LAUNCH)
        o->kernel.run_on_host(o->args);
    else if (o->kind == OP_COPY && o->bytes)
        memmove(o->dst, o->src, o->bytes);
    else if (o->kind == OP_SET && o->bytes)
        memset(o->dst, o->value, o->bytes);
    return cudaSuccess;
}

/* Synchronous calls are refused while a capture is open (CUDA: "operation not permitted when
 * stream is capturing"). */
static cudaError_t sync_allowed(void)
{
    return g_capture_open ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}

/* A synchronous copy (src) or memset (no src). */
static cudaError_t sync_op(void *dst, const void *src, int value, size_t bytes)
{
    cudaError_t err = sync_allowed();
    if (err != cudaSuccess)
        return err;
    if (injected_failure())
        return cudaErrorUnknown;
    op o = {src ? OP_COPY : OP_SET, {0}, NULL, dst, src, bytes, value};
    return run_op(&o);
}

cudaError_t fopt_dev_memcpy(void *dst, const void *src, size_t bytes) { return sync_op(dst, src, 0, bytes); }
cudaError_t fopt_dev_memset(void *ptr, int value, size_t bytes) { return sync_op(ptr, NULL, value, bytes); }

static int is_device_memory(const void *ptr)
{
    pthread_mutex_lock(&g_lock);
    int dev = find(ptr) != NULL;
    pthread_mutex_unlock(&g_lock);
    return dev;
}

cudaError_t fopt_dev_memcpy_async(void *dst, const void *src, size_t bytes, cudaStream_t stream)
{
    if (injected_failure())
        return cudaErrorUnknown;
    /* A captured copy reads its source at every replay, as CUDA's does: a host buffer would have
     * to outlive the graph, which a temporary never does. Refused (device.h). */
    if (g_capture_open && stream == g_capturing && bytes > 0 && (!is_device_memory(dst) || !is_device_memory(src)))
        return cudaErrorStreamCaptureUnsupported;
    int recorded;
    op o = {OP_COPY, {0}, NULL, dst, src, bytes, 0};
    cudaError_t err = record(stream, o, &recorded);
    return err != cudaSuccess || recorded ? err : run_op(&o);
}

cudaError_t fopt_dev_memset_async(void *ptr, int value, size_t bytes, cudaStream_t stream)
{
    if (injected_failure())
        return cudaErrorUnknown;
    int recorded;
    op o = {OP_SET, {0}, NULL, ptr, NULL, bytes, value};
    cudaError_t err = record(stream, o, &recorded);
    return err != cudaSuccess || recorded ? err : run_op(&o);
}

cudaError_t fopt_dev_synchronize(void) { return sync_allowed(); }

cudaError_t fopt_dev_stream_synchronize(cudaStream_t stream)
{
    return g_capture_open && stream == g_capturing ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}

static char g_stream_tokens[64];
static unsigned g_next_stream;

cudaError_t fopt_dev_stream_create(cudaStream_t *stream)
{
    /* distinct non-null handles; work runs at once, so a stream needs no state */
    *stream = (cudaStream_t)(void *)&g_stream_tokens[g_next_stream++ % 64];
    return cudaSuccess;
}

cudaError_t fopt_dev_stream_destroy(cudaStream_t stream)
{
    (void)stream;
    return cudaSuccess;
}

cudaError_t fopt_dev_launch(const fopt_kernel *k, const void *args, cudaStream_t stream)
{
    if (!k->run_on_host)
        return cudaErrorInvalidDeviceFunction;
    if (injected_failure())
        return g_last_error = cudaErrorLaunchFailure;
    if (g_capture_open && stream == g_capturing) {
        void *copy = malloc(k->args_size);
        if (!copy)
            return cudaErrorMemoryAllocation;
        memcpy(copy, args, k->args_size);
        op o = {OP_LAUNCH, *k, copy, NULL, NULL, 0, 0};
        int recorded;
        cudaError_t err = record(stream, o, &recorded);
        if (err != cudaSuccess)
            free(copy);
        return err;
    }
    k->run_on_host(args);
    return cudaSuccess;
}

cudaError_t fopt_dev_last_error(void)
{
    cudaError_t e = g_last_error;
    g_last_error = cudaSuccess;
    return e;
}

cudaError_t fopt_dev_capture_begin(cudaStream_t stream)
{
    if (g_capture_open)
        return cudaErrorIllegalState;
    g_capture = calloc(1, sizeof *g_capture);
    if (!g_capture)
        return cudaErrorMemoryAllocation;
    g_capturing = stream;
    g_capture_open = 1;
    return cudaSuccess;
}

cudaError_t fopt_dev_stream_capturing(cudaStream_t stream, int *capturing)
{
    *capturing = g_capture_open && stream == g_capturing;
    return cudaSuccess;
}

cudaError_t fopt_dev_capture_end(cudaStream_t stream, fopt_dev_graph **graph)
{
    if (!g_capture_open || stream != g_capturing)
        return cudaErrorIllegalState;
    g_capture_open = 0;
    *graph = g_capture;
    g_capture = NULL;
    return cudaSuccess;
}

cudaError_t fopt_dev_graph_launch(fopt_dev_graph *graph, cudaStream_t stream)
{
    (void)stream;
    for (size_t i = 0; i < graph->count; i++)
        run_op(&graph->ops[i]);
    return cudaSuccess;
}

void fopt_dev_graph_destroy(fopt_dev_graph *graph)
{
    if (!graph)
        return;
    for (size_t i = 0; i < graph->count; i++)
        free(graph->ops[i].args);
    free(graph->ops);
    free(graph);
}

const char *fopt_dev_error_name(cudaError_t err)
{
    switch (err) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    default: return "cudaErrorUnknown";
    }
}

const char *fopt_dev_error_string(cudaError_t err)
{
    switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorMemoryAllocation: return "out of memory (emulated device)";
    case cudaErrorLaunchFailure: return "unspecified launch failure (injected, emulated device)";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorUnknown: return "unknown error (injected, emulated device)";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    default: return "error (emulated device)";
    }
}
#endif
