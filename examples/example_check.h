/* Error checks of the CUDA examples. CHECK_CUDA(x) and CHECK_FOPT(x) evaluate a call and, when it
 * fails, print the call, the library's message and where it stands to stderr and return 1 from
 * the calling function (main, or a helper whose caller takes any non-zero result as a failure).
 * EXAMPLE_CHECK() makes the same check for another library's status type (cuBLAS, NCCL). */
#ifndef FUSEDOPT_EXAMPLE_CHECK_H
#define FUSEDOPT_EXAMPLE_CHECK_H

#include <cstdio>

#include <cuda_runtime.h>

#include "fusedopt.h"

/* fusedopt's message for a failed call: fopt_last_error() says more than the status. */
static inline const char *example_fopt_message(fopt_status) { return fopt_last_error(); }

#define EXAMPLE_CHECK(status_type, ok, message, x)                                                 \
    do {                                                                                           \
        status_type e_ = (x);                                                                      \
        if (e_ != (ok)) {                                                                          \
            std::fprintf(stderr, "%s: %s (%s:%d)\n", #x, message(e_), __FILE__, __LINE__);         \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)
#define CHECK_CUDA(x) EXAMPLE_CHECK(cudaError_t, cudaSuccess, cudaGetErrorString, x)
#define CHECK_FOPT(x) EXAMPLE_CHECK(fopt_status, FOPT_SUCCESS, example_fopt_message, x)

#endif
