// The `heed` program: one binary, one subcommand per task. Errors reach the user as one line
// "error: <what went wrong>" and a non-zero exit; HEED_DEBUG=1 adds the C++ source location.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

#include "cli/commands.h"
#include "heed/core/error.h"
#include "heed/dist/communicator.h"

int main(int argc, char** argv) {
  // Logs go to stderr: stdout carries results (translations, the JSON line of `heed grads`).
  spdlog::set_default_logger(spdlog::stderr_color_mt("heed"));
  spdlog::set_pattern("[%Y-%m-%d %H:%M:%S] [%^%l%$] %v");
  spdlog::flush_on(spdlog::level::info);  // a training log is read while it grows, also through pipes and files

  CLI::App app{"Heed: train, fine-tune and run Transformer translation models"};
  app.require_subcommand(1);
  heed::cli::add_train_command(app);
  heed::cli::add_prepare_command(app);
  heed::cli::add_translate_command(app);
  heed::cli::add_average_command(app);
  heed::cli::add_grads_command(app);
  heed::cli::add_hf_commands(app);
  heed::cli::add_translate_ids_command(app);
  heed::cli::add_score_command(app);
  heed::cli::add_plot_command(app);
  heed::cli::add_selftest_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const heed::Error& e) {
    spdlog::error("{}", e.what());
    if (std::getenv("HEED_DEBUG")) spdlog::error("raised at {}", e.where());
    heed::dist::abort_job(1);  // the other ranks of a job would otherwise wait for this one forever
    return 1;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    heed::dist::abort_job(1);
    return 1;
  }
  return 0;
}
