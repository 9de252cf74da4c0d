// The simulator's runtime: workers, fibers, the scheduler, barriers, warp exchanges and the deferred
// cp.async copies, as cuda_sim.h describes them (the tensor-core instructions are in tensor_cores.cc).
//
// Each OS worker owns a Worker: the fibers (one per CUDA thread, with mmap'd stacks reused from block to
// block, a guard page below each), the ready set of the block it is running, and the block's barrier and
// warp state. A fiber runs until it waits; waiting switches back to the worker's scheduler loop, which
// resumes the next ready fiber. An error inside a fiber is caught at the fiber's base; the block is
// then abandoned (every other fiber it started is resumed only to unwind its stack, so destructors run)
// and launch_threads() rethrows the error in the caller's thread.
//
// Under ThreadSanitizer every CUDA thread is a TSan fiber whose only happens-before edges are CUDA's
// (sim/tsan.h), so TSan reports a missing barrier at its source lines even when the schedule happens to
// give the right answer.
#include <link.h>
#include <signal.h>
#include <ucontext.h>
#include <sys/mman.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "heed/core/error.h"
#include "sim/counters.h"
#include "sim/cuda_sim.h"
#include "sim/tsan.h"

extern "C" void heed_sim_switch(void** save_sp, void* resume_sp);
extern "C" void heed_sim_fiber_start();

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace heed::cuda_sim {

namespace {

// The deepest fiber stack that Heed's kernels use is about 6 KiB (the attention kernels, Release build),
// so 64 KiB leaves room for Debug builds and for the error paths that format messages.
constexpr size_t kStackBytes = 64 << 10;
constexpr size_t kGuardBytes = 4096;
constexpr int kMaxThreads = 1024;

enum class State { Ready, AtBarrier, AtWarp, Exited };

const char* collective_name(Collective c) {
  switch (c) {
    case Collective::Sync: return "__syncwarp";
    case Collective::Shuffle: return "a shuffle";
    case Collective::Vote: return "a vote";
    case Collective::Mma: return "mma";
    case Collective::Ldmatrix: return "ldmatrix";
  }
  return "?";
}

struct PendingCopy {
  void* dst;
  const void* src;
  bool valid;
};

struct Fiber {
  void* sp = nullptr;
  char* stack = nullptr;  // kGuardBytes of guard page, then the stack
  State state = State::Exited;
  bool started = false;  // in this block
  uint3 index{};
  unsigned warp = 0, lane = 0;
  unsigned collectives = 0;  // its parity picks the warp's exchange buffer
  unsigned barriers = 0;     // its parity picks the block's barrier token (TSan)
  void* tsan_fiber = nullptr;
  std::deque<std::vector<PendingCopy>> committed;
  std::vector<PendingCopy> open;
  // Counting memory (counters.h): how often it has executed each access instruction in this block (a
  // kernel has a few dozen, so a short list searched from its last hit beats a hash map), and its
  // global loads.
  std::vector<std::pair<const void*, uint32_t>> visits;
  size_t last_visit = 0;
  uint64_t global_loads = 0;
};

struct Exchange {
  bool active = false;
  Collective kind = Collective::Sync;
  unsigned mask = 0, arrived = 0;
  WarpSlots slots;
};

struct WarpState {
  unsigned existing = 0, exited = 0;
  Exchange buffers[2];
};

// One warp-wide memory access: the k-th execution (visit) of one instruction (site) by the lanes of a warp.
enum class Access : uint8_t { GlobalLoad, GlobalStore, Shared };
struct AccessKey {
  const void* site;
  uint32_t warp, visit;
  Access kind;
  bool operator==(const AccessKey&) const = default;
};
struct AccessKeyHash {
  size_t operator()(const AccessKey& k) const {
    return std::hash<const void*>()(k.site) ^ (size_t{k.warp} << 40) ^ (size_t{k.visit} * 0x9E3779B97F4A7C15ull) ^
           static_cast<size_t>(k.kind);
  }
};

// A worker's share of one launch's counters. The accesses of the block it runs are grouped by warp-wide
// access (the 32-byte sectors or 4-byte shared words each touched) and added up when the block ends.
struct Tally {
  LaunchCounters counts;
  std::unordered_map<AccessKey, std::vector<uint64_t>, AccessKeyHash> accesses;
  uint64_t sampled_blocks = 0;  // the blocks whose memory accesses were counted
};

// A launch of more blocks than this has its memory accesses counted in an evenly spaced sample of about
// this many blocks, and the counts scaled up (counters.h); the rest run with the hooks returning at once.
constexpr uint64_t kSampledBlocks = 128;

// The fibers that may run, in the order the schedule picks them.
class ReadySet {
 public:
  void reset(Schedule schedule, int warps, std::mt19937_64& rng) {
    schedule_ = schedule;
    fifo_.clear();
    pool_.clear();
    per_warp_.assign(warps, {});
    priority_.resize(warps);
    for (int w = 0; w < warps; ++w) priority_[w] = w;
    std::shuffle(priority_.begin(), priority_.end(), rng);
    rng_ = &rng;
  }
  void push(Fiber* f) {
    switch (schedule_) {
      case Schedule::InOrder: fifo_.push_back(f); break;
      case Schedule::Random: pool_.push_back(f); break;
      case Schedule::WarpAhead: per_warp_[f->warp].push_back(f); break;
    }
  }
  Fiber* pop() {
    switch (schedule_) {
      case Schedule::InOrder: {
        if (fifo_.empty()) return nullptr;
        Fiber* f = fifo_.front();
        fifo_.pop_front();
        return f;
      }
      case Schedule::Random: {
        if (pool_.empty()) return nullptr;
        const size_t i = (*rng_)() % pool_.size();
        Fiber* f = pool_[i];
        pool_[i] = pool_.back();
        pool_.pop_back();
        return f;
      }
      case Schedule::WarpAhead:
        for (int w : priority_)
          if (!per_warp_[w].empty()) {
            Fiber* f = per_warp_[w].front();
            per_warp_[w].pop_front();
            return f;
          }
        return nullptr;
    }
    return nullptr;
  }

 private:
  Schedule schedule_ = Schedule::InOrder;
  std::deque<Fiber*> fifo_;
  std::vector<Fiber*> pool_;
  std::vector<std::deque<Fiber*>> per_warp_;
  std::vector<int> priority_;
  std::mt19937_64* rng_ = nullptr;
};

struct Worker {
  std::vector<Fiber> fibers;
  std::vector<WarpState> warps;
  ReadySet ready;
  std::mt19937_64 rng;
  void* scheduler_sp = nullptr;
  Fiber* current = nullptr;
  Schedule schedule = Schedule::InOrder;
  int threads = 0, live = 0, exited = 0, at_barrier = 0;
  std::exception_ptr error;
  bool abandoning = false;
  void (*body)(void*) = nullptr;
  void* context = nullptr;
  std::vector<uint4> dynamic_smem;
  // Counting (counters.h): this launch's tally, or null; with memory, the launch's parameters and this
  // thread's static TLS block (where static __shared__ arrays live), which sort the accesses.
  Tally* tally = nullptr;
  bool count_block_memory = false;  // the block it runs is one whose memory accesses are counted
  uintptr_t params = 0, params_bytes = 0, tls_begin = 0, tls_bytes = 0;
  // ThreadSanitizer: the scheduler's own fiber, and the addresses whose release and acquire order the
  // block's start before every thread, every thread before the block's end, and each __syncthreads.
  void* scheduler_tsan = nullptr;
  char block_start = 0, block_end = 0, barrier_tokens[2] = {};

  Worker() : fibers(kMaxThreads) {}
  ~Worker() {
    for (Fiber& f : fibers) {
      if (f.stack) munmap(f.stack, kStackBytes);
      if (f.tsan_fiber) tsan::destroy_fiber(f.tsan_fiber);
    }
  }
};

thread_local Worker t_worker;

// A fiber that overflows its stack faults on the guard page below it. The handler (on an alternate
// signal stack: the fiber's own is full) says so, then hands the fault to whichever handler was there
// before, so the process still stops as it would have.
thread_local char* t_guard_page = nullptr;  // the running fiber's
struct sigaction g_previous_segv_action;

void on_segv(int, siginfo_t* info, void* context) {
  // The fault is an overflow when it hits the guard page, or when a frame larger than the guard page has
  // taken the stack pointer past it (kernels/CMakeLists.txt asks for stack probes, so it is the former).
  const char* address = static_cast<const char*>(info->si_addr);
  const auto* sp = reinterpret_cast<const char*>(static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RSP]);
  const bool in_guard = address >= t_guard_page && address < t_guard_page + kGuardBytes;
  if (t_guard_page && (in_guard || sp < t_guard_page + kGuardBytes)) {
    static constexpr char kMessage[] =
        "heed simulator: a CUDA thread overflowed its fiber stack (kStackBytes in src/sim/runtime.cc)\n";
    [[maybe_unused]] const ssize_t written = write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
  }
  sigaction(SIGSEGV, &g_previous_segv_action, nullptr);  // the faulting access repeats and reaches it
}

void catch_stack_overflows() {
  thread_local bool has_alternate_stack = false;
  if (!has_alternate_stack) {
    stack_t current{};
    sigaltstack(nullptr, &current);
    if (current.ss_flags & SS_DISABLE) {
      stack_t st{};
      st.ss_size = 64 << 10;
      st.ss_sp = std::malloc(st.ss_size);  // kept for the thread's life: signals may come until its end
      sigaltstack(&st, nullptr);
    }
    has_alternate_stack = true;
  }
  static const bool installed = [] {
    struct sigaction action {};
    action.sa_sigaction = on_segv;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    return sigaction(SIGSEGV, &action, &g_previous_segv_action) == 0;
  }();
  (void)installed;
}

[[noreturn]] void fail(const std::string& message) { throw Error(message, "simulator"); }

Fiber& current_fiber() {
  HEED_CHECK(t_worker.current != nullptr, "a CUDA device function was called outside a kernel launch");
  return *t_worker.current;
}

// Thrown where a fiber of a failed block waits, to unwind its stack.
struct Abandon {};

void yield(Fiber& f) {
  tsan::switch_to(t_worker.scheduler_tsan);
  heed_sim_switch(&f.sp, t_worker.scheduler_sp);
  if (t_worker.abandoning) throw Abandon{};
}

std::string thread_name(const Fiber& f) {
  return fmt::format("thread ({},{},{}) of block ({},{},{})", f.index.x, f.index.y, f.index.z, blockIdx.x, blockIdx.y,
                     blockIdx.z);
}

// Checks that no exchange or barrier waits for a thread that has just exited.
void on_exit(Worker& w, Fiber& f) {
  f.state = State::Exited;
  --w.live;
  ++w.exited;
  WarpState& warp = w.warps[f.warp];
  warp.exited |= 1u << f.lane;
  for (const Exchange& x : warp.buffers)
    if (x.active && (x.mask >> f.lane & 1u) && !(x.arrived >> f.lane & 1u))
      fail(fmt::format("{} exited while lanes of its warp wait for it in {}", thread_name(f), collective_name(x.kind)));
  if (w.at_barrier > 0)
    fail(fmt::format("{} exited while {} threads of its block wait at __syncthreads: every thread of a block must "
                     "reach each __syncthreads",
                     thread_name(f), w.at_barrier));
}

HEED_SIM_FIBER_BASE void fiber_main(void*) {
  Worker& w = t_worker;
  Fiber& f = *w.current;
  tsan::acquire(&w.block_start);
  try {
    w.body(w.context);
    TsanIgnore ignore;
    on_exit(w, f);
  } catch (const Abandon&) {
  } catch (const Error& e) {
    // The simulator's own errors name the thread already; a check in device code gets its thread named.
    w.error = e.where() == "simulator"
                  ? std::current_exception()
                  : std::make_exception_ptr(Error(fmt::format("{}: {}", thread_name(f), e.what()), e.where()));
  } catch (const std::exception& e) {
    w.error = std::make_exception_ptr(Error(fmt::format("{} threw: {}", thread_name(f), e.what()), "simulator"));
  } catch (...) {
    w.error = std::make_exception_ptr(Error(fmt::format("{} threw an exception", thread_name(f)), "simulator"));
  }
  f.state = State::Exited;
  tsan::release(&w.block_end);
  tsan::switch_to(w.scheduler_tsan);
  heed_sim_switch(&f.sp, w.scheduler_sp);
  std::abort();  // an exited fiber is never resumed
}

// A fresh frame at the top of f's stack whose first switch "returns" into heed_sim_fiber_start, which
// calls fiber_main on an aligned stack (see fiber_switch_x86_64.S for the layout the switch pops).
void prepare(Fiber& f) {
  if (!f.stack) {
    void* mem = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    HEED_CHECK(mem != MAP_FAILED, "simulator: cannot map a {} KiB fiber stack", kStackBytes >> 10);
    HEED_CHECK(mprotect(mem, kGuardBytes, PROT_NONE) == 0, "simulator: cannot protect a fiber's guard page");
    f.stack = static_cast<char*>(mem);
  }
  if (!f.tsan_fiber) f.tsan_fiber = tsan::create_fiber();
  auto* top = reinterpret_cast<uint64_t*>(f.stack + kStackBytes);
  uint64_t* sp = top - 10;
  sp[0] = 0x037F;  // x87 control word: the default
  sp[1] = 0x1F80;  // MXCSR: the default (round to nearest, exceptions masked)
  sp[2] = 0;       // r15
  sp[3] = 0;       // r14
  sp[4] = reinterpret_cast<uint64_t>(&fiber_main);  // r13: the function to call
  sp[5] = 0;                                        // r12: its argument
  sp[6] = 0;                                        // rbx
  sp[7] = 0;                                        // rbp
  sp[8] = reinterpret_cast<uint64_t>(&heed_sim_fiber_start);
  sp[9] = 0;
  f.sp = sp;
}

// Where the threads of a deadlocked block wait, and for the first warp collective left incomplete, where
// the lanes it waits for are.
std::string describe_waits(const Worker& w) {
  int at_barrier = 0, at_warp = 0;
  for (int i = 0; i < w.threads; ++i) {
    at_barrier += w.fibers[i].state == State::AtBarrier;
    at_warp += w.fibers[i].state == State::AtWarp;
  }
  std::string text = fmt::format("{} threads wait at __syncthreads, {} in warp collectives, {} have exited",
                                 at_barrier, at_warp, w.exited);
  for (size_t warp = 0; warp < w.warps.size(); ++warp)
    for (const Exchange& x : w.warps[warp].buffers) {
      if (!x.active) continue;
      unsigned missing_at_barrier = 0, missing_elsewhere = 0;
      for (unsigned lane = 0; lane < 32; ++lane) {
        if (!(x.mask >> lane & 1u) || (x.arrived >> lane & 1u)) continue;
        if (w.fibers[warp * 32 + lane].state == State::AtBarrier) missing_at_barrier |= 1u << lane;
        else missing_elsewhere |= 1u << lane;
      }
      return text + fmt::format("; warp {} waits in {} (mask {:#010x}) for lanes {:#010x} at __syncthreads and "
                                "lanes {:#010x} in another warp collective",
                                warp, collective_name(x.kind), x.mask, missing_at_barrier, missing_elsewhere);
    }
  return text;
}

void switch_to_fiber(Worker& w, Fiber& f) {
  w.current = &f;
  f.started = true;
  t_guard_page = f.stack;
  threadIdx = f.index;
  tsan::switch_to(f.tsan_fiber);
  heed_sim_switch(&w.scheduler_sp, f.sp);
  w.current = nullptr;
  t_guard_page = nullptr;
}

// Unwinds every fiber of a failed block that started and has not exited, so that its destructors run
// and it leaves the runtime as it entered it; then the stacks can serve the next block.
void abandon(Worker& w) {
  w.abandoning = true;
  for (int i = 0; i < w.threads; ++i) {
    Fiber& f = w.fibers[i];
    if (f.started && f.state != State::Exited) switch_to_fiber(w, f);
    f.state = State::Exited;
  }
  w.abandoning = false;
  tsan::acquire(&w.block_end);
}

// Adds the block's warp-wide accesses to the tally: a global access costs the distinct 32-byte sectors it
// touches; a shared one as many wavefronts as the busiest of the 32 banks has distinct 4-byte words (the
// same word for several lanes is one broadcast).
void add_block_accesses(Worker& w) {
  LaunchCounters& c = w.tally->counts;
  for (auto& [key, units] : w.tally->accesses) {
    std::sort(units.begin(), units.end());
    const auto distinct = static_cast<uint64_t>(std::unique(units.begin(), units.end()) - units.begin());
    switch (key.kind) {
      case Access::GlobalLoad:
        ++c.global_load_requests;
        c.global_load_sectors += distinct;
        break;
      case Access::GlobalStore:
        ++c.global_store_requests;
        c.global_store_sectors += distinct;
        break;
      case Access::Shared: {
        unsigned per_bank[32] = {};
        for (uint64_t i = 0; i < distinct; ++i) ++per_bank[units[i] % 32];
        ++c.shared_requests;
        c.shared_wavefronts += *std::max_element(per_bank, per_bank + 32);
        break;
      }
    }
  }
  w.tally->accesses.clear();
  ++w.tally->sampled_blocks;
  for (int i = 0; i < w.threads; ++i) {
    c.max_thread_global_loads = std::max(c.max_thread_global_loads, w.fibers[i].global_loads);
    w.fibers[i].global_loads = 0;
    w.fibers[i].visits.clear();
    w.fibers[i].last_visit = 0;
  }
}

void run_block(Worker& w, uint3 block, Schedule schedule) {
  TsanIgnore ignore;  // the scheduler's bookkeeping; the fibers' own accesses are seen
  w.scheduler_tsan = tsan::current_fiber();
  blockIdx = block;
  w.schedule = schedule;
  w.threads = static_cast<int>(blockDim.x * blockDim.y * blockDim.z);
  const int warps = (w.threads + 31) / 32;
  w.warps.assign(warps, WarpState{});
  w.ready.reset(schedule, warps, w.rng);
  std::memset(w.dynamic_smem.data(), 0xff, w.dynamic_smem.size() * sizeof(uint4));  // NaN in every float type
  for (int i = 0; i < w.threads; ++i) {
    Fiber& f = w.fibers[i];
    prepare(f);
    f.index = {i % blockDim.x, i / blockDim.x % blockDim.y, i / (blockDim.x * blockDim.y)};
    f.warp = i / 32;
    f.lane = i % 32;
    f.collectives = 0;
    f.barriers = 0;
    f.committed.clear();
    f.open.clear();
    f.state = State::Ready;
    f.started = false;
    w.warps[f.warp].existing |= 1u << f.lane;
    w.ready.push(&f);
  }
  w.live = w.threads;
  w.exited = 0;
  w.at_barrier = 0;
  w.error = nullptr;
  tsan::release(&w.block_start);
  while (w.live > 0) {
    Fiber* f = w.ready.pop();
    if (!f) {
      const std::string waits = describe_waits(w);
      abandon(w);
      fail(fmt::format("deadlock in block ({},{},{}): {}", block.x, block.y, block.z, waits));
    }
    switch_to_fiber(w, *f);
    if (w.error) {
      abandon(w);
      std::rethrow_exception(w.error);
    }
  }
  if (w.count_block_memory) add_block_accesses(w);
  tsan::acquire(&w.block_end);
}

// ---- launches ----------------------------------------------------------------------------------------

Schedule schedule_from_env() {
  const char* env = std::getenv("HEED_SIM_SCHEDULE");
  const std::string s = env ? env : "inorder";
  if (s == "inorder") return Schedule::InOrder;
  if (s == "random") return Schedule::Random;
  if (s == "warp-ahead") return Schedule::WarpAhead;
  fail(fmt::format("HEED_SIM_SCHEDULE='{}': expected inorder, random or warp-ahead", s));
}

int workers_from_env() {
  const char* env = std::getenv("HEED_SIM_WORKERS");
  if (!env) return 2;
  const int n = std::atoi(env);
  HEED_CHECK(n >= 1 && n <= 256, "HEED_SIM_WORKERS='{}': expected a number of threads from 1 to 256", env);
  return n;
}

std::mutex g_config_mutex;
Schedule g_schedule = Schedule::InOrder;
uint64_t g_seed = 1;
bool g_configured = false;

void configure_once() {
  std::lock_guard lock(g_config_mutex);
  if (g_configured) return;
  g_schedule = schedule_from_env();
  g_configured = true;
}

// Runs a job on `n` threads at once (the caller is one of them); threads persist between launches.
class Pool {
 public:
  explicit Pool(int threads) {
    for (int i = 1; i < threads; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~Pool() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  int size() const { return static_cast<int>(threads_.size()) + 1; }
  void run(const std::function<void()>& job) {
    {
      std::lock_guard lock(mutex_);
      job_ = &job;
      pending_ = static_cast<int>(threads_.size());
      ++generation_;
    }
    wake_.notify_all();
    job();
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
  }

 private:
  void loop() {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void()>* job;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        job = job_;
      }
      (*job)();
      std::lock_guard lock(mutex_);
      if (--pending_ == 0) done_.notify_one();
    }
  }
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void()>* job_ = nullptr;
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

// The calling thread's static TLS block: the executable's TLS segment, which on x86-64 ends at the thread
// pointer. Static __shared__ arrays of the kernels (thread_local here) live in it.
void find_static_tls(Worker& w) {
  static const size_t tls_bytes = [] {
    size_t bytes = 0;
    dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* out) {
          if (info->dlpi_tls_modid != 1) return 0;
          for (int i = 0; i < info->dlpi_phnum; ++i)
            if (info->dlpi_phdr[i].p_type == PT_TLS) {
              const size_t align = std::max<size_t>(info->dlpi_phdr[i].p_align, 1);
              *static_cast<size_t*>(out) = (info->dlpi_phdr[i].p_memsz + align - 1) / align * align;
            }
          return 1;
        },
        &bytes);
    return bytes;
  }();
  uintptr_t end;
  asm("mov %%fs:0, %0" : "=r"(end));  // the thread pointer: x86-64's TCB holds its own address
  w.tls_begin = end - tls_bytes;
  w.tls_bytes = tls_bytes;
  const auto builtin = reinterpret_cast<uintptr_t>(&threadIdx);
  HEED_CHECK(builtin - w.tls_begin < w.tls_bytes,
             "simulator counters: cannot find the thread's static TLS block, which holds __shared__ arrays");
}

