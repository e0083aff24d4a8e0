# Settings shared by the whole project and by kernels/ built on its own:
# language standard, default build type, ccache.
set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_EXPORT_COMPILE_COMMANDS ON)
if(NOT CMAKE_BUILD_TYPE)
  set(CMAKE_BUILD_TYPE RelWithDebInfo)
endif()
find_program(CCACHE_PROGRAM ccache)
if(CCACHE_PROGRAM)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${CCACHE_PROGRAM})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${CCACHE_PROGRAM})
endif()
# Sanitizers for every C++ target, e.g. -DSOLVERD_SANITIZE=address,undefined
# (the CUDA backend is left out: nvcc does not take them).
set(SOLVERD_SANITIZE "" CACHE STRING "-fsanitize= list for all C++ code; empty: none")
if(SOLVERD_SANITIZE)
  add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${SOLVERD_SANITIZE}>"
                      "$<$<COMPILE_LANGUAGE:CXX>:-fno-sanitize-recover=all>"
                      "$<$<COMPILE_LANGUAGE:CXX>:-fno-omit-frame-pointer>")
  add_link_options("-fsanitize=${SOLVERD_SANITIZE}")
endif()
enable_testing()
