#include "heed/data/vocab_dir.h"

#include <algorithm>
#include <filesystem>
#include <tuple>

#include "heed/core/error.h"

namespace heed::data {

namespace {

bool has_all(const std::filesystem::path& dir, const std::vector<std::string>& names) {
  return std::all_of(names.begin(), names.end(),
                     [&](const std::string& n) { return std::filesystem::exists(dir / n); });
}

}  // namespace

std::vector<std::string> vocab_names(bool joint) {
  return joint ? std::vector<std::string>{"vocab.model"}
               : std::vector<std::string>{"vocab.src.model", "vocab.tgt.model"};
}

Vocabularies load_vocabularies(const std::string& dir) {
  const std::filesystem::path d(dir);
  auto path = [&](const std::string& name) { return (d / name).string(); };
  if (has_all(d, kMarianVocab)) {
    return {Vocab::load_marian(path("source.spm"), path("vocab.json")),
            Vocab::load_marian(path("target.spm"), path("vocab.json")),
            {path("source.spm"), path("target.spm"), path("vocab.json")}};
  }
  if (has_all(d, vocab_names(true))) {
    const Vocab joint = Vocab::load(path("vocab.model"));
    return {joint, joint, {path("vocab.model")}};
  }
  HEED_CHECK(has_all(d, vocab_names(false)),
             "{} holds no vocabulary (vocab.model; vocab.src.model and vocab.tgt.model; or MarianMT's source.spm, "
             "target.spm and vocab.json)",
             dir);
  return {Vocab::load(path("vocab.src.model")), Vocab::load(path("vocab.tgt.model")),
          {path("vocab.src.model"), path("vocab.tgt.model")}};
}

std::string vocabulary_difference(const Vocabularies& a, const std::string& a_name, const Vocabularies& b,
                                  const std::string& b_name) {
  for (const auto& [side, va, vb] : {std::tuple{"source", &a.src, &b.src}, std::tuple{"target", &a.tgt, &b.tgt}}) {
    if (va->size() != vb->size())
      return fmt::format("the {} vocabulary has {} pieces in {} but {} in {}", side, va->size(), a_name, vb->size(),
                         b_name);
    for (int32_t id = 0; id < static_cast<int32_t>(va->size()); ++id)
      if (va->piece(id) != vb->piece(id))
        return fmt::format("{} id {} is '{}' in {} but '{}' in {}", side, id, va->piece(id), a_name, vb->piece(id),
                           b_name);
  }
  return "";
}

}  // namespace heed::data
