# Per-target warnings and sanitizers.
function(orgpatch_target_options target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
  if(ORGPATCH_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
    # g++ 12 reports false -Warray-bounds / -Wstringop-overflow inside libstdc++'s
    # string code (GCC PR 105329, 105651), and a false -Wmismatched-new-delete
    # when it inlines Asio's coroutine frame allocator (aligned_alloc, freed by
    # the matching aligned_delete) into a large coroutine: kept as warnings.
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
      target_compile_options(${target} PRIVATE -Wno-error=array-bounds -Wno-error=stringop-overflow
                                               -Wno-error=restrict -Wno-error=mismatched-new-delete)
    endif()
    # Sanitizer instrumentation makes g++'s flow analysis report uninitialised
    # reads inside Boost.Histogram that the optimised build does not have.
    if(ORGPATCH_SANITIZE)
      target_compile_options(${target} PRIVATE -Wno-error=uninitialized -Wno-error=maybe-uninitialized)
    endif()
  endif()
endfunction()

if(ORGPATCH_SANITIZE)
  string(REPLACE ";" "," _orgpatch_san "${ORGPATCH_SANITIZE}")
  add_compile_options(-fsanitize=${_orgpatch_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${_orgpatch_san})
endif()

# The fuzz build: everything instrumented for libFuzzer's coverage and checked by
# ASan+UBSan; the fuzz targets themselves link libFuzzer's main (tests/fuzz).
if(ORGPATCH_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "ORGPATCH_FUZZ needs clang (CXX=clang++), not ${CMAKE_CXX_COMPILER_ID}")
  endif()
  if(ORGPATCH_SANITIZE)
    message(FATAL_ERROR "ORGPATCH_FUZZ brings its own sanitizers: leave ORGPATCH_SANITIZE empty")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
