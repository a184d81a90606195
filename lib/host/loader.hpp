// Loader: makes an Entry active. Opens its module (dlopen and ABI check, in
// module_loader.cpp) or calls its linked-in factory, checks info() against
// the manifest, grants requested ∩ approved (auditing each denial), builds its
// SetupContext, calls setup() and mounts the returned router (only with
// ROUTES), then runs on_startup() bounded by the lifecycle timeout. Also
// undoes what a runtime registered (release). Internal to the host.
//
// Owns: the steps of a load and the failure records they leave (state
// `error`, the phase and the reason). It never unloads a module (dlclose):
// a runtime is freed when its last lease ends (entry.hpp), the module stays.
//
// Locking: load_locked() and release() REQUIRE the entry's load_mutex;
// ensure_loaded() takes it only when the entry is not active (the lock-free
// fast path is what the dispatcher uses on every request).
#pragma once

#include <string>

#include "host/entry.hpp"
#include "host/services.hpp"
#include "host/status.hpp"
#include "ordinaut/result.hpp"

namespace ordinaut::detail {

class Loader {
 public:
  Loader(HostServices& services, LoadOrder& order, const StatusReporter& status, const HostIntrospection& introspection)
      : services_(services), order_(order), status_(status), introspection_(introspection) {}

  // The active runtime, loading the entry first if needed: a lease on it,
  // to hold for as long as its code may run. Errors: disabled, stopped,
  // load_failed (with the reason).
  Result<std::shared_ptr<Runtime>> ensure_loaded(Entry& entry);

  // REQUIRES: entry.load_mutex held.
  Result<void> load_locked(Entry& entry);

  // Stops and removes what a runtime started and registered: its background
  // tasks (bounded by the lifecycle timeout), event subscriptions, its tools,
  // resources and prompts (declared ones too) and their lease on it. A
  // runtime with an abandoned thread is parked.
  // REQUIRES: entry.load_mutex held.
  void release(Entry& entry, const std::shared_ptr<Runtime>& runtime);

  // Lists what the entry's manifest contributes (contributions.hpp); a clash
  // puts the entry in `error` (phase "discovery"). REQUIRES: entry.load_mutex
  // held, or the host not yet serving.
  Result<void> declare(Entry& entry);

 private:
  void record_failure(Entry& entry, std::string phase, std::string reason);

  HostServices& services_;
  LoadOrder& order_;
  const StatusReporter& status_;
  const HostIntrospection& introspection_;
};

}  // namespace ordinaut::detail
