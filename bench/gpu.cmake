# fopt_bench: fusedopt's fused GPU step vs an unfused cuBLAS port vs the fast CPU path vs the CPU
# reference, against the measured copy bandwidth (issue 4). Included by bench/CMakeLists.txt.
# Runs everywhere: without a CUDA device it measures the CPU paths and says the GPU rows were
# skipped.
add_executable(fopt_bench
  ${CMAKE_CURRENT_LIST_DIR}/fopt_bench.c
  ${CMAKE_CURRENT_LIST_DIR}/bench_common.c
  ${CMAKE_CURRENT_LIST_DIR}/unfused.cu)
target_include_directories(fopt_bench PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_compile_options(fopt_bench PRIVATE
  $<$<COMPILE_LANGUAGE:C>:-Wall -Wextra>
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>)
target_link_libraries(fopt_bench PRIVATE fusedopt CUDA::cudart CUDA::cublas m)
set_target_properties(fopt_bench PROPERTIES
  INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
install(TARGETS fopt_bench RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# The PyTorch comparison and the plot script go beside it.
install(PROGRAMS ${CMAKE_CURRENT_LIST_DIR}/torch_compare.py ${CMAKE_CURRENT_LIST_DIR}/plot.py
  DESTINATION ${CMAKE_INSTALL_DATADIR}/fusedopt/bench)
