// The corpus store: preparation streams each corpus through fixed-size chunks of line pairs (read and
// checked on this thread, encoded on OpenMP's, filtered and appended to the files here), so its memory is
// a chunk's, whatever the corpus size; opening maps the files and checks them against the manifest.
#include "heed/data/store.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <tuple>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "heed/core/error.h"
#include "heed/data/text.h"
#include "heed/io/atomic_file.h"

namespace heed::data {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kFormatVersion = 1;
constexpr size_t kChunkPairs = size_t{1} << 16;  // line pairs encoded together: ~20 MB of text and ids
const char* const kManifest = "manifest.json";

// What identifies a text file's contents: size and modification time decide quickly; the CRC-32 decides
// when they changed but the bytes may not have (a copy, a touch).
struct TextStamp {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint32_t crc32 = 0;
};

TextStamp stat_text(const std::string& path) {
  struct stat st {};
  HEED_CHECK(::stat(path.c_str(), &st) == 0, "cannot read {}: {}", path, std::strerror(errno));
  HEED_CHECK(!S_ISDIR(st.st_mode), "cannot read {}: it is a directory", path);
  TextStamp stamp;
  stamp.size = static_cast<uint64_t>(st.st_size);
  stamp.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return stamp;
}

json stamp_json(const TextStamp& s) { return {{"size", s.size}, {"mtime_ns", s.mtime_ns}, {"crc32", s.crc32}}; }

// The form paths are stored and compared in: the same file reached from another directory is the same.
std::string canonical_path(const std::string& path) { return fs::weakly_canonical(fs::absolute(path)).string(); }

// Reads the manifest; a store without one is missing (a crash never leaves one half-written: the directory
// appears complete or not at all), one that does not parse is damaged.
std::optional<json> read_manifest(const fs::path& dir) {
  const fs::path path = dir / kManifest;
  if (!fs::exists(path)) return std::nullopt;
  std::ifstream in(path);
  json manifest;
  try {
    in >> manifest;
    HEED_CHECK(manifest.at("format") == "heed-store", "{}: not a Heed corpus store manifest", path.string());
    manifest.at("version").get<int>();
    manifest.at("corpora").get<json::array_t>();
    manifest.at("files").get<json::object_t>();
  } catch (const json::exception& e) {
    HEED_CHECK(false, "{}: damaged store manifest ({}); remove {} to prepare it again", path.string(), e.what(),
               dir.string());
  }
  return manifest;
}

// Why the store described by `manifest` does not hold `settings`; empty when it does.
std::string stale_reason(const json& manifest, const StoreSettings& settings) {
  if (manifest.value("version", 0) != kFormatVersion)
    return fmt::format("it has format version {}, this Heed writes {}", manifest.value("version", 0), kFormatVersion);
  if (manifest.value("vocab_fingerprint", "") != settings.vocab_fingerprint)
    return "the vocabulary changed";
  if (const auto stored = manifest.value("max_length", int64_t{0}); stored != settings.max_length)
    return fmt::format("data.max_length changed from {} to {}", stored, settings.max_length);
  const json& corpora = manifest.at("corpora");
  if (corpora.size() != settings.corpora.size())
    return fmt::format("it holds {} corpora, the config names {}", corpora.size(), settings.corpora.size());
  for (size_t c = 0; c < corpora.size(); ++c) {
    for (const auto& [side, path] : {std::pair{"src", settings.corpora[c].src}, {"tgt", settings.corpora[c].tgt}}) {
      const json& stored = corpora[c];
      if (stored.value(side, "") != canonical_path(path))
        return fmt::format("corpus {} is {}, the store holds {}", c + 1, path, stored.value(side, ""));
      const json stamp = stored.value(std::string(side) + "_text", json::object());
      const TextStamp now = stat_text(path);
      if (now.size == stamp.value("size", uint64_t{0}) && now.mtime_ns == stamp.value("mtime_ns", int64_t{0})) continue;
      if (now.size != stamp.value("size", uint64_t{0}) || io::file_crc32(path) != stamp.value("crc32", uint32_t{0}))
        return fmt::format("{} changed since it was prepared", path);
    }
  }
  return "";
}

// Checks every file against the manifest's size and CRC-32; the ids files' CRC-32 only with verify_ids.
void check_files(const fs::path& dir, const json& manifest, bool verify_ids) {
  for (const auto& [name, entry] : manifest.at("files").items()) {
    const fs::path path = dir / name;
    HEED_CHECK(fs::is_regular_file(path), "{}: missing from the store (its manifest lists it); remove {} to prepare "
               "it again", path.string(), dir.string());
    const uint64_t size = fs::file_size(path), listed = entry.value("size", uint64_t{0});
    HEED_CHECK(size == listed, "{}: {} bytes, but the store's manifest says {}: truncated or damaged; remove {} to "
               "prepare it again", path.string(), size, listed, dir.string());
    if (!verify_ids && name.ends_with(".ids")) continue;
    HEED_CHECK(io::file_crc32(path.string()) == entry.value("crc32", uint32_t{0}), "{}: CRC-32 differs from the store's "
               "manifest: the file is damaged; remove {} to prepare it again", path.string(), dir.string());
  }
}

// A file of the store being written: buffered, with its CRC-32 kept as it grows.
class StoreFileWriter {
 public:
  StoreFileWriter(const fs::path& dir, std::string name) : name_(std::move(name)), file_((dir / name_).string()) {}