void watch_memory(Worker& w, void* context, size_t context_bytes) {
  w.params = reinterpret_cast<uintptr_t>(context);
  w.params_bytes = context_bytes;
  if (w.tls_bytes == 0) find_static_tls(w);
}

LaunchCounters merge_tallies(std::vector<Tally>& tallies, dim3 grid, dim3 block, size_t dynamic_smem_bytes,
                             const void* kernel, bool memory_counted) {
  LaunchCounters c;
  c.kernel = kernel_name(kernel);
  c.grid[0] = grid.x, c.grid[1] = grid.y, c.grid[2] = grid.z;
  c.block[0] = block.x, c.block[1] = block.y, c.block[2] = block.z;
  c.dynamic_smem_bytes = dynamic_smem_bytes;
  c.memory_counted = memory_counted;
  uint64_t sampled = 0;
  for (const Tally& t : tallies) sampled += t.sampled_blocks;
  // The sample's memory counts stand for every block's.
  const double scale = sampled > 0 ? static_cast<double>(c.blocks()) / static_cast<double>(sampled) : 0.0;
  auto scaled = [&](uint64_t v) { return static_cast<uint64_t>(std::llround(static_cast<double>(v) * scale)); };
  for (const Tally& t : tallies) {
    const LaunchCounters& p = t.counts;
    c.barriers += p.barriers;
    c.warp_collectives += p.warp_collectives;
    c.mma_flops += p.mma_flops;
    c.global_load_requests += scaled(p.global_load_requests);
    c.global_load_sectors += scaled(p.global_load_sectors);
    c.global_store_requests += scaled(p.global_store_requests);
    c.global_store_sectors += scaled(p.global_store_sectors);
    c.shared_requests += scaled(p.shared_requests);
    c.shared_wavefronts += scaled(p.shared_wavefronts);
    c.max_thread_global_loads = std::max(c.max_thread_global_loads, p.max_thread_global_loads);
  }
  return c;
}

}  // namespace

