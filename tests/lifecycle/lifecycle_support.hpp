// Helpers for the lifecycle tests: a scripted linked-in extension whose
// setup/on_startup/on_shutdown are test lambdas, a host around such
// extensions, a latch to hang callbacks, and polling with a deadline.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <ordinaut/extension.hpp>
#include <ordinaut/host.hpp>

#include "host_support.hpp"  // tests/support: TempDir, LogCapture, send, extension_status, state_of, ...

namespace lifecycle_test {

using namespace std::chrono_literals;
using ordinaut::Capability;

/// What a scripted extension does; shared by every instance its factory makes.
struct Script {
  std::string id = "scripted";
  ordinaut::CapabilitySet requested{Capability::ROUTES, Capability::TOOLS, Capability::BACKGROUND_TASKS,
                                    Capability::EVENTS_SUB};
  std::function<void(ordinaut::SetupContext&, ordinaut::Router&)> setup;
  std::function<void()> on_startup;
  std::function<void()> on_shutdown;
  std::atomic<int> instances{0};
};

class Scripted final : public ordinaut::Extension {
 public:
  explicit Scripted(std::shared_ptr<Script> script) : script_(std::move(script)) { ++script_->instances; }
  ordinaut::ExtensionInfo info() const override { return {script_->id, "Scripted", "1.0.0", "test"}; }
  ordinaut::CapabilitySet requested_capabilities() const override { return script_->requested; }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& context) override {
    ordinaut::Router router;
    router.get("/ping", [](ordinaut::Request&) { return ordinaut::Response::text(200, "pong"); });
    if (script_->setup) script_->setup(context, router);
    return router;
  }
  void on_startup() override {
    if (script_->on_startup) script_->on_startup();
  }
  void on_shutdown() override {
    if (script_->on_shutdown) script_->on_shutdown();
  }

 private:
  std::shared_ptr<Script> script_;
};

/// Adds `script` as a linked-in extension approved for everything it requests.
inline void add(ordinaut::ExtensionHost& host, const std::shared_ptr<Script>& script, bool eager) {
  host.add_linked(
      script->id, [script] { return std::make_unique<Scripted>(script); }, script->requested, eager);
}

inline ordinaut::HostOptions options(test_support::LogCapture& logs,
                                     std::chrono::milliseconds lifecycle_timeout = 5000ms) {
  ordinaut::HostOptions o;
  o.read_environment = false;
  o.use_registered_extensions = false;
  o.log_sink = logs.sink();
  o.lifecycle_timeout = lifecycle_timeout;
  return o;
}

using test_support::extension_status;
using test_support::send;
using test_support::state_of;

/// Polls `done` every millisecond until it holds or `limit` passes.
inline bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 5000ms) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return done();
}

/// Blocks callers until open() (or a generous safety limit) so that a test can
/// hang a callback and still let its thread end before the process does.
class Latch {
 public:
  void wait() {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, 30s, [&] { return open_; });
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

/// A list of strings appended to from many threads.
class Journal {
 public:
  void add(std::string line) {
    std::lock_guard lock(mutex_);
    lines_.push_back(std::move(line));
  }
  std::vector<std::string> lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
};

inline std::int64_t ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

}  // namespace lifecycle_test
