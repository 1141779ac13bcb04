# Warning flags for qvg's own targets (not for third-party headers, which come in as SYSTEM).
add_library(qvg_warnings INTERFACE)
target_compile_options(qvg_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow=local -Wnon-virtual-dtor
    -Wno-unused-parameter>)
if(QVG_WARNINGS_AS_ERRORS)
  target_compile_options(qvg_warnings INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
endif()
