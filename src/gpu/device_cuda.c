/* The device layer over the CUDA runtime (src/gpu/device.h). Thin on purpose: each function is
 * the runtime call it names. */
#ifndef FOPT_DEVICE_EMULATION
#include <stdlib.h>

#include <cuda_runtime_api.h>

#include "device.h"

int fopt_dev_emulated(void) { return 0; }
cudaError_t fopt_dev_count(int *count) { return cudaGetDeviceCount(count); }

cudaError_t fopt_dev_versions(int *driver, int *runtime)
{
    *driver = *runtime = 0;
    cudaError_t err = cudaDriverGetVersion(driver);
    return err == cudaSuccess ? cudaRuntimeGetVersion(runtime) : err;
}
cudaError_t fopt_dev_get(int *device) { return cudaGetDevice(device); }
cudaError_t fopt_dev_set(int device) { return cudaSetDevice(device); }

cudaError_t fopt_dev_sm_count(int device, int *count)
{
    return cudaDeviceGetAttribute(count, cudaDevAttrMultiProcessorCount, device);
}

cudaError_t fopt_dev_pointer(const void *ptr, fopt_mem_kind *kind, int *device)
{
    struct cudaPointerAttributes a;
    cudaError_t err = cudaPointerGetAttributes(&a, ptr);
    if (err != cudaSuccess)
        return err;
    *kind = a.type == cudaMemoryTypeManaged  ? FOPT_MEM_MANAGED
            : a.type == cudaMemoryTypeDevice ? FOPT_MEM_DEVICE
                                             : FOPT_MEM_HOST;
    *device = a.device;
    return cudaSuccess;
}

cudaError_t fopt_dev_malloc(void **ptr, size_t bytes) { return cudaMalloc(ptr, bytes); }
cudaError_t fopt_dev_free(void *ptr) { return cudaFree(ptr); }

/* cudaMemcpy returns before a device-to-device copy is done, and cudaMemset before the memset:
 * wait, so that the device layer's synchronous calls are complete on return and no later work on
 * a non-blocking stream can race them. */
cudaError_t fopt_dev_memcpy(void *dst, const void *src, size_t bytes)
{
    cudaError_t err = cudaMemcpy(dst, src, bytes, cudaMemcpyDefault);
    return err == cudaSuccess ? cudaDeviceSynchronize() : err;
}

cudaError_t fopt_dev_memset(void *ptr, int value, size_t bytes)
{
    cudaError_t err = cudaMemset(ptr, value, bytes);
    return err == cudaSuccess ? cudaDeviceSynchronize() : err;
}

cudaError_t fopt_dev_memcpy_async(void *dst, const void *src, size_t bytes, cudaStream_t stream)
{
    return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream);
}

cudaError_t fopt_dev_memset_async(void *ptr, int value, size_t bytes, cudaStream_t stream)
{
    return cudaMemsetAsync(ptr, value, bytes, stream);
}

cudaError_t fopt_dev_synchronize(void) { return cudaDeviceSynchronize(); }
cudaError_t fopt_dev_stream_synchronize(cudaStream_t stream) { return cudaStreamSynchronize(stream); }
cudaError_t fopt_dev_stream_create(cudaStream_t *stream)
{
    return cudaStreamCreateWithFlags(stream, cudaStreamNonBlocking);
}
cudaError_t fopt_dev_stream_destroy(cudaStream_t stream) { return cudaStreamDestroy(stream); }

cudaError_t fopt_dev_launch(const fopt_kernel *k, const void *args, cudaStream_t stream)
{
    return k->launch(args, stream);
}

cudaError_t fopt_dev_last_error(void) { return cudaGetLastError(); }
const char *fopt_dev_error_string(cudaError_t err) { return cudaGetErrorString(err); }
const char *fopt_dev_error_name(cudaError_t err) { return cudaGetErrorName(err); }

struct fopt_dev_graph {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
};

cudaError_t fopt_dev_capture_begin(cudaStream_t stream)
{
    return cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
}

cudaError_t fopt_dev_stream_capturing(cudaStream_t stream, int *capturing)
{
    enum cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    cudaError_t err = cudaStreamIsCapturing(stream, &st);
    *capturing = err == cudaSuccess && st != cudaStreamCaptureStatusNone;
    return err;
}

cudaError_t fopt_dev_capture_end(cudaStream_t stream, fopt_dev_graph **graph)
{
    fopt_dev_graph *g = calloc(1, sizeof *g);
    if (!g) {
        cudaGraph_t dropped;
        (void)cudaStreamEndCapture(stream, &dropped);
        if (dropped)
            (void)cudaGraphDestroy(dropped);
        return cudaErrorMemoryAllocation;
    }
    cudaError_t err = cudaStreamEndCapture(stream, &g->graph);
    if (err == cudaSuccess)
        err = cudaGraphInstantiate(&g->exec, g->graph, 0);
    if (err != cudaSuccess) {
        if (g->graph)
            (void)cudaGraphDestroy(g->graph);
        free(g);
        return err;
    }
    *graph = g;
    return cudaSuccess;
}

cudaError_t fopt_dev_graph_launch(fopt_dev_graph *graph, cudaStream_t stream)
{
    return cudaGraphLaunch(graph->exec, stream);
}

void fopt_dev_graph_destroy(fopt_dev_graph *graph)
{
    if (!graph)
        return;
    (void)cudaGraphExecDestroy(graph->exec);
    (void)cudaGraphDestroy(graph->graph);
    free(graph);
}

void fopt_emu_fail_at(long n) { (void)n; }
long fopt_emu_calls(void) { return -1; }
long long fopt_emu_live_bytes(void) { return -1; }
void fopt_emu_set_device_count(int n) { (void)n; }
void fopt_emu_set_driver_version(int v) { (void)v; }
cudaError_t fopt_emu_reserve(void **ptr, size_t bytes)
{
    (void)ptr;
    (void)bytes;
    return cudaErrorNotSupported;
}
#endif
