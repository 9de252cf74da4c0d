// What a run trains from, prepared once: the vocabulary (trained on a sample of the text, or adopted) and
// the corpus store (heed/data/store.h). `heed prepare` does only this; `heed train` does it when the store
// is missing or stale and otherwise opens the store in milliseconds.
//
// The store lives at data.store, by default <run_dir>/store: the run directory is writable wherever
// training runs and, for several processes, already shared by them (resumes read their checkpoints
// there), so every rank and every resume finds it; the data directory may be read-only, and one store
// there would be rebuilt back and forth by runs with other vocabularies. Runs that share text, vocabulary
// and max_length may point data.store at one directory; its manifest keeps a mismatched run from using it.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "heed/data/store.h"
#include "heed/data/vocab_dir.h"
#include "heed/train/train_config.h"

namespace heed::train {

// A training corpus of the config, with its sampling weight when one is given.
struct TrainingCorpus {
  data::CorpusFiles files;
  double weight = 1;
  bool weighted = false;  // weight= was written
};

// data.train, or its shorthand data.train_src and data.train_tgt; an entry that does not parse is an error
// naming it.
std::vector<TrainingCorpus> training_corpora(const DataConfig& d);

// The run's vocabulary files: from the checkpoint it continues (resume, fine-tuning), from files the
// config names, or trained on a sample of the training text. All end up in the run directory, so
// checkpoints carry them. Only the leading rank calls this; the others load what it wrote.
void prepare_vocab_files(const TrainConfig& c, const std::filesystem::path& run_dir,
                         const std::string& from_checkpoint);
data::Vocabularies load_vocabs(const TrainConfig& c, const std::filesystem::path& run_dir);

std::string store_dir(const TrainConfig& c);
data::StoreSettings store_settings(const TrainConfig& c, const data::Vocabularies& v);

// Builds the store unless it is there and current; with verify_ids, a current store's ids are checked
// against their CRC-32 too. A damaged store is refused, naming the file.
void prepare_store(const TrainConfig& c, const data::Vocabularies& v, bool verify_ids);

// Each corpus's share of an epoch for the batcher (BatcherOptions::corpus_weights): empty, for every pair
// once, unless weights or a temperature are given.
std::vector<double> corpus_weights(const TrainConfig& c, const data::CorpusStore& store);

// heed prepare: the vocabulary and the store of the config's run.
void prepare(const TrainConfig& c);

}  // namespace heed::train
