# Third-party dependencies, all from the system (Debian packages) except LibTorch, which comes
# from the PyPI torch wheel pinned by packaging/dev.sh. Nothing is vendored.

# ---- LibTorch ----------------------------------------------------------------------------------
if(NOT Torch_DIR)
  if(NOT QVG_PYTHON)
    if(EXISTS "${CMAKE_SOURCE_DIR}/.venv/bin/python")
      set(QVG_PYTHON "${CMAKE_SOURCE_DIR}/.venv/bin/python")
    else()
      find_program(_qvg_python_found NAMES python3 python REQUIRED)
      set(QVG_PYTHON "${_qvg_python_found}")
    endif()
  endif()
  execute_process(
    COMMAND "${QVG_PYTHON}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE _qvg_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
    ERROR_VARIABLE _qvg_torch_err RESULT_VARIABLE _qvg_torch_rc)
  if(NOT _qvg_torch_rc EQUAL 0)
    message(FATAL_ERROR "qvg needs LibTorch from the torch Python package (2.11.0), but "
      "'${QVG_PYTHON} -c \"import torch\"' failed:\n${_qvg_torch_err}\n"
      "Run packaging/dev.sh deps, or pass -DQVG_PYTHON=/path/to/python or -DTorch_DIR=...")
  endif()
  list(APPEND CMAKE_PREFIX_PATH "${_qvg_torch_prefix}")
endif()

# ---- CUDA (the kernels and the CUDA parts of LibTorch) -----------------------------------------
set(QVG_HAVE_CUDA OFF)
if(NOT QVG_WITH_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT CMAKE_CUDA_ARCHITECTURES)
      # Hopper SASS plus PTX so that newer GPUs can JIT.
      set(CMAKE_CUDA_ARCHITECTURES "90-real;90-virtual")
    endif()
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(QVG_HAVE_CUDA ON)
  elseif(QVG_WITH_CUDA STREQUAL "ON")
    message(FATAL_ERROR "QVG_WITH_CUDA=ON but no CUDA compiler (nvcc) was found")
  endif()
endif()

# The PyPI wheel is a CUDA build; its CMake config looks for the CUDA toolkit to describe
# torch_cuda. Without a toolkit we still link the CPU libraries only.
if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(TORCH_CUDA_ARCH_LIST "9.0")  # skip LibTorch's GPU probe (there may be no GPU here)
endif()
find_package(Torch 2.11 REQUIRED)
# qvg_torch: LibTorch for qvg's targets. libtorch.so from the wheel exports a statically linked,
# partial copy of std::filesystem (remove_all there jumps to address 0). Naming libstdc++ first
# puts it ahead of libtorch.so in the dynamic lookup order, so the real implementation wins.
add_library(qvg_torch INTERFACE)
target_link_libraries(qvg_torch INTERFACE "-Wl,--push-state,--no-as-needed" stdc++ "-Wl,--pop-state"
  ${TORCH_LIBRARIES})
# Warnings from LibTorch headers are not ours to fix.
foreach(_t torch torch_cpu c10 torch_cuda c10_cuda)
  if(TARGET ${_t})
    get_target_property(_inc ${_t} INTERFACE_INCLUDE_DIRECTORIES)
    if(_inc)
      set_target_properties(${_t} PROPERTIES INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${_inc}")
    endif()
  endif()
endforeach()

# ---- small libraries from Debian ---------------------------------------------------------------
find_package(nlohmann_json 3.10 REQUIRED)   # reports, configs, trajectories
find_package(CLI11 2.1 REQUIRED)            # command lines of qvg and qvg-world
# fmt: LibTorch's wheel ships its own fmt 12 headers, which shadow Debian's fmt 9 for every
# target that sees Torch's include path. Linking Debian's libfmt (or spdlog, built against it)
# from such a target mixes two fmt ABIs, so all of qvg uses fmt header-only (FMT_HEADER_ONLY):
# each translation unit is then consistent with whichever headers it sees.
find_package(fmt REQUIRED)
add_library(qvg_fmt INTERFACE)
target_compile_definitions(qvg_fmt INTERFACE FMT_HEADER_ONLY=1)
target_link_libraries(qvg_fmt INTERFACE fmt::fmt-header-only)
find_package(Threads REQUIRED)

# ---- FFmpeg (MP4 recording) --------------------------------------------------------------------
set(QVG_HAVE_FFMPEG OFF)
if(NOT QVG_WITH_FFMPEG STREQUAL "OFF")
  find_package(PkgConfig)
  if(PkgConfig_FOUND)
    pkg_check_modules(QVG_LIBAV IMPORTED_TARGET libavformat libavcodec libavutil libswscale)
  endif()
  if(QVG_LIBAV_FOUND)
    set(QVG_HAVE_FFMPEG ON)
  elseif(QVG_WITH_FFMPEG STREQUAL "ON")
    message(FATAL_ERROR "QVG_WITH_FFMPEG=ON but libavformat/libavcodec/libavutil/libswscale were not found")
  endif()
endif()

# ---- Qt 6, OpenGL, ImGui (the viewer) ----------------------------------------------------------
set(QVG_HAVE_APP OFF)
if(NOT QVG_BUILD_APP STREQUAL "OFF")
  find_package(Qt6 6.2 COMPONENTS Core Gui Widgets OpenGL OpenGLWidgets QUIET)
  find_package(OpenGL QUIET)
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(QVG_IMGUI IMPORTED_TARGET imgui)
  endif()
  if(Qt6_FOUND AND OpenGL_FOUND AND QVG_IMGUI_FOUND)
    set(QVG_HAVE_APP ON)
  elseif(QVG_BUILD_APP STREQUAL "ON")
    message(FATAL_ERROR "QVG_BUILD_APP=ON needs Qt 6 (Widgets, OpenGLWidgets), OpenGL and ImGui; "
      "run packaging/dev.sh deps")
  endif()
endif()

# ---- GoogleTest --------------------------------------------------------------------------------
if(QVG_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
