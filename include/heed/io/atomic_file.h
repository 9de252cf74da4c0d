// Crash-safe file writes: a temporary file beside the target, fsync, rename over the target, then fsync
// of the directory so the rename itself is durable. A crash at any moment leaves the old file or the new
// one, never a torn mix. Checkpoints depend on this.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace heed::io {

class AtomicFile {
 public:
  explicit AtomicFile(std::string target);
  ~AtomicFile();  // unless committed: closes and removes the temporary file
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void commit();

 private:
  std::string target_, temp_;
  int fd_ = -1;
  bool committed_ = false;
};

void write_file_atomic(const std::string& path, const std::string& content);
// fsync of a directory, after renames inside it.
void sync_directory(const std::string& dir);
// CRC-32 (IEEE) of n bytes; pass the CRC of the bytes before them as `previous` to continue it.
uint32_t crc32(const void* data, size_t n, uint32_t previous = 0);
// CRC-32 (IEEE) of a whole file, to detect truncated or corrupted checkpoints.
uint32_t file_crc32(const std::string& path);

}  // namespace heed::io