  template <typename T>
  void append(const T* data, size_t count) {
    const size_t n = count * sizeof(T);
    crc_ = io::crc32(data, n, crc_);
    size_ += n;
    const auto* bytes = reinterpret_cast<const char*>(data);
    buffer_.insert(buffer_.end(), bytes, bytes + n);
    if (buffer_.size() >= (size_t{8} << 20)) flush();
  }
  // Commits the file; returns its manifest entry.
  json finish() {
    flush();
    file_.commit();
    return {{"size", size_}, {"crc32", crc_}};
  }
  const std::string& name() const { return name_; }

 private:
  void flush() {
    file_.write(buffer_.data(), buffer_.size());
    buffer_.clear();
  }
  std::string name_;
  io::AtomicFile file_;
  std::vector<char> buffer_;
  uint64_t size_ = 0;
  uint32_t crc_ = 0;
};

// Removes the hidden directories that write_directory_atomic leaves when a preparation of `dir` was killed;
// one whose process still runs (on this machine) is another preparation under way.
void remove_abandoned_preparations(const fs::path& dir) {
  const fs::path parent = dir.parent_path().empty() ? fs::path(".") : dir.parent_path();
  if (!fs::is_directory(parent)) return;
  for (const char* kind : {".tmp.", ".old."}) {
    const std::string prefix = fmt::format(".{}{}", dir.filename().string(), kind);
    for (const auto& entry : fs::directory_iterator(parent)) {
      const std::string name = entry.path().filename().string();
      if (!name.starts_with(prefix)) continue;
      const pid_t pid = static_cast<pid_t>(std::atoll(name.substr(prefix.size()).c_str()));
      if (pid > 0 && pid != ::getpid() && ::kill(pid, 0) == 0) continue;
      spdlog::info("removing {}, left by a preparation that did not finish", entry.path().string());
      fs::remove_all(entry.path());
    }
  }
}

// The files of a store being written, pair after pair.
class StoreWriter {
 public:
  explicit StoreWriter(const fs::path& dir)
      : src_ids_(dir, "src.ids"), src_offsets_(dir, "src.offsets"), tgt_ids_(dir, "tgt.ids"),
        tgt_offsets_(dir, "tgt.offsets"), lines_(dir, "lines") {
    const int64_t zero = 0;
    src_offsets_.append(&zero, 1);
    tgt_offsets_.append(&zero, 1);
  }
  void add(const std::vector<int32_t>& src, const std::vector<int32_t>& tgt, int64_t line) {
    src_ids_.append(src.data(), src.size());
    tgt_ids_.append(tgt.data(), tgt.size());
    src_end_ += static_cast<int64_t>(src.size());
    tgt_end_ += static_cast<int64_t>(tgt.size());
    src_offsets_.append(&src_end_, 1);
    tgt_offsets_.append(&tgt_end_, 1);
    lines_.append(&line, 1);
    ++pairs_;
  }
  int64_t pairs() const { return pairs_; }
  // Commits every file; returns the manifest's "files".
  json finish() {
    json files;
    for (StoreFileWriter* f : {&src_ids_, &src_offsets_, &tgt_ids_, &tgt_offsets_, &lines_}) files[f->name()] = f->finish();
    return files;
  }