ScheduleScope::ScheduleScope(Schedule schedule, uint64_t seed) {
  configure_once();
  std::lock_guard lock(g_config_mutex);
  saved_schedule_ = g_schedule;
  saved_seed_ = g_seed;
  g_schedule = schedule;
  g_seed = seed;
}

ScheduleScope::~ScheduleScope() {
  std::lock_guard lock(g_config_mutex);
  g_schedule = saved_schedule_;
  g_seed = saved_seed_;
}

void launch_threads(dim3 grid, dim3 block, size_t dynamic_smem_bytes, void (*body)(void*), void* context,
                    size_t context_bytes, const void* kernel) {
  const int64_t threads = int64_t{block.x} * block.y * block.z;
  HEED_CHECK(threads >= 1 && threads <= kMaxThreads, "launch of {}x{}x{} threads per block: CUDA allows 1 to {}",
             block.x, block.y, block.z, kMaxThreads);
  configure_once();
  Schedule schedule;
  uint64_t seed;
  {
    std::lock_guard lock(g_config_mutex);
    schedule = g_schedule;
    seed = g_seed;
  }
  // One launch at a time: the simulated GPU has one stream, and the pool one job.
  static std::mutex launch_mutex;
  std::lock_guard launch_lock(launch_mutex);
  static Pool pool(workers_from_env());

  std::vector<uint3> order;
  order.reserve(size_t{grid.x} * grid.y * grid.z);
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) order.push_back({x, y, z});
  std::mt19937_64 rng(seed);
  if (schedule != Schedule::InOrder) std::shuffle(order.begin(), order.end(), rng);

  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr first_error;
  std::mutex error_mutex;
  std::atomic<uint64_t> worker_seed{seed};
  const bool count = counting(), count_memory = count && counting_memory();
  std::vector<Tally> tallies(count ? pool.size() : 0);
  const uint64_t sample_stride = std::max<uint64_t>(1, order.size() / kSampledBlocks);
  std::atomic<size_t> next_tally{0};
  const std::function<void()> job = [&] {
    // Fibers abandoned with a failed block of the last launch never said they were done with these.
    TsanIgnore ignore;
    catch_stack_overflows();
    Worker& w = t_worker;
    w.tally = count ? &tallies[next_tally++] : nullptr;
    if (count_memory) watch_memory(w, context, context_bytes);
    w.rng.seed(worker_seed.fetch_add(0x9E3779B97F4A7C15ull));
    w.body = body;
    w.context = context;
    w.dynamic_smem.resize((dynamic_smem_bytes + sizeof(uint4) - 1) / sizeof(uint4));
    blockDim = block;
    gridDim = grid;
    for (size_t i; !failed && (i = next.fetch_add(1)) < order.size();) {
      const uint3 b = order[i];
      w.count_block_memory = count_memory && ((uint64_t{b.z} * grid.y + b.y) * grid.x + b.x) % sample_stride == 0;
      try {
        run_block(w, b, schedule);
      } catch (...) {
        std::lock_guard lock(error_mutex);
        if (!first_error) first_error = std::current_exception();
        failed = true;
      }
    }
    w.tally = nullptr;
    w.count_block_memory = false;
  };
  if (order.size() == 1 || pool.size() == 1) job();
  else pool.run(job);
  if (first_error) std::rethrow_exception(first_error);
  if (count) record_launch(merge_tallies(tallies, grid, block, dynamic_smem_bytes, kernel, count_memory));
}

