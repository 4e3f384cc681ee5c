/* fusedopt.h declares cudaStream_t as the CUDA runtime does, so that it needs no CUDA header:
 * including the runtime's header before or after it compiles, in C and in C++ (a different
 * declaration would be a conflicting typedef). tests/CMakeLists.txt compiles this file (and
 * header_check.cpp, the same as C++) both ways in a build with CUDA; nothing runs it. */
#if FOPT_CUDA_FIRST
#include <cuda_runtime_api.h>

#include "fusedopt.h"
#else
#include "fusedopt.h"

#include <cuda_runtime_api.h>
#endif

/* A GPU function taken with the runtime's stream type. */
typedef fopt_status (*header_check_step_fn)(fopt_optimizer *, cudaStream_t);
header_check_step_fn header_check_step(void);
header_check_step_fn header_check_step(void) { return fopt_step; }
