// RouteCounters, LoadOrder and the parking of abandoned runtimes (entry.hpp).
#include "host/entry.hpp"

#include <algorithm>
#include <array>
#include <exception>

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

const char* to_string(ExtensionState state) noexcept {
  switch (state) {
    case ExtensionState::discovered: return "discovered";
    case ExtensionState::loading: return "loading";
    case ExtensionState::active: return "active";
    case ExtensionState::error: return "error";
    case ExtensionState::disabled: return "disabled";
    case ExtensionState::stopped: return "stopped";
  }
  return "unknown";
}

const std::vector<double>& latency_buckets() {
  static const std::vector<double> buckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                              0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};
  return buckets;
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut

namespace ordinaut::detail {

void RouteCounters::record(int status, std::chrono::nanoseconds elapsed) {
  requests.fetch_add(1, std::memory_order_relaxed);
  if (status >= 500) errors.fetch_add(1, std::memory_order_relaxed);
  const auto cls = static_cast<std::size_t>(std::clamp(status / 100, 0, 5));
  status_class[cls].fetch_add(1, std::memory_order_relaxed);
  nanos[cls].fetch_add(static_cast<std::uint64_t>(elapsed.count()), std::memory_order_relaxed);
  const double seconds = static_cast<double>(elapsed.count()) / 1e9;
  const auto& bounds = latency_buckets();
  for (std::size_t i = 0; i < kLatencyBucketCount; ++i) {
    if (seconds <= bounds[i]) {
      buckets[cls][i].fetch_add(1, std::memory_order_relaxed);
      break;
    }
  }
}

RouteMetrics RouteCounters::snapshot(std::string method, std::string route) const {
  RouteMetrics m;
  m.method = std::move(method);
  m.route = std::move(route);
  m.requests = requests.load(std::memory_order_relaxed);
  m.errors = errors.load(std::memory_order_relaxed);
  m.buckets.assign(kLatencyBucketCount, 0);
  for (std::size_t c = 0; c < 6; ++c) {
    m.status_class[c] = status_class[c].load(std::memory_order_relaxed);
    m.class_seconds[c] = static_cast<double>(nanos[c].load(std::memory_order_relaxed)) / 1e9;
    m.seconds_total += m.class_seconds[c];
    if (m.status_class[c] == 0) continue;
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < kLatencyBucketCount; ++i) {
      cumulative += buckets[c][i].load(std::memory_order_relaxed);
      m.class_buckets[c].push_back(cumulative);
      m.buckets[i] += cumulative;
    }
  }
  return m;
}

namespace {
std::atomic<std::size_t> g_live_runtimes{0};
}  // namespace

Runtime::Runtime() noexcept { g_live_runtimes.fetch_add(1, std::memory_order_relaxed); }

Runtime::~Runtime() {
  tasks.reset();
  router.reset();
  extension.reset();
  context.reset();
  g_live_runtimes.fetch_sub(1, std::memory_order_relaxed);
}

std::size_t live_runtimes() noexcept { return g_live_runtimes.load(std::memory_order_relaxed); }

void park_abandoned(std::shared_ptr<Runtime> runtime) noexcept {
  // Allocated with the first parked runtime and never destroyed. The spare
  // slots hold runtimes parked when the list cannot grow (out of memory).
  static auto* mutex = new std::mutex;
  static auto* parked = new std::vector<std::shared_ptr<Runtime>>;
  static auto* spare = new std::array<std::shared_ptr<Runtime>, 16>;
  static std::size_t spare_used = 0;
  std::lock_guard lock(*mutex);
  try {
    parked->push_back(std::move(runtime));
  } catch (...) {
    if (spare_used == spare->size()) std::terminate();  // rather than free it under the thread
    (*spare)[spare_used++] = std::move(runtime);
  }
}

void LoadOrder::loaded(Entry* entry) {
  std::lock_guard lock(mutex_);
  std::erase(order_, entry);
  order_.push_back(entry);
}

void LoadOrder::removed(Entry* entry) {
  std::lock_guard lock(mutex_);
  std::erase(order_, entry);
}

std::vector<Entry*> LoadOrder::copy() const {
  std::lock_guard lock(mutex_);
  return order_;
}

std::size_t LoadOrder::size() const {
  std::lock_guard lock(mutex_);
  return order_.size();
}

}  // namespace ordinaut::detail
