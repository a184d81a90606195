// In-process dispatch benchmark (not a test): one run prints each measured
// path next to its baseline, in ns/op (median of rounds).
//
//   route:  ExtensionHost::handle() of GET /ext/bench/ping (lazy extension
//           already loaded, metrics on) vs calling the route's handler
//           std::function directly.
//   gate:   the same handle() with the Gate (default options: origin policy,
//           no authenticator, no rate limit) and without it
//           (HostBenchAccess::bypass_gate), in alternating rounds of one run,
//           so that both see the same machine load.
//   tool:   ToolRegistry::call() of a tool with input and output schemas vs a
//           bare RapidJSON SchemaValidator on the same input and the same
//           function called directly.
//
// Targets: route ≤ 1 µs, tool ≤ 2 µs.
// Usage: dispatch_bench [iterations] [route|gate|tool] (all by default; one
// only for profiling, e.g. under perf record).
// Must match lib/core/json.cpp's choice of regex engine (ODR), see there.
#define RAPIDJSON_SCHEMA_USE_INTERNALREGEX 0
#include <rapidjson/schema.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <ordinaut/host.hpp>

#include "host/bench_access.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// Median over rounds of the mean ns per call of `fn`.
template <typename Fn>
double ns_per_op(long iterations, Fn&& fn) {
  constexpr int kRounds = 7;
  std::vector<double> rounds;
  for (int r = 0; r < kRounds; ++r) {
    const auto start = Clock::now();
    for (long i = 0; i < iterations; ++i) fn();
    const auto elapsed = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
    rounds.push_back(elapsed / static_cast<double>(iterations));
  }
  std::sort(rounds.begin(), rounds.end());
  return rounds[kRounds / 2];
}

// Alternating rounds of `fn` in two modes (set_mode(true) then
// set_mode(false), kRounds each): the median and the fastest round's ns per
// call of each mode (on a shared machine the fastest round is the one least
// disturbed by others).
struct Alternating {
  double median_on, median_off, min_on, min_off;
};
template <typename Fn, typename Mode>
Alternating alternating_ns_per_op(long iterations, Fn&& fn, Mode&& set_mode) {
  constexpr int kRounds = 9;
  std::vector<double> on, off;
  for (int r = 0; r < kRounds; ++r) {
    for (const bool mode : {true, false}) {
      set_mode(mode);
      const auto start = Clock::now();
      for (long i = 0; i < iterations; ++i) fn();
      const auto elapsed = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
      (mode ? on : off).push_back(elapsed / static_cast<double>(iterations));
    }
  }
  std::sort(on.begin(), on.end());
  std::sort(off.begin(), off.end());
  return {on[kRounds / 2], off[kRounds / 2], on.front(), off.front()};
}

void row(const char* name, double ns, double baseline, double target) {
  std::printf("%-44s %9.1f ns/op   baseline %7.1f ns/op   overhead %7.1f ns   target %s %.0f ns\n", name, ns,
              baseline, ns - baseline, ns <= target ? "met   ≤" : "MISSED ≤", target);
}

class Bench final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override { return {"bench", "Bench", "1.0.0", "dispatch benchmark"}; }
  ordinaut::CapabilitySet requested_capabilities() const override { return {ordinaut::Capability::ROUTES}; }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext&) override {
    ordinaut::Router router;
    // Routes ahead of /ping, as a real extension has: matching is not free.
    router.get("/items", ping);
    router.get("/items/{id}", ping);
    router.post("/items", ping);
    router.get("/ping", ping);
    return router;
  }
  static ordinaut::Response ping(ordinaut::Request&) { return ordinaut::Response::json_text(200, R"({"pong":true})"); }
};

constexpr const char* kInputSchema =
    R"({"type":"object","required":["a","b"],"properties":{"a":{"type":"integer"},"b":{"type":"integer"},
        "note":{"type":"string","maxLength":100}},"additionalProperties":false})";
constexpr const char* kOutputSchema = R"({"type":"object","required":["sum"],"properties":{"sum":{"type":"integer"}}})";

