/* The device shim of the examples: lets a CUDA example run unchanged on fusedopt's emulated device
 * (a library built with -DFOPT_DEVICE_EMULATION=ON, where "device" memory is host memory and
 * kernels run on the CPU), so CI runs the examples without a GPU.
 *
 * In a normal build this header only defines the two kernel macros as plain CUDA. In an emulated
 * build (FOPT_DEVICE_EMULATION, which the fusedopt target passes on to whoever links it):
 *   - the handful of CUDA runtime calls the examples make are mapped onto the library's exported
 *     device layer (fopt_dev_*, src/gpu/device.h), so memory, copies and streams are the very
 *     ones the optimizer uses;
 *   - a kernel is written as a __host__ __device__ body of (block, thread, threads per block,
 *     arguments...) - fusedopt's own pattern - and launched through EXAMPLE_LAUNCH, which runs
 *     the body for every block and thread on the host, in stream order (the emulated device
 *     executes stream work at once). No device code is built.
 *
 *   static __host__ __device__ void scale_body(unsigned block, unsigned thread, unsigned threads,
 *                                              float *x, float a, size_t n)
 *   { size_t i = block * (size_t)threads + thread; if (i < n) x[i] *= a; }
 *   EXAMPLE_KERNEL(scale_kernel, scale_body)
 *   ...
 *   EXAMPLE_LAUNCH(scale_kernel, blocks, 256, stream, x, 2.0f, n);
 *
 * Examples that need a library the emulated device cannot stand in for (cuBLAS) test
 * FOPT_DEVICE_EMULATION and say that they skip. */
#ifndef FUSEDOPT_EXAMPLE_DEVICE_H
#define FUSEDOPT_EXAMPLE_DEVICE_H

#include <cuda_runtime.h>

#ifndef FOPT_DEVICE_EMULATION

/* The __global__ wrapper of a body: one thread of the grid is (blockIdx.x, threadIdx.x). */
#define EXAMPLE_KERNEL(kernel, body)                                                               \
    template <class... Args> __global__ void kernel(Args... args)                                  \
    {                                                                                              \
        body(blockIdx.x, threadIdx.x, blockDim.x, args...);                                        \
    }
#define EXAMPLE_LAUNCH(kernel, blocks, threads, stream, ...)                                       \
    kernel<<<(blocks), (threads), 0, (stream)>>>(__VA_ARGS__)

#else /* emulated device */

#include <stddef.h>

/* The library's device layer (exported in an emulated build; src/gpu/device.h). */
extern "C" {
cudaError_t fopt_dev_count(int *count);
cudaError_t fopt_dev_malloc(void **ptr, size_t bytes);
cudaError_t fopt_dev_free(void *ptr);
cudaError_t fopt_dev_memcpy(void *dst, const void *src, size_t bytes);
cudaError_t fopt_dev_stream_create(cudaStream_t *stream);
cudaError_t fopt_dev_stream_destroy(cudaStream_t stream);
cudaError_t fopt_dev_stream_synchronize(cudaStream_t stream);
cudaError_t fopt_dev_last_error(void);
const char *fopt_dev_error_string(cudaError_t err);
}

#define cudaGetDeviceCount(count) fopt_dev_count(count)
#define cudaMalloc(ptr, bytes) fopt_dev_malloc((void **)(ptr), (bytes))
#define cudaFree(ptr) fopt_dev_free(ptr)
#define cudaMemcpy(dst, src, bytes, kind) ((void)(kind), fopt_dev_memcpy((dst), (src), (bytes)))
#define cudaStreamCreate(stream) fopt_dev_stream_create(stream)
#define cudaStreamDestroy(stream) fopt_dev_stream_destroy(stream)
#define cudaStreamSynchronize(stream) fopt_dev_stream_synchronize(stream)
#define cudaGetLastError() fopt_dev_last_error()
#define cudaGetErrorString(err) fopt_dev_error_string(err)

/* The body over every block and thread, on the host. */
#define EXAMPLE_KERNEL(kernel, body)                                                               \
    template <class... Args> static void kernel(unsigned blocks, unsigned threads, Args... args)   \
    {                                                                                              \
        for (unsigned b = 0; b < blocks; b++)                                                      \
            for (unsigned t = 0; t < threads; t++)                                                 \
                body(b, t, threads, args...);                                                      \
    }
#define EXAMPLE_LAUNCH(kernel, blocks, threads, stream, ...)                                       \
    ((void)(stream), kernel((unsigned)(blocks), (unsigned)(threads), __VA_ARGS__))

#endif

#endif
