# Writes OUT, a header that defines QVG_GIT_COMMIT as the source tree's HEAD (12 hex digits, with
# "-dirty" when tracked files differ from it; "unknown" outside git). Runs at every build, not
# only at configure time, so a benchmark or evaluation report never names an older commit than
# the code it ran; the header is rewritten only when the text changes, so an unchanged commit
# recompiles nothing.
#   cmake -DSRC=<source dir> -DOUT=<header> -P QvgCommitStamp.cmake
cmake_minimum_required(VERSION 3.20)
execute_process(COMMAND git rev-parse --short=12 HEAD WORKING_DIRECTORY "${SRC}"
  OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT commit)
  set(commit "unknown")
else()
  execute_process(COMMAND git diff --quiet HEAD -- WORKING_DIRECTORY "${SRC}"
    RESULT_VARIABLE dirty ERROR_QUIET)
  if(dirty EQUAL 1)
    string(APPEND commit "-dirty")
  endif()
endif()
set(text "// Generated at build time by cmake/QvgCommitStamp.cmake; do not edit.\n#pragma once\n#define QVG_GIT_COMMIT \"${commit}\"\n")
set(old "")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