void* dynamic_shared_memory() {
  current_fiber();
  return t_worker.dynamic_smem.data();
}

unsigned lane_id() { return current_fiber().lane; }

// The builtins are thread_local like static __shared__ arrays, but are registers on the GPU.
bool is_builtin(uintptr_t address) {
  auto in = [&](const auto& object) { return address - reinterpret_cast<uintptr_t>(&object) < sizeof(object); };
  return in(threadIdx) || in(blockIdx) || in(blockDim) || in(gridDim);
}

// The executable's own code and data (GNU ld's symbols): constant tables, which the GPU reads from its
// constant cache or immediates, not global memory.
extern "C" char __executable_start, _end;

void count_memory_access(const void* address, size_t size, bool store, const void* site) {
  Worker& w = t_worker;
  Fiber* f = w.current;
  if (!w.count_block_memory || !f || w.abandoning || size == 0) return;
  const auto a = reinterpret_cast<uintptr_t>(address);
  if (a - reinterpret_cast<uintptr_t>(f->stack) < kStackBytes) return;  // registers and local memory
  if (a - w.params < w.params_bytes || is_builtin(a)) return;          // parameters, builtins
  // The warp collectives' slots, which shuffles and votes read inline in the kernel: registers on a GPU.
  if (a - reinterpret_cast<uintptr_t>(w.warps.data()) < w.warps.size() * sizeof(WarpState)) return;
  const auto smem = reinterpret_cast<uintptr_t>(w.dynamic_smem.data());
  const bool shared = a - smem < w.dynamic_smem.size() * sizeof(uint4) || a - w.tls_begin < w.tls_bytes;
  if (!shared && a - reinterpret_cast<uintptr_t>(&__executable_start) <
                     static_cast<uintptr_t>(&_end - &__executable_start))
    return;
  const Access kind = shared ? Access::Shared : store ? Access::GlobalStore : Access::GlobalLoad;
  auto& visits = f->visits;
  if (f->last_visit >= visits.size() || visits[f->last_visit].first != site) {
    f->last_visit = std::find_if(visits.begin(), visits.end(), [&](const auto& v) { return v.first == site; }) -
                    visits.begin();
    if (f->last_visit == visits.size()) visits.emplace_back(site, 0);
  }
  const uint32_t visit = visits[f->last_visit].second++;
  std::vector<uint64_t>& units = w.tally->accesses[AccessKey{site, f->warp, visit, kind}];
  const unsigned shift = shared ? 2 : 5;  // 4-byte bank words, 32-byte sectors
  for (uint64_t unit = a >> shift; unit <= (a + size - 1) >> shift; ++unit) units.push_back(unit);
  if (kind == Access::GlobalLoad) ++f->global_loads;
}

