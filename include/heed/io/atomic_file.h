// Crash-safe file writes: a temporary file beside the target, fsync, rename over the target, then fsync
// of the directory so the rename itself is durable. A crash at any moment leaves the old file or the new
// one, never a torn mix. Checkpoints depend on this.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
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

// The same for a whole directory (a checkpoint, a model directory): `fill` writes the files into a fresh
// hidden directory beside `target`, ".<name>.tmp.<pid>", whose files it writes durably itself
// (write_file_atomic, save_safetensors); then that directory is synced, renamed to `target`, and the parent
// synced. A crash at any moment leaves at most the hidden directory, which listings of step-* directories
// ignore and train::remove_abandoned_saves finds by its ".tmp." (and ".old.") names. A failure (a full disk)
// removes it before the error goes on. An existing `target` is replaced when `replace` is true (moved aside
// to ".<name>.old.<pid>", removed once the new one is in place), and refused, naming it, when false.
void write_directory_atomic(const std::filesystem::path& target,
                            const std::function<void(const std::filesystem::path& temp)>& fill, bool replace);

// fsync of a directory, after renames inside it.
void sync_directory(const std::string& dir);
// CRC-32 (IEEE) of n bytes; pass the CRC of the bytes before them as `previous` to continue it.
uint32_t crc32(const void* data, size_t n, uint32_t previous = 0);
// CRC-32 (IEEE) of a whole file, to detect truncated or corrupted checkpoints.
uint32_t file_crc32(const std::string& path);

}  // namespace heed::io
