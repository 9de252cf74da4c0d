#include "heed/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
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

namespace {

namespace fs = std::filesystem;

// A fresh hidden directory next to `target`; the leading dot keeps it out of checkpoint listings.
fs::path temp_beside(const fs::path& target) {
  fs::create_directories(target.parent_path());
  const fs::path temp = target.parent_path() / fmt::format(".{}.tmp.{}", target.filename().string(), getpid());
  fs::remove_all(temp);
  fs::create_directories(temp);
  return temp;
}

// Swaps a finished directory into place; an existing one (a re-saved best checkpoint) moves aside first.
void install_directory(const fs::path& temp, const fs::path& target) {
  sync_directory(temp.string());
  const fs::path parent = target.parent_path();
  const fs::path old = parent / fmt::format(".{}.old.{}", target.filename().string(), getpid());
  if (fs::exists(target)) fs::rename(target, old);
  fs::rename(temp, target);
  sync_directory(parent.string());
  fs::remove_all(old);
}

// Puts a finished directory in place unless `target` exists by then: RENAME_NOREPLACE decides in the
// kernel, so a directory that appears while `fill` ran is not replaced either.
void install_new_directory(const fs::path& temp, const fs::path& target) {
  sync_directory(temp.string());
  HEED_CHECK(::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE) == 0,
             "cannot rename {} to {}: {}", temp.string(), target.string(), std::strerror(errno));
  sync_directory(target.parent_path().string());
}

}  // namespace

void write_directory_atomic(const fs::path& target_path, const std::function<void(const fs::path& temp)>& fill,
                            bool replace) {
  HEED_CHECK(replace || !fs::exists(target_path), "{} exists already: it is not overwritten; choose a new name",
             target_path.string());
  // The temporary directory's name and place come from the target's: "out/" and "out" name the same one.
  fs::path target = target_path.lexically_normal();
  if (!target.has_filename()) target = target.parent_path();
  if (!target.has_parent_path()) target = fs::path(".") / target;
  const fs::path temp = temp_beside(target);
  try {
    fill(temp);
    if (replace) install_directory(temp, target);
    else install_new_directory(temp, target);
  } catch (...) {
    std::error_code ignored;  // the error to report is the one that stopped the write
    fs::remove_all(temp, ignored);
    throw;
  }
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
