# Per-target warnings and sanitizers.
function(orgpatch_target_options target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
  if(ORGPATCH_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

if(ORGPATCH_SANITIZE)
  string(REPLACE ";" "," _orgpatch_san "${ORGPATCH_SANITIZE}")
  add_compile_options(-fsanitize=${_orgpatch_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${_orgpatch_san})
endif()
