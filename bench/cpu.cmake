# fopt_cpu_bench: the fast CPU path vs the CPU reference vs a same-traffic roofline loop, per
# storage mode, plus PyTorch's CPU Adam when the system Python has torch. Included by
# bench/CMakeLists.txt. It links the static library because the thread partition, the fp32
# roofline and the ISA override it uses are internal.
add_executable(fopt_cpu_bench
  ${CMAKE_CURRENT_LIST_DIR}/cpu_bench.c
  ${CMAKE_CURRENT_LIST_DIR}/roofline.c
  ${CMAKE_CURRENT_LIST_DIR}/modes.c
  ${CMAKE_CURRENT_LIST_DIR}/bench_common.c
  ${CMAKE_CURRENT_LIST_DIR}/variants.c)
target_include_directories(fopt_cpu_bench PRIVATE ${CMAKE_CURRENT_LIST_DIR} ${PROJECT_SOURCE_DIR}/src/common
  ${PROJECT_SOURCE_DIR}/src/cpu ${PROJECT_SOURCE_DIR}/kernels)
target_compile_options(fopt_cpu_bench PRIVATE -Wall -Wextra -ffp-contract=off)
target_compile_definitions(fopt_cpu_bench PRIVATE
  FOPT_TORCH_SCRIPT="${CMAKE_CURRENT_LIST_DIR}/torch_cpu_adam.py"
  FOPT_TORCH_SCRIPT_INSTALLED="${CMAKE_INSTALL_FULL_DATADIR}/fusedopt/bench/torch_cpu_adam.py")
target_link_libraries(fopt_cpu_bench PRIVATE fusedopt_static m)
install(TARGETS fopt_cpu_bench RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(PROGRAMS ${CMAKE_CURRENT_LIST_DIR}/torch_cpu_adam.py
  DESTINATION ${CMAKE_INSTALL_DATADIR}/fusedopt/bench)
