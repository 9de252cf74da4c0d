// A clean stop on SIGINT/SIGTERM for as long as a StopSignal lives.
//
// The first signal only asks for a stop: training finishes its update, writes a checkpoint and returns
// normally, as cluster pre-emption expects. A second one kills as usual, for a user who does not want to
// wait for the save; during a save, though, it says that the save finishes first, as being killed then
// would cost the very checkpoint the first signal asked for (SIGKILL still abandons it).
#pragma once

#include <csignal>

namespace heed::train {

class StopSignal {
 public:
  // Installs the handlers; the destructor restores the previous ones, so a library user's own survive.
  // One StopSignal at a time: the signal it records belongs to the process.
  StopSignal();
  ~StopSignal();
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  bool requested() const;
  int signal() const;  // the first signal received: SIGINT, SIGTERM, or 0

  // Marks a checkpoint save for the handler while it lives.
  class Saving {
   public:
    ~Saving();
    Saving(const Saving&) = delete;
    Saving& operator=(const Saving&) = delete;

   private:
    friend class StopSignal;
    Saving();
  };
  Saving saving() const { return {}; }

 private:
  void (*previous_int_)(int);
  void (*previous_term_)(int);
};

}  // namespace heed::train
