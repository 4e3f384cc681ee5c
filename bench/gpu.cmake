# fopt_bench: fusedopt's fused GPU step vs an unfused cuBLAS port vs the fast CPU path vs the CPU
# reference, against the measured copy bandwidth. Included by bench/CMakeLists.txt.
# Runs everywhere: without a CUDA device it measures the CPU paths and says the GPU rows were
# skipped; in an emulated build (FOPT_DEVICE_EMULATION) it checks the GPU rows on the emulated
# device, without cuBLAS (the unfused baseline and the timing kernels are real-build only).
# It links the static library: the device layer (src/gpu/device.h), through which it allocates
# and copies, is hidden in the shared library of a real build.
set(FOPT_BENCH_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/fopt_bench.c
  ${CMAKE_CURRENT_LIST_DIR}/run.c
  ${CMAKE_CURRENT_LIST_DIR}/output.c
  ${CMAKE_CURRENT_LIST_DIR}/timing.c
  ${CMAKE_CURRENT_LIST_DIR}/cases.c
  ${CMAKE_CURRENT_LIST_DIR}/modes.c
  ${CMAKE_CURRENT_LIST_DIR}/bench_common.c
  ${CMAKE_CURRENT_LIST_DIR}/variants.c)
if(NOT FOPT_DEVICE_EMULATION)
  list(APPEND FOPT_BENCH_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/unfused.cu
    ${CMAKE_CURRENT_LIST_DIR}/timing_kernels.cu)
endif()
add_executable(fopt_bench ${FOPT_BENCH_SOURCES})
target_include_directories(fopt_bench PRIVATE ${CMAKE_CURRENT_LIST_DIR}
  ${PROJECT_SOURCE_DIR}/src/gpu ${PROJECT_SOURCE_DIR}/kernels)
target_compile_options(fopt_bench PRIVATE
  $<$<COMPILE_LANGUAGE:C>:-Wall -Wextra>
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>)
target_link_libraries(fopt_bench PRIVATE fusedopt_static CUDA::cudart m)
if(NOT FOPT_DEVICE_EMULATION)
  target_link_libraries(fopt_bench PRIVATE CUDA::cublas)
endif()
install(TARGETS fopt_bench RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# The PyTorch comparison and the plot script go beside it.
install(PROGRAMS ${CMAKE_CURRENT_LIST_DIR}/torch_compare.py ${CMAKE_CURRENT_LIST_DIR}/plot.py
  DESTINATION ${CMAKE_INSTALL_DATADIR}/fusedopt/bench)
