// Lifecycle: moves extensions between states after discovery. Run-time
// enable, disable and reload (through the admin endpoints or the host API)
// and the host's shutdown, in reverse load order (R6). Internal to the host.
//
// Owns: the state transitions out of `active` and back to `discovered`, and
// the shutdown order: on_shutdown() bounded by the lifecycle timeout, then
// background tasks, subscriptions, tools, and last the routes (the state
// leaves `active`). Loading itself is the Loader's.
//
// Locking: every public method takes the entry's load_mutex for the whole
// transition, so a transition never interleaves with a load of the same
// entry; it may call Loader::load_locked() under that lock.
#pragma once

#include <string>

#include "host/catalog.hpp"
#include "host/entry.hpp"
#include "host/loader.hpp"
#include "host/services.hpp"
#include "ordinaut/result.hpp"

namespace ordinaut::detail {

class Lifecycle {
 public:
  Lifecycle(HostServices& services, const Catalog& catalog, Loader& loader, LoadOrder& order)
      : services_(services), catalog_(catalog), loader_(loader), order_(order) {}

  // `actor` says who asked, for state reasons and logs.
  Result<void> disable(Entry& entry, const std::string& actor);
  // Back to the state it has after start(): eager extensions load now, lazy
  // ones on their next use. Also the way to retry an extension in `error`.
  Result<void> enable(Entry& entry, const std::string& actor);
  // Re-reads the manifest and sets the extension up again with it. A
  // manifest that cannot be read or is invalid changes nothing: the running
  // extension keeps serving and the error is returned.
  Result<void> reload(Entry& entry, const std::string& actor);

  // Stops every active extension, in reverse load order, then any that a
  // concurrent lazy load activated meanwhile. REQUIRES: services.shut_down set.
  void shutdown_all();

 private:
  void shutdown_entry(Entry& entry);
  // REQUIRES: entry.load_mutex held.
  void stop_locked(Entry& entry, ExtensionState next, const std::string& reason);

  HostServices& services_;
  const Catalog& catalog_;
  Loader& loader_;
  LoadOrder& order_;
};

}  // namespace ordinaut::detail
