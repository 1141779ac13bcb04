#pragma once
// A minimal PNG writer for inspecting rollouts: 8-bit RGB, zlib "stored" (uncompressed) blocks,
// so it needs no compression library. Files are a few times larger than compressed PNGs, which
// does not matter for 64x64 previews.

#include <cstdint>
#include <filesystem>
#include <span>

namespace qvg::cli {

// rgb: [height, width, 3] bytes. Throws std::runtime_error when the size does not match or the
// file cannot be written.
void write_png(const std::filesystem::path& path, std::span<const std::uint8_t> rgb, int width,
               int height);

}  // namespace qvg::cli
