/* The device layer: every CUDA runtime call the GPU optimizer object makes goes through these few
 * functions, which have two backends chosen at build time:
 *
 *   src/gpu/device_cuda.c  the CUDA runtime (the normal build);
 *   src/gpu/device_emu.c   an emulated device in this process (cmake -DFOPT_DEVICE_EMULATION=ON):
 *                          device allocations come from the host heap and are kept in a registry
 *                          (so pointer queries tell device from host memory), copies and memsets
 *                          are memcpy/memset, streams execute in order at once, kernels run their
 *                          __host__ __device__ bodies over every block and thread (the kernel's
 *                          run_on_host), graphs record and replay, one device with an H100's
 *                          properties. It injects faults on request (fopt_emu_fail_at) and keeps
 *                          count of calls, so tests walk every failure path.
 *
 * Errors are cudaError_t values in both. The tests, the benchmark and the examples allocate and
 * copy through this layer too, so the same sources run on a GPU and on the emulated device. In an
 * emulated build the layer is exported from the library (for the examples); otherwise it is
 * internal. Not installed. */
#ifndef FUSEDOPT_DEVICE_H
#define FUSEDOPT_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "launch.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef FOPT_DEVICE_EMULATION
#define FOPT_DEV_API __attribute__((visibility("default")))
#else
#define FOPT_DEV_API
#endif

/* What a pointer points to. */
typedef enum fopt_mem_kind { FOPT_MEM_HOST = 0, FOPT_MEM_DEVICE = 1, FOPT_MEM_MANAGED = 2 } fopt_mem_kind;

FOPT_DEV_API int fopt_dev_emulated(void); /* 1 in the emulated build */
FOPT_DEV_API cudaError_t fopt_dev_count(int *count);
/* The versions of the CUDA driver and of the runtime (cudaDriverGetVersion,
 * cudaRuntimeGetVersion: 1000 * major + 10 * minor); *driver is 0 when no CUDA driver is
 * installed. */
FOPT_DEV_API cudaError_t fopt_dev_versions(int *driver, int *runtime);
FOPT_DEV_API cudaError_t fopt_dev_get(int *device);
FOPT_DEV_API cudaError_t fopt_dev_set(int device);
/* Multiprocessors of a device (for sizing grids). */
FOPT_DEV_API cudaError_t fopt_dev_sm_count(int device, int *count);
/* Kind and device of the memory `ptr` points into. */
FOPT_DEV_API cudaError_t fopt_dev_pointer(const void *ptr, fopt_mem_kind *kind, int *device);

FOPT_DEV_API cudaError_t fopt_dev_malloc(void **ptr, size_t bytes);
FOPT_DEV_API cudaError_t fopt_dev_free(void *ptr);
/* Synchronous, any direction (host and device pointers alike): complete when they return, also
 * device to device (the CUDA backend waits for the device). */
FOPT_DEV_API cudaError_t fopt_dev_memcpy(void *dst, const void *src, size_t bytes);
FOPT_DEV_API cudaError_t fopt_dev_memset(void *ptr, int value, size_t bytes);
/* In stream order. A host source may be reused when the call returns (pageable staging), but not
 * under a capture: a graph's copy reads (or writes) its host memory at every replay, when a
 * temporary buffer is long gone. The emulated device refuses such a capture
 * (cudaErrorStreamCaptureUnsupported) so that no library call can rely on one; the library
 * captures kernel launches only, whose arguments the graph keeps by value. */
FOPT_DEV_API cudaError_t fopt_dev_memcpy_async(void *dst, const void *src, size_t bytes, cudaStream_t stream);
FOPT_DEV_API cudaError_t fopt_dev_memset_async(void *ptr, int value, size_t bytes, cudaStream_t stream);
FOPT_DEV_API cudaError_t fopt_dev_synchronize(void);
FOPT_DEV_API cudaError_t fopt_dev_stream_synchronize(cudaStream_t stream);
FOPT_DEV_API cudaError_t fopt_dev_stream_create(cudaStream_t *stream);
FOPT_DEV_API cudaError_t fopt_dev_stream_destroy(cudaStream_t stream);
/* Enqueues a kernel on a stream (its grid comes from its arguments). */
FOPT_DEV_API cudaError_t fopt_dev_launch(const fopt_kernel *k, const void *args, cudaStream_t stream);
/* Returns and clears the last error of an asynchronous failure (cudaGetLastError). */
FOPT_DEV_API cudaError_t fopt_dev_last_error(void);
FOPT_DEV_API const char *fopt_dev_error_string(cudaError_t err);
FOPT_DEV_API const char *fopt_dev_error_name(cudaError_t err);

/* Graph capture of one stream's work (for capturable steps and their tests). */
typedef struct fopt_dev_graph fopt_dev_graph;
FOPT_DEV_API cudaError_t fopt_dev_capture_begin(cudaStream_t stream);
/* *capturing = 1 when work enqueued on `stream` now would be captured (cudaStreamIsCapturing:
 * active or invalidated), else 0. Not a countable call. */
FOPT_DEV_API cudaError_t fopt_dev_stream_capturing(cudaStream_t stream, int *capturing);
FOPT_DEV_API cudaError_t fopt_dev_capture_end(cudaStream_t stream, fopt_dev_graph **graph);
FOPT_DEV_API cudaError_t fopt_dev_graph_launch(fopt_dev_graph *graph, cudaStream_t stream);
FOPT_DEV_API void fopt_dev_graph_destroy(fopt_dev_graph *graph);

/* Emulated device only (no-ops returning 0 / -1 in the CUDA build):
 * fopt_emu_fail_at(n): the n-th countable call from now (allocation, copy, memset, launch;
 * counting from 1) fails, and the ones after it succeed again; 0 disables. The environment
 * variable FOPT_EMU_FAIL_AT sets it at start-up.
 * fopt_emu_calls(): countable calls so far. fopt_emu_live_bytes(): device bytes allocated now. */
FOPT_DEV_API void fopt_emu_fail_at(long n);
FOPT_DEV_API long fopt_emu_calls(void);
FOPT_DEV_API long long fopt_emu_live_bytes(void);
/* fopt_emu_set_device_count(n): how many devices the emulated runtime reports (1 at start; 0
 * emulates a machine without a GPU: cudaErrorNoDevice). */
FOPT_DEV_API void fopt_emu_set_device_count(int n);
/* fopt_emu_set_driver_version(v): the CUDA driver version the emulated runtime reports (the
 * runtime's at start); 0 emulates a machine without a CUDA driver, and any version below the
 * runtime's makes fopt_dev_count fail with cudaErrorInsufficientDriver, as the CUDA runtime does. */
FOPT_DEV_API void fopt_emu_set_driver_version(int v);
/* fopt_emu_reserve(ptr, bytes): `bytes` of device address space that no access may touch
 * (PROT_NONE host pages, not counted as allocated; fopt_dev_free releases it): for tests of tensors
 * larger than memory whose buffers must still be disjoint. cudaErrorNotSupported on a GPU. */
FOPT_DEV_API cudaError_t fopt_emu_reserve(void **ptr, size_t bytes);

#ifdef __cplusplus
}
#endif

#endif