 private:
  StoreFileWriter src_ids_, src_offsets_, tgt_ids_, tgt_offsets_, lines_;
  int64_t src_end_ = 0, tgt_end_ = 0, pairs_ = 0;
};

// Reads the next chunk of line pairs; false when both files have ended. Files that end at different lines
// are an error naming both counts and the first line without a counterpart.
bool read_chunk(LineReader& src, LineReader& tgt, std::vector<std::string>& src_chunk,
                std::vector<std::string>& tgt_chunk) {
  src_chunk.clear();
  tgt_chunk.clear();
  for (std::string_view a, b; src_chunk.size() < kChunkPairs;) {
    const bool has_a = src.next(a), has_b = tgt.next(b);
    if (has_a != has_b) {
      LineReader& longer = has_a ? src : tgt;
      const int64_t unmatched = longer.line_number();
      for (std::string_view rest; longer.next(rest);) {
      }
      HEED_CHECK(false, "{}:{}: this line has no counterpart: {} has {} lines but {} has {}; a parallel corpus needs "
                 "one line per sentence in both files", longer.path(), unmatched, src.path(), src.line_number(),
                 tgt.path(), tgt.line_number());
    }
    if (!has_a) break;
    src_chunk.emplace_back(a);
    tgt_chunk.emplace_back(b);
  }
  return !src_chunk.empty();
}

// Encodes one corpus into `out`; returns its manifest entry.
json encode_corpus(const CorpusFiles& corpus, const Vocab& src_vocab, const Vocab& tgt_vocab, int64_t max_length,
                   StoreWriter& out) {
  TextStamp src_stamp = stat_text(corpus.src), tgt_stamp = stat_text(corpus.tgt);
  LineReader src(corpus.src), tgt(corpus.tgt);
  FilterReport report;
  report.max_length = max_length;
  const int64_t first_pair = out.pairs();
  std::vector<std::string> src_chunk, tgt_chunk;
  while (read_chunk(src, tgt, src_chunk, tgt_chunk)) {
    const std::vector<std::vector<int32_t>> src_encoded = src_vocab.encode_lines(src_chunk);
    const std::vector<std::vector<int32_t>> tgt_encoded = tgt_vocab.encode_lines(tgt_chunk);
    for (size_t i = 0; i < src_chunk.size(); ++i) {
      const int64_t line = report.lines;
      if (keep_pair(src_encoded[i], tgt_encoded[i], report)) out.add(src_encoded[i], tgt_encoded[i], line);
    }
  }
  src_stamp.crc32 = src.crc32();
  tgt_stamp.crc32 = tgt.crc32();
  spdlog::info("{} / {}: {}", corpus.src, corpus.tgt, report.summary());
  return {{"src", canonical_path(corpus.src)}, {"tgt", canonical_path(corpus.tgt)}, {"tag", corpus.tag},
          {"src_text", stamp_json(src_stamp)}, {"tgt_text", stamp_json(tgt_stamp)}, {"first_pair", first_pair},
          {"pairs", report.kept}, {"lines", report.lines}, {"empty", report.empty}, {"too_long", report.too_long}};
}

}  // namespace

std::string vocab_fingerprint(const Vocab& src, const Vocab& tgt) {
  uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a, 64 bits, over both models with their lengths between
  for (const std::string* bytes : {&src.serialized(), &tgt.serialized()}) {
    const std::string part = std::to_string(bytes->size()) + ":" + *bytes;
    for (unsigned char c : part) hash = (hash ^ c) * 0x100000001b3ULL;
  }
  return fmt::format("fnv1a64:{:016x}", hash);
}

StoreStatus check_store(const std::string& dir, const StoreSettings& settings, bool verify_ids) {
  const std::optional<json> manifest = read_manifest(dir);
  if (!manifest) return {false, fmt::format("{} does not exist", (fs::path(dir) / kManifest).string())};
  const std::string stale = stale_reason(*manifest, settings);
  if (!stale.empty()) return {false, stale};
  check_files(dir, *manifest, verify_ids);
  return {true, ""};
}

void build_store(const std::string& dir, const StoreSettings& settings, const Vocab& src_vocab,
                 const Vocab& tgt_vocab) {
  HEED_CHECK(settings.max_length >= 2, "max_length must be at least 2 (one token and eos), got {}",
             settings.max_length);
  remove_abandoned_preparations(fs::path(dir).lexically_normal());
  const auto start = std::chrono::steady_clock::now();
  int64_t lines = 0;
  io::write_directory_atomic(
      dir,
      [&](const fs::path& temp) {
        StoreWriter out(temp);
        json corpora = json::array();
        for (const CorpusFiles& corpus : settings.corpora) {
          corpora.push_back(encode_corpus(corpus, src_vocab, tgt_vocab, settings.max_length, out));
          lines += corpora.back()["lines"].get<int64_t>();
        }
        const json manifest = {{"format", "heed-store"},
                               {"version", kFormatVersion},
                               {"vocab_fingerprint", settings.vocab_fingerprint},
                               {"max_length", settings.max_length},
                               {"pairs", out.pairs()},
                               {"corpora", corpora},
                               {"files", out.finish()}};
        io::write_file_atomic((temp / kManifest).string(), manifest.dump(1) + "\n");
      },
      /*replace=*/true);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("prepared {}: {} line pairs in {:.1f} s ({:.0f} pairs/s)", dir, lines, seconds,
               static_cast<double>(lines) / std::max(seconds, 1e-9));
}

