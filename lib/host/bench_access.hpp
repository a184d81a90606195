// Switches of an ExtensionHost that only benchmarks use (internal; not in any
// public header). tests/bench/dispatch_bench.cpp dispatches the same request
// with and without the Gate in one run to put the Gate's cost beside it.
#pragma once

#include "ordinaut/host.hpp"

namespace ordinaut::detail {

struct HostBenchAccess {
  // Requests to `host` skip (true) or pass (false, the default) the Gate:
  // origin policy, authentication and rate limits. Takes effect for the next
  // request; never use it outside a benchmark.
  static void bypass_gate(ExtensionHost& host, bool bypass);
};

}  // namespace ordinaut::detail
