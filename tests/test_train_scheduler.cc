// The training loop's decisions (train/scheduler.h), without a model: when it logs, validates, saves and
// stops, and how validations drive early stopping.
#include <catch2/catch.hpp>

#include <functional>
#include <vector>

#include "heed/train/scheduler.h"

using namespace heed;

namespace {

train::TrainConfig config(int64_t max_steps) {
  train::TrainConfig c;
  c.training.max_steps = max_steps;
  c.logging.every = 3;
  c.validation.every = 4;
  c.checkpoints.every = 5;
  return c;
}

// The steps after which `due` holds, updates 1 to max_steps run one by one; `after` runs after each.
std::vector<int64_t> steps_where(const train::TrainConfig& c, train::Scheduler& scheduler, train::TrainState& state,
                                 const std::function<bool()>& due, const std::function<void()>& after = [] {}) {
  std::vector<int64_t> steps;
  while (scheduler.keep_going()) {
    ++state.step;
    if (due()) steps.push_back(state.step);
    after();
  }
  CHECK(state.step == c.training.max_steps);
  return steps;
}

using Steps = std::vector<int64_t>;

}  // namespace

TEST_CASE("train scheduler: logs every logging.every updates and after the last", "[train]") {
  const train::TrainConfig c = config(10);
  train::TrainState state;
  train::Scheduler scheduler(c, state, true, false);
  CHECK(steps_where(c, scheduler, state, [&] { return scheduler.log_due(); }) == Steps{3, 6, 9, 10});
}

TEST_CASE("train scheduler: validates every validation.every updates and after the last", "[train]") {
  train::TrainConfig c = config(10);
  train::TrainState state;
  SECTION("every 4") {
    train::Scheduler scheduler(c, state, true, false);
    CHECK(steps_where(c, scheduler, state, [&] { return scheduler.validate_due(); }) == Steps{4, 8, 10});
  }
  SECTION("every 0: only after the last") {
    c.validation.every = 0;
    train::Scheduler scheduler(c, state, true, false);
    CHECK(steps_where(c, scheduler, state, [&] { return scheduler.validate_due(); }) == Steps{10});
  }
  SECTION("never without validation data") {
    train::Scheduler scheduler(c, state, false, false);
    CHECK(steps_where(c, scheduler, state, [&] { return scheduler.validate_due(); }).empty());
  }
}

TEST_CASE("train scheduler: saves every checkpoints.every updates and after the last, once per step", "[train]") {
  const train::TrainConfig c = config(12);
  train::TrainState state;
  train::Scheduler scheduler(c, state, true, false);
  CHECK(!scheduler.final_save_due());  // no update, nothing to save
  const Steps saved = steps_where(c, scheduler, state, [&] { return scheduler.save_due(); }, [&] {
    if (scheduler.save_due()) scheduler.saved();
    if (state.step == 7) {  // a checkpoint of the step exists (a new best): the scheduled one is not repeated
      scheduler.saved();
      CHECK(!scheduler.save_due());
    }
  });
  CHECK(saved == Steps{5, 10, 12});
  CHECK(!scheduler.final_save_due());

  SECTION("a run that ends between checkpoints still owes one") {
    state.step = 13;
    CHECK(scheduler.final_save_due());
    scheduler.saved();
    CHECK(!scheduler.final_save_due());
  }
  SECTION("a resumed run does not save the checkpoint it continues from again") {
    train::TrainState resumed;
    resumed.step = 10;
    train::Scheduler again(c, resumed, true, true);
    CHECK(!again.save_due());
    CHECK(!again.final_save_due());
    train::Scheduler fresh(c, resumed, true, false);
    CHECK(fresh.save_due());
  }
}

TEST_CASE("train scheduler: stops at max_steps, at max_epochs and on a stop signal", "[train]") {
  train::TrainConfig c = config(10);
  train::TrainState state;
  train::Scheduler scheduler(c, state, true, false);
  state.step = 9;
  CHECK(scheduler.keep_going());
  state.step = 10;
  CHECK(!scheduler.keep_going());

  state.step = 4;
  CHECK(!scheduler.epochs_done(1000));  // max_epochs 0: no limit
  c.training.max_epochs = 2;
  CHECK(!scheduler.epochs_done(1));
  CHECK(scheduler.epochs_done(2));

  CHECK(!scheduler.stopped());
  CHECK(scheduler.keep_going());
  scheduler.stop();
  CHECK(scheduler.stopped());
  CHECK(!scheduler.keep_going());
  CHECK(!scheduler.save_due());  // step 4 is not a checkpoint step: the stop's save is the final one
  CHECK(scheduler.final_save_due());
}

TEST_CASE("train scheduler: bests and early stopping after validation.patience validations", "[train]") {
  train::TrainConfig c = config(100);
  c.validation.early_stopping_metric = "bleu";
  c.validation.patience = 2;
  train::TrainState state;
  train::Scheduler scheduler(c, state, true, false);
  using Names = std::vector<std::string>;

  state.step = 2;  // not a checkpoint step
  CHECK(scheduler.record_validation({{"bleu", 10}, {"loss", 5}, {"ppl", 100}}) == Names{"bleu", "loss"});
  CHECK(state.best == std::map<std::string, double>{{"bleu", 10}, {"loss", 5}});
  CHECK(state.bad_validations == 0);
  // Loss improves downwards, BLEU upwards; ppl is never a best. A tie does not improve.
  CHECK(scheduler.record_validation({{"bleu", 9}, {"loss", 4}, {"ppl", 50}}) == Names{"loss"});
  CHECK(state.bad_validations == 1);
  CHECK(!scheduler.early_stopped());
  CHECK(scheduler.keep_going());
  SECTION("an improvement of the metric resets the patience") {
    CHECK(scheduler.record_validation({{"bleu", 11}, {"loss", 6}}) == Names{"bleu"});
    CHECK(state.bad_validations == 0);
    CHECK(!scheduler.early_stopped());
  }
  SECTION("the second validation without one stops, and saves") {
    CHECK(scheduler.record_validation({{"bleu", 10}, {"loss", 3}}) == Names{"loss"});
    CHECK(state.best.at("bleu") == 10);
    CHECK(state.bad_validations == 2);
    CHECK(scheduler.early_stopped());
    CHECK(!scheduler.keep_going());
    CHECK(scheduler.save_due());
  }
  SECTION("patience 0 never stops") {
    c.validation.patience = 0;
    for (int i = 0; i < 5; ++i) scheduler.record_validation({{"bleu", 1}});
    CHECK(state.bad_validations == 6);
    CHECK(!scheduler.early_stopped());
  }
  SECTION("the metric is the configured one") {
    c.validation.early_stopping_metric = "loss";
    CHECK(scheduler.record_validation({{"bleu", 5}, {"loss", 1}}) == Names{"loss"});
    CHECK(state.bad_validations == 0);
  }
}