ordinaut::Json add(const ordinaut::JsonValue& in, ordinaut::ToolContext&) {
  ordinaut::Json out;
  out.SetObject();
  out.AddMember("sum", in["a"].GetInt64() + in["b"].GetInt64(), out.GetAllocator());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const long iterations = argc > 1 ? std::atol(argv[1]) : 200'000;
  const std::string only = argc > 2 ? argv[2] : "";
  const bool run_route = only.empty() || only == "route";
  const bool run_tool = only.empty() || only == "tool";
  const bool run_gate = only.empty() || only == "gate";
  double baseline_route = 0, host_reused = 0, host_fresh = 0, baseline_tool = 0, tool = 0;
  Alternating gated{0, 0, 0, 0};
  long sink = 0;  // keeps results observable

  // ---- Route dispatch -----------------------------------------------------
  ordinaut::HostOptions options;
  options.read_environment = false;
  options.use_registered_extensions = false;
  options.log_sink = [](const ordinaut::LogRecord&) {};
  ordinaut::ExtensionHost host(std::move(options));
  host.add_linked("bench", [] { return std::make_unique<Bench>(); }, ordinaut::CapabilitySet{ordinaut::Capability::ROUTES});
  if (!host.start().ok() || !host.load("bench").ok()) {
    std::fprintf(stderr, "host did not start\n");
    return 1;
  }

  ordinaut::Handler handler = Bench::ping;
  ordinaut::Request direct;
  direct.method = "GET";
  direct.path = "/ext/bench/ping";
  if (run_route) {
  baseline_route = ns_per_op(iterations, [&] { sink += handler(direct).status; });

  ordinaut::Request reused;
  reused.method = "GET";
  reused.path = "/ext/bench/ping";
  host_reused = ns_per_op(iterations, [&] { sink += host.handle(reused).status; });

  host_fresh = ns_per_op(iterations, [&] {
    ordinaut::Request r;  // what a server adapter builds per request
    r.method = "GET";
    r.path = "/ext/bench/ping";
    sink += host.handle(r).status;
  });
  if (host.handle(reused).body != R"({"pong":true})") return 1;
  }
  if (run_gate) {
    gated = alternating_ns_per_op(
        iterations,
        [&] {
          ordinaut::Request r;
          r.method = "GET";
          r.path = "/ext/bench/ping";
          sink += host.handle(r).status;
        },
        [&](bool with_gate) { ordinaut::detail::HostBenchAccess::bypass_gate(host, !with_gate); });
    ordinaut::detail::HostBenchAccess::bypass_gate(host, false);
  }

  // ---- Tool call ----------------------------------------------------------
  ordinaut::ToolRegistry registry;
  auto added = registry.add({.name = "bench.add",
                             .title = {},
                             .description = "adds",
                             .input_schema = kInputSchema,
                             .output_schema = kOutputSchema,
                             .function = add});
  if (!added.ok()) return 1;
  auto input = ordinaut::json::parse(R"({"a":40,"b":2,"note":"benchmark"})");

  ordinaut::Json input_schema_doc = std::move(ordinaut::json::parse(kInputSchema).value());
  ordinaut::Json output_schema_doc = std::move(ordinaut::json::parse(kOutputSchema).value());
  rapidjson::SchemaDocument input_schema(input_schema_doc);
  rapidjson::SchemaDocument output_schema(output_schema_doc);
  ordinaut::ToolContext context;
  if (run_tool) {
  baseline_tool = ns_per_op(iterations, [&] {
    rapidjson::SchemaValidator in_validator(input_schema);
    if (!input->Accept(in_validator)) std::abort();
    ordinaut::Json out = add(*input, context);
    rapidjson::SchemaValidator out_validator(output_schema);
    if (!out.Accept(out_validator)) std::abort();
    sink += out["sum"].GetInt64();
  });
  tool = ns_per_op(iterations, [&] {
    auto r = registry.call("bench.add", *input);
    sink += r.value()["sum"].GetInt64();
  });
  }

  std::printf("dispatch_bench: %ld iterations x 7 rounds, median (sink %ld)\n", iterations, sink % 10);
  if (run_route) {
    row("route: ExtensionHost::handle, reused Request", host_reused, baseline_route, 1000);
    row("route: ExtensionHost::handle, new Request", host_fresh, baseline_route, 1000);
  }
  if (run_gate) {
    std::printf("%-44s %9.1f ns/op   without   %7.1f ns/op   Gate costs %5.1f ns (9 alternating rounds, median)\n",
                "gate: ExtensionHost::handle, new Request", gated.median_on, gated.median_off,
                gated.median_on - gated.median_off);
    std::printf("%-44s %9.1f ns/op   without   %7.1f ns/op   Gate costs %5.1f ns (fastest round of each)\n", "",
                gated.min_on, gated.min_off, gated.min_on - gated.min_off);
  }
  if (run_tool) row("tool: ToolRegistry::call (in+out schemas)", tool, baseline_tool, 2000);
  return 0;
}