void misuse(const std::string& what) { fail(fmt::format("{}: {}", thread_name(current_fiber()), what)); }

namespace {

// Counts f in at the block's barrier; the last thread to arrive makes them all ready again.
void arrive_at_barrier(Worker& w, Fiber& f) {
  if (w.exited > 0)
    fail(fmt::format("{} reached __syncthreads after {} threads of its block exited: every thread of a block must "
                     "reach each __syncthreads",
                     thread_name(f), w.exited));
  f.state = State::AtBarrier;
  if (++w.at_barrier == w.live) {
    w.at_barrier = 0;
    if (w.tally) ++w.tally->counts.barriers;
    for (int i = 0; i < w.threads; ++i)
      if (w.fibers[i].state == State::AtBarrier) {
        w.fibers[i].state = State::Ready;
        w.ready.push(&w.fibers[i]);
      }
  }
}

}  // namespace

namespace {

// The barrier that HEED_SIM_DROP_BARRIER names (FILE:LINE), read once; line 0 when none is.
struct DroppedBarrier {
  std::string file_suffix;
  int line = 0;
};

const DroppedBarrier& dropped_barrier() {
  static const DroppedBarrier dropped = [] {
    DroppedBarrier d;
    const char* env = std::getenv("HEED_SIM_DROP_BARRIER");
    if (!env || !*env) return d;
    const std::string text = env;
    const size_t colon = text.rfind(':');
    char* end = nullptr;
    const long line = colon == std::string::npos ? 0 : std::strtol(text.c_str() + colon + 1, &end, 10);
    if (colon == 0 || line <= 0 || *end != '\0')
      fail(fmt::format("HEED_SIM_DROP_BARRIER='{}': expected FILE:LINE, e.g. attention_forward.cu:195", text));
    d.file_suffix = text.substr(0, colon);
    d.line = static_cast<int>(line);
    return d;
  }();
  return dropped;
}

bool is_dropped(const char* file, int line) {
  const DroppedBarrier& d = dropped_barrier();
  if (line != d.line) return false;
  const std::string_view path(file);
  return path.size() >= d.file_suffix.size() && path.substr(path.size() - d.file_suffix.size()) == d.file_suffix &&
         (path.size() == d.file_suffix.size() || path[path.size() - d.file_suffix.size() - 1] == '/');
}

}  // namespace

