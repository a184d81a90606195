// The host's record of one extension (Entry) and of one load of it (Runtime),
// with the per-route request counters both keep. Internal to the host.
//
// Owns: nothing but data; every part of the host (catalog, loader,
// dispatcher, lifecycle, status, admin) reads and writes these records under
// the locking rules below.
//
// Locking:
//   - Entry::load_mutex serialises loading and stopping one entry. The loader
//     and the lifecycle hold it; the dispatcher never does on the hot path.
//   - Entry::state is an atomic and Entry::runtime a RuntimeSlot: the
//     dispatcher reads them without the entry's locks, the loader publishes a
//     runtime only once it is fully set up.
//   - manifest, approved, eager and enabled change at run time (reload,
//     enable, disable) only with both load_mutex and info_mutex held: read
//     them holding either one.
//   - last_error, error_phase, state_reason and load_ms: info_mutex.
//   - A Runtime is immutable once published, except for its counters (relaxed
//     atomics). Every use of its code holds a lease (a shared_ptr): a request
//     and its stream (dispatcher), a status read, a tool call (the tool
//     registry keeps the lease with the tool, resource or prompt: hold_for_owner).
//     Event handlers and background tasks have finished when release()
//     returns (unsubscribe and stop_all wait for them). So a runtime that a
//     stop or a reload replaced is freed when its last lease ends, and a
//     request that raced with the stop still finds valid objects. A runtime
//     whose code may still run on an abandoned thread is parked instead
//     (park_abandoned): never freed.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "background/background_supervisor.hpp"
#include "ordinaut/extension.hpp"
#include "ordinaut/host.hpp"
#include "ordinaut/introspection.hpp"
#include "ordinaut/manifest.hpp"

namespace ordinaut::detail {

inline constexpr std::size_t kLatencyBucketCount = 16;

// Counters of one route (or of an extension's unrouted requests). Relaxed
// atomics: each is an independent tally read only for reporting.
struct RouteCounters {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> errors{0};
  std::array<std::atomic<std::uint64_t>, 6> status_class{};
  // Latency per status class (index = status / 100), so that readers can give
  // a histogram per class or, summed, per route.
  std::array<std::atomic<std::uint64_t>, 6> nanos{};
  std::array<std::array<std::atomic<std::uint64_t>, kLatencyBucketCount>, 6> buckets{};  // non-cumulative

  void record(int status, std::chrono::nanoseconds elapsed);
  RouteMetrics snapshot(std::string method, std::string route) const;
};

// The live state of a loaded extension (one load of it).
struct Runtime {
  Runtime() noexcept;
  // Takes it down in the order that leaves nothing dangling: tasks (stopped
  // already), routes, the extension, and last its SetupContext, whose handles
  // the extension may still use in its destructor.
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  std::unique_ptr<Extension> extension;
  ExtensionInfo info;
  CapabilitySet requested;
  CapabilitySet granted;
  std::optional<Router> router;
  std::vector<std::unique_ptr<RouteCounters>> route_counters;  // parallel to router->routes()
  RouteCounters unrouted;                                      // 404/405 and static files
  std::filesystem::path static_dir;
  bool has_health_route = false;
  // Lives as long as the runtime, so handles an extension keeps by reference
  // (tools(), logger(), ...) stay valid after setup() returns.
  std::unique_ptr<SetupContext> context;
  // Set when a thread running this runtime's code was abandoned (a hung
  // on_startup/on_shutdown or task): the runtime is then never freed.
  std::atomic<bool> abandoned{false};
  // With BACKGROUND_TASKS. Last member: destroyed first, so every task has
  // stopped before the extension it runs is freed.
  std::unique_ptr<TaskSupervisor> tasks;
};

// Moves a runtime whose code may still run on an abandoned thread to a
// process-wide list that is never destroyed (no static destructor runs while
// such a thread may still use it). What it keeps is the extension object, its
// module and what it owns; the handles into the host in its SetupContext point
// into a host that is gone, so an abandoned hook must not use them once the
// host is destroyed (docs/lifecycle.md says so).
void park_abandoned(std::shared_ptr<Runtime> runtime) noexcept;

// Runtimes alive in this process (parked ones included): what tests read to
// prove that reloads return what they used.
std::size_t live_runtimes() noexcept;

// Holds an entry's current runtime: a mutex around a shared_ptr (the few
// instructions of a copy), with the interface of an atomic. Not
// std::atomic<std::shared_ptr>: libstdc++ 12's load() unlocks with relaxed
// order, which ThreadSanitizer reports as a race with the next store.
class RuntimeSlot {
 public:
  // A copy: the lease that keeps the runtime alive while it is used.
  std::shared_ptr<Runtime> load(std::memory_order = std::memory_order_seq_cst) const {
    std::lock_guard lock(mutex_);
    return runtime_;
  }
  void store(std::shared_ptr<Runtime> runtime, std::memory_order = std::memory_order_seq_cst) {
    {
      std::lock_guard lock(mutex_);
      runtime_.swap(runtime);
    }
    // The previous one is released here, outside the lock: it may be the
    // last lease, and freeing a runtime runs its extension's destructor.
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<Runtime> runtime_;
};

// One discovered extension, from its discovery to the host's end.
struct Entry {
  std::string id;
  std::string source;                // builtin | path | linked
  std::optional<Manifest> manifest;  // none for linked-in extensions
  ExtensionFactory factory;          // linked-in only
  CapabilitySet approved;
  bool eager = false;
  bool enabled = true;

  std::mutex load_mutex;  // serialises load and stop of this entry
  std::atomic<ExtensionState> state{ExtensionState::discovered};
  // The current (or last) runtime; a stop keeps it for status, enable and
  // reload drop it. Load a copy: it is the lease that keeps it alive.
  RuntimeSlot runtime;

  mutable std::mutex info_mutex;  // guards the fields below
  std::string last_error;
  std::string error_phase;
  std::string state_reason;  // why it is disabled or stopped
  double load_ms = 0;

  // REQUIRES: info_mutex held.
  void clear_reasons() {
    last_error.clear();
    error_phase.clear();
    state_reason.clear();
  }
};

// The order in which extensions became active; shutdown runs it backwards.
// Thread-safe.
class LoadOrder {
 public:
  void loaded(Entry* entry);   // moves it to the end (a reload loads it again)
  void removed(Entry* entry);  // it is no longer loaded
  std::vector<Entry*> copy() const;
  std::size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::vector<Entry*> order_;
};

}  // namespace ordinaut::detail
