#include "mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "qvg/core/error.h"

namespace qvg::core {

MappedFile::~MappedFile() {
    if (data_ != nullptr) ::munmap(data_, bytes_);
}

std::shared_ptr<const MappedFile> MappedFile::open(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open '{}': {}", path.string(), std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        fail("'{}' is not a regular file", path.string());
    }
    std::shared_ptr<MappedFile> file(new MappedFile());
    file->bytes_ = static_cast<size_t>(st.st_size);
    if (file->bytes_ > 0) {
        void* data = ::mmap(nullptr, file->bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        if (data == MAP_FAILED) {
            const int err = errno;
            ::close(fd);
            fail("cannot map '{}': {}", path.string(), std::strerror(err));
        }
        file->data_ = data;
    }
    ::close(fd);
    return file;
}

}  // namespace qvg::core