void sync_block(const char* file, int line) {
  if (is_dropped(file, line)) return;
  Worker& w = t_worker;
  Fiber& f = current_fiber();
  void* token = &w.barrier_tokens[f.barriers++ & 1];  // reused two barriers later, when all are past this one
  {
    TsanIgnore ignore;
    arrive_at_barrier(w, f);
    tsan::release(token);
    yield(f);
  }
  tsan::acquire(token);
}


namespace {

// Publishes f's value in exchange x; the last lane to arrive runs `finish` and makes them all ready again.
void arrive_at_exchange(Worker& w, Fiber& f, Exchange& x, Collective kind, unsigned mask, const void* mine,
                        size_t size, void (*finish)(WarpSlots&)) {
  WarpState& warp = w.warps[f.warp];
  const unsigned bit = 1u << f.lane;
  if (!(mask & bit))
    fail(fmt::format("{} calls {} with mask {:#010x}, which does not include its own lane {}", thread_name(f),
                     collective_name(kind), mask, f.lane));
  if (!x.active) {
    x.active = true;
    x.kind = kind;
    x.mask = mask & warp.existing;
    x.arrived = 0;
  } else if (x.kind != kind || x.mask != (mask & warp.existing)) {
    fail(fmt::format("the lanes of warp {} in block ({},{},{}) disagree: lane {} is in {} with mask {:#010x} while "
                     "others are in {} with mask {:#010x}",
                     f.warp, blockIdx.x, blockIdx.y, blockIdx.z, f.lane, collective_name(kind), mask,
                     collective_name(x.kind), x.mask));
  }
  if (x.mask & warp.exited)
    fail(fmt::format("{} waits in {} for lanes {:#010x} of its warp, which have exited", thread_name(f),
                     collective_name(kind), x.mask & warp.exited));
  if ((kind == Collective::Mma || kind == Collective::Ldmatrix) && x.mask != 0xffffffffu)
    fail(fmt::format("{} runs {} in a warp of lanes {:#010x}: it takes all 32 lanes, and the block's size is "
                     "not a multiple of 32",
                     thread_name(f), collective_name(kind), x.mask));
  std::memcpy(x.slots.in[f.lane], mine, size);
  x.arrived |= bit;
  if (x.arrived == x.mask) {
    if (w.tally) {
      ++w.tally->counts.warp_collectives;
      if (kind == Collective::Mma) w.tally->counts.mma_flops += 2 * 16 * 8 * 16;
    }
    x.slots.lanes = x.mask;
    if (finish) finish(x.slots);
    x.active = false;
    for (int lane = 0; lane < 32; ++lane)
      if (x.mask >> lane & 1u) {
        Fiber& other = w.fibers[f.warp * 32 + lane];
        other.state = State::Ready;
        w.ready.push(&other);
      }
  } else {
    f.state = State::AtWarp;
  }
}

}  // namespace

