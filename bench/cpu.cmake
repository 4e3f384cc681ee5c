# fopt_cpu_bench: the fast CPU path vs the CPU reference vs a same-traffic roofline loop, plus
# PyTorch's CPU Adam when the system Python has torch (issue 5). Included by bench/CMakeLists.txt.
# It links the static library because the roofline loop and the ISA override are internal.
add_executable(fopt_cpu_bench
  ${CMAKE_CURRENT_LIST_DIR}/cpu_bench.c
  ${CMAKE_CURRENT_LIST_DIR}/bench_common.c)
target_include_directories(fopt_cpu_bench PRIVATE ${PROJECT_SOURCE_DIR}/src/common
  ${PROJECT_SOURCE_DIR}/src/cpu ${PROJECT_SOURCE_DIR}/kernels)
target_compile_options(fopt_cpu_bench PRIVATE -Wall -Wextra -ffp-contract=off)
target_compile_definitions(fopt_cpu_bench PRIVATE
  FOPT_TORCH_SCRIPT="${CMAKE_CURRENT_LIST_DIR}/torch_cpu_adam.py"
  FOPT_TORCH_SCRIPT_INSTALLED="${CMAKE_INSTALL_FULL_DATADIR}/fusedopt/bench/torch_cpu_adam.py")
target_link_libraries(fopt_cpu_bench PRIVATE fusedopt_static m)
install(TARGETS fopt_cpu_bench RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(PROGRAMS ${CMAKE_CURRENT_LIST_DIR}/torch_cpu_adam.py
  DESTINATION ${CMAKE_INSTALL_DATADIR}/fusedopt/bench)
