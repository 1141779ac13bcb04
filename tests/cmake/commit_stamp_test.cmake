# Tests cmake/QvgCommitStamp.cmake in a scratch git repository: the stamp names HEAD, marks a
# modified tree "-dirty", follows a new commit, leaves an unchanged header untouched (no
# recompilation), and says "unknown" outside git.
#   cmake -DSCRIPT=<QvgCommitStamp.cmake> -DWORK=<scratch dir> -P commit_stamp_test.cmake
cmake_minimum_required(VERSION 3.20)
set(repo "${WORK}/repo")
set(header "${WORK}/qvg_commit.h")
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${repo}" "${WORK}/plain")
# Neither the scratch repository nor the plain folder may find a repository above them.
set(ENV{GIT_CEILING_DIRECTORIES} "${WORK}")

function(git)
  execute_process(COMMAND git -c user.name=qvg -c user.email=qvg@localhost ${ARGN}
    WORKING_DIRECTORY "${repo}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "git ${ARGN} failed: ${err}")
  endif()
  set(git_out "${out}" PARENT_SCOPE)
endfunction()

function(stamp src expected)
  execute_process(COMMAND "${CMAKE_COMMAND}" -DSRC=${src} -DOUT=${header} -P "${SCRIPT}"
    RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the stamp script failed")
  endif()
  file(READ "${header}" text)
  string(REGEX MATCH "#define QVG_GIT_COMMIT \"([^\"]*)\"" found "${text}")
  if(NOT CMAKE_MATCH_1 STREQUAL expected)
    message(FATAL_ERROR "stamp '${CMAKE_MATCH_1}', expected '${expected}'")
  endif()
endfunction()

git(init -q)
file(WRITE "${repo}/a.txt" "one\n")
git(add a.txt)
git(commit -q -m one)
git(rev-parse --short=12 HEAD)
set(first "${git_out}")
stamp("${repo}" "${first}")

# Unchanged: the header keeps its modification time, so nothing that includes it recompiles.
file(TIMESTAMP "${header}" before "%s")
execute_process(COMMAND "${CMAKE_COMMAND}" -E sleep 1.2)
stamp("${repo}" "${first}")
file(TIMESTAMP "${header}" after "%s")
if(NOT before STREQUAL after)
  message(FATAL_ERROR "an unchanged stamp rewrote the header (${before} -> ${after})")
endif()

file(WRITE "${repo}/a.txt" "two\n")
stamp("${repo}" "${first}-dirty")

git(commit -q -a -m two)
git(rev-parse --short=12 HEAD)
if(git_out STREQUAL first)
  message(FATAL_ERROR "the second commit has the first one's hash")
endif()
stamp("${repo}" "${git_out}")

stamp("${WORK}/plain" "unknown")
message(STATUS "commit stamp: clean, unchanged, dirty, new commit and outside git all hold")