const WarpSlots& warp_exchange(Collective kind, unsigned mask, const void* mine, size_t size,
                               void (*finish)(WarpSlots&)) {
  Worker& w = t_worker;
  Fiber& f = current_fiber();
  // A buffer is reused two collectives later, when every lane has left this one.
  Exchange& x = w.warps[f.warp].buffers[f.collectives++ & 1];
  {
    TsanIgnore ignore;
    arrive_at_exchange(w, f, x, kind, mask, mine, size, finish);
    tsan::release(&x);
    yield(f);
  }
  tsan::acquire(&x);
  return x.slots;
}

void sync_warp(unsigned mask, const char* file, int line) {
  if (is_dropped(file, line)) return;
  const char nothing = 0;
  warp_exchange(Collective::Sync, mask, &nothing, 1);
}

// ---- asynchronous copies ---------------------------------------------------------------------------

namespace {

void perform(const std::vector<PendingCopy>& group) {
  for (const PendingCopy& c : group) {
    if (c.valid) {
      tsan::reads(c.src, 16);
      std::memcpy(c.dst, c.src, 16);
    } else {
      std::memset(c.dst, 0, 16);
    }
    tsan::writes(c.dst, 16);
  }
}

}  // namespace

// A copy lands at any time between its issue and the wait that completes its group, so both ends are
// tried. In order, every copy lands at the wait: a kernel that reads shared memory without waiting reads
// the NaN poison (or stale data). Under the adversarial schedules half of the copies, at random, land at
// once: a prefetch that overwrites a buffer other warps still read (a missing barrier before the next
// copy) then corrupts their reads.
void cp_async_16(void* smem_dst, const void* gmem_src, bool valid) {
  Fiber& f = current_fiber();
  if (reinterpret_cast<uintptr_t>(smem_dst) % 16 != 0 || (valid && reinterpret_cast<uintptr_t>(gmem_src) % 16 != 0))
    fail(fmt::format("{}: cp.async of 16 bytes from {} to {}: both addresses must be 16-byte aligned",
                     thread_name(f), gmem_src, smem_dst));
  if (t_worker.count_block_memory) {
    const void* site = __builtin_return_address(0);
    if (valid) count_memory_access(gmem_src, 16, false, site);
    count_memory_access(smem_dst, 16, true, site);
  }
  const PendingCopy copy{smem_dst, gmem_src, valid};
  bool lands_now;
  {
    TsanIgnore ignore;  // the worker's random generator, which all its fibers share
    lands_now = t_worker.schedule != Schedule::InOrder && (t_worker.rng() & 1);
  }
  if (lands_now) perform({copy});
  else f.open.push_back(copy);
}

void cp_async_commit() {
  Fiber& f = current_fiber();
  f.committed.push_back(std::move(f.open));
  f.open.clear();
}

void cp_async_wait(int pending) {
  Fiber& f = current_fiber();
  while (static_cast<int>(f.committed.size()) > pending) {
    perform(f.committed.front());
    f.committed.pop_front();
  }
}

}  // namespace heed::cuda_sim
