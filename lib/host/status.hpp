// StatusReporter: what the host tells about its extensions. GET /ext/status,
// GET /ext/openapi.json, the default GET /ext/{id}/health, the snapshot
// behind ExtensionHost::snapshot(), and the HostIntrospection view that
// observability reads. Internal to the host.
//
// Owns: the shapes of those documents. It reads entries, runtimes, counters,
// the tool registry and the event bus; it changes nothing and calls no
// extension code except Extension::health_checks().
//
// Thread safety: every method may run concurrently with requests, loads and
// stops. It reads Entry::state, copies Entry::runtime (a lease that keeps the
// runtime valid while it is read) and reads the reason fields under
// info_mutex, as entry.hpp requires.
#pragma once

#include <memory>
#include <vector>

#include "host/catalog.hpp"
#include "host/entry.hpp"
#include "host/services.hpp"
#include "ordinaut/http.hpp"
#include "ordinaut/introspection.hpp"
#include "ordinaut/json.hpp"

namespace ordinaut::detail {

class StatusReporter {
 public:
  StatusReporter(HostServices& services, const Catalog& catalog) : services_(services), catalog_(catalog) {}

  Json status() const;
  Json openapi() const;
  // The host's health answer for an extension that defines no /health route:
  // its state, its health_checks(), one check per background task and one
  // for the event bus. `runtime` is null when it is not loaded.
  Response health(Entry& entry, Runtime* runtime) const;
  std::vector<ExtensionSnapshot> snapshot() const;

 private:
  HostServices& services_;
  const Catalog& catalog_;
};

// Registers the host's own resources (owner "core"): ordinaut://host/status
// (the GET /ext/status document) and the template
// ordinaut://host/extensions/{id} (one extension's entry of it, with
// completion of ids). REQUIRES: called once, by start().
void register_host_resources(HostServices& services, const StatusReporter& status);

// The read-only view of the host that SetupContext::introspection() hands to
// extensions (observability). Counts nothing itself.
std::unique_ptr<HostIntrospection> make_introspection(const HostServices& services, const Catalog& catalog,
                                                      const StatusReporter& status);

}  // namespace ordinaut::detail
