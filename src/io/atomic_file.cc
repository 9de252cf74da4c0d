#include "heed/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "heed/core/error.h"

namespace heed::io {

AtomicFile::AtomicFile(std::string target) : target_(std::move(target)) {
  static std::atomic<uint64_t> counter{0};
  temp_ = fmt::format("{}.tmp.{}.{}", target_, getpid(), counter++);
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  HEED_CHECK(fd_ >= 0, "cannot create {}: {}", temp_, std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    HEED_CHECK(w > 0, "cannot write {}: {}", target_, std::strerror(errno));
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFile::commit() {
  HEED_CHECK(::fsync(fd_) == 0, "cannot write {}: fsync failed: {}", target_, std::strerror(errno));
  const int rc = ::close(fd_);
  fd_ = -1;
  HEED_CHECK(rc == 0, "cannot write {}: close failed: {}", target_, std::strerror(errno));
  HEED_CHECK(::rename(temp_.c_str(), target_.c_str()) == 0, "cannot rename {} to {}: {}", temp_, target_,
             std::strerror(errno));
  committed_ = true;
  const std::string dir = std::filesystem::path(target_).parent_path().string();
  sync_directory(dir.empty() ? "." : dir);
}

void write_file_atomic(const std::string& path, const std::string& content) {
  AtomicFile file(path);
  file.write(content.data(), content.size());
  file.commit();
}

void sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  HEED_CHECK(fd >= 0, "cannot open directory {} to sync it: {}", dir, std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  HEED_CHECK(rc == 0, "cannot sync directory {}: {}", dir, std::strerror(errno));
}

uint32_t crc32(const void* data, size_t n, uint32_t previous) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  const auto* bytes = static_cast<const unsigned char*>(data);
  uint32_t crc = previous ^ 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ bytes[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

uint32_t file_crc32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  HEED_CHECK(in.good(), "cannot read {}: {}", path, std::strerror(errno));
  std::vector<char> buffer(1 << 20);
  uint32_t crc = 0;
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    crc = crc32(buffer.data(), static_cast<size_t>(in.gcount()), crc);
  }
  return crc;
}

}  // namespace heed::io
