// Dispatcher: one request to the right answer. Splits /ext/{id}/…, lets the
// Gate check browser safety, authentication and rate limits, answers
// the host's own paths (/ext/status, /ext/openapi.json, /ext/_admin/… through
// AdminEndpoints), checks the scope ext:{id}:routes when scopes are required,
// loads a lazy extension and serves the first request itself, matches the
// route, validates a request schema, calls the handler (catching what it
// throws) or serves a static file or the default health, and counts every
// answer per route template. Internal to the host.
//
// Owns: request routing and the per-request counters. Loading is the
// Loader's; documents about the host are the StatusReporter's.
//
// Thread safety: handle() runs on any number of threads at once. On an
// active extension it takes no lock and allocates nothing beyond what the
// handler does (the hot path; see dispatch_bench).
#pragma once

#include <atomic>
#include <chrono>
#include <optional>
#include <string_view>

#include "host/admin.hpp"
#include "host/catalog.hpp"
#include "host/gate.hpp"
#include "host/loader.hpp"
#include "host/services.hpp"
#include "host/status.hpp"
#include "ordinaut/http.hpp"

namespace ordinaut::detail {

class Dispatcher {
 public:
  Dispatcher(HostServices& services, const Catalog& catalog, Loader& loader, const StatusReporter& status,
             AdminEndpoints& admin)
      : services_(services), gate_(services), catalog_(catalog), loader_(loader), status_(status), admin_(admin) {}

  Response handle(Request& request);

  // Benchmarks only (HostBenchAccess): requests skip the Gate, so that a
  // benchmark can put the Gate's cost beside a dispatch without it. Never
  // set by the host; an admitted request then has no principal or scopes.
  void bypass_gate(bool bypass) { gate_bypassed_.store(bypass, std::memory_order_relaxed); }

 private:
  Response dispatch_extension(Entry& entry, Request& request, std::string_view rest,
                              std::chrono::steady_clock::time_point started);
  std::optional<Response> public_static_file(std::string_view id, Request& request, std::string_view rest);

  HostServices& services_;
  Gate gate_;
  const Catalog& catalog_;
  Loader& loader_;
  const StatusReporter& status_;
  AdminEndpoints& admin_;
  std::atomic<bool> gate_bypassed_{false};
};

}  // namespace ordinaut::detail