CorpusStore::~CorpusStore() {
  for (const Mapping& m : mappings_)
    if (m.size > 0) ::munmap(const_cast<void*>(m.data), m.size);
}

const void* CorpusStore::map(const std::string& name, size_t expected_size, int advice) {
  const std::string path = (fs::path(dir_) / name).string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  HEED_CHECK(fd >= 0, "cannot read {}: {}", path, std::strerror(errno));
  struct stat st {};
  const bool stat_ok = ::fstat(fd, &st) == 0;
  const auto size = static_cast<size_t>(st.st_size);
  if (!stat_ok || size != expected_size) ::close(fd);
  HEED_CHECK(stat_ok, "cannot read {}: {}", path, std::strerror(errno));
  HEED_CHECK(size == expected_size, "{}: {} bytes where the store's manifest implies {}: truncated or damaged; remove "
             "{} to prepare it again", path, size, expected_size, dir_);
  if (size == 0) {  // mmap refuses empty mappings; an empty side of an empty corpus needs none
    ::close(fd);
    return nullptr;
  }
  void* data = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  HEED_CHECK(data != MAP_FAILED, "cannot map {}: {}", path, std::strerror(errno));
  mappings_.push_back({data, size});
  ::madvise(data, size, advice);  // a hint: its failure changes nothing but speed
  return data;
}

std::shared_ptr<const CorpusStore> CorpusStore::open(const std::string& dir, const StoreSettings& settings) {
  const StoreStatus status = check_store(dir, settings);
  HEED_CHECK(status.usable, "the corpus store {} does not match the config: {}; heed prepare (or heed train) "
             "prepares it again", dir, status.reason);
  const json manifest = *read_manifest(dir);
  std::shared_ptr<CorpusStore> store(new CorpusStore());
  store->dir_ = dir;
  store->pairs_ = manifest.at("pairs").get<int64_t>();
  const auto pairs = static_cast<size_t>(store->pairs_);
  const json& files = manifest.at("files");
  store->src_offsets_ = static_cast<const int64_t*>(store->map("src.offsets", (pairs + 1) * sizeof(int64_t)));
  store->tgt_offsets_ = static_cast<const int64_t*>(store->map("tgt.offsets", (pairs + 1) * sizeof(int64_t)));
  store->lines_ = static_cast<const int64_t*>(store->map("lines", pairs * sizeof(int64_t)));
  for (const auto& [side, offsets, ids] : {std::tuple{"src", store->src_offsets_, &store->src_ids_},
                                          {"tgt", store->tgt_offsets_, &store->tgt_ids_}}) {
    const std::string name = std::string(side) + ".ids";
    const uint64_t size = files.at(name).at("size").get<uint64_t>();
    HEED_CHECK(offsets[0] == 0 && static_cast<uint64_t>(offsets[pairs]) * sizeof(int32_t) == size,
               "{}: its offsets do not cover {} ({} bytes): the store is damaged; remove {} to prepare it again",
               (fs::path(dir) / (std::string(side) + ".offsets")).string(), name, size, dir);
    *ids = static_cast<const int32_t*>(store->map(name, size, MADV_RANDOM));
  }
  for (const json& corpus : manifest.at("corpora")) {
    const int64_t first = corpus.at("first_pair").get<int64_t>();
    store->ranges_.push_back({first, first + corpus.at("pairs").get<int64_t>()});
    store->sources_.push_back(corpus.at("src").get<std::string>());
    FilterReport report;
    report.lines = corpus.at("lines").get<int64_t>();
    report.kept = corpus.at("pairs").get<int64_t>();
    report.empty = corpus.at("empty").get<int64_t>();
    report.too_long = corpus.at("too_long").get<int64_t>();
    report.max_length = settings.max_length;
    store->reports_.push_back(report);
  }
  return store;
}

std::string CorpusStore::origin(int64_t i) const {
  size_t c = 0;
  while (c + 1 < ranges_.size() && i >= ranges_[c].end) ++c;
  return fmt::format("line {} of {}", lines_[i] + 1, sources_[c]);
}

}  // namespace heed::data
