// Metrics: counters, gauges and histograms, and the Prometheus text format.
//
// The host owns one MetricsRegistry. Through SetupContext::metrics() every
// extension receives a scope of it whose names all start with "ext_{id}_", so
// extension "shop" registering "orders_total" exports "ext_shop_orders_total".
// The observability extension renders the whole registry (every scope) at
// /ext/observability/metrics. Metrics stay registered for the host's lifetime;
// an extension that is reloaded and registers the same name again gets the
// same metric back, so its counters keep counting.
//
// Cardinality is bounded on purpose: a family holds at most
// kMaxSeriesPerFamily label combinations and a scope at most
// kMaxFamiliesPerScope families; registering beyond that fails. Never put
// client-chosen text (URLs, ids) in label values.
//
// Thread safety: every class here is safe for concurrent use. Counter, Gauge
// and Histogram updates are lock-free; registration takes a lock. References
// returned by counter()/gauge()/histogram() stay valid as long as the root
// registry they came from.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ordinaut/version.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

/// Label name → value pairs of one series, e.g. {{"kind", "express"}}.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

/// The type of a metric family, as the Prometheus text format names it.
enum class MetricType { counter, gauge, histogram, summary, untyped };
/// "counter", "gauge", ... as written in a # TYPE line.
const char* to_string(MetricType type) noexcept;

/// A value that only goes up.
class Counter {
 public:
  /// REQUIRES: amount >= 0 (throws std::invalid_argument otherwise).
  void inc(double amount = 1);
  /// The total so far.
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

/// A value that goes up and down.
class Gauge {
 public:
  /// Sets the value.
  void set(double value) noexcept { value_.store(value, std::memory_order_relaxed); }
  /// Adds `amount` (may be negative).
  void add(double amount) noexcept { value_.fetch_add(amount, std::memory_order_relaxed); }
  /// add(1).
  void inc() noexcept { add(1); }
  /// add(-1).
  void dec() noexcept { add(-1); }
  /// The current value.
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

/// Observations counted into buckets with fixed upper bounds.
class Histogram {
 public:
  /// REQUIRES: `bounds` strictly increasing, finite, non-empty.
  explicit Histogram(std::vector<double> bounds);
  /// Counts `value` into its bucket and adds it to the sum.
  void observe(double value) noexcept;

  /// The histogram's counts at one moment.
  struct Snapshot {
    std::vector<std::uint64_t> cumulative;  ///< per bound, then +Inf last
    double sum = 0;                         ///< of every observed value
    std::uint64_t count = 0;                ///< observations
  };
  /// The counts now (each read atomically; the set is not one transaction).
  Snapshot snapshot() const;
  /// The upper bounds given to the constructor.
  const std::vector<double>& bounds() const noexcept { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // bounds_.size() + 1, non-cumulative
  std::atomic<double> sum_{0};
};

/// Prometheus' default buckets, in seconds: 5 ms … 10 s.
const std::vector<double>& default_histogram_buckets();

/// Counters, gauges and histograms by name and labels, written in the
/// Prometheus text format. An extension gets a scope prefixed "ext_{id}_"
/// (SetupContext::metrics()). Thread-safe; returned references live as long
/// as the root registry.
class MetricsRegistry {
 public:
  /// Label combinations one family may hold (label values must come from a small set).
  static constexpr std::size_t kMaxSeriesPerFamily = 1000;
  /// Families one scope may register.
  static constexpr std::size_t kMaxFamiliesPerScope = 200;

  /// A new root registry with an empty prefix.
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  /// A scope of this registry's root whose names start with prefix() + `prefix`.
  /// Families belong to the scope that registered them: another scope asking
  /// for the same full name is refused (so "ext_a_" and "ext_a_b_" cannot share
  /// a metric). REQUIRES: `prefix` is empty or a valid metric name fragment.
  std::unique_ptr<MetricsRegistry> scope(std::string_view prefix) const;
  /// What every name registered here starts with ("" for the root).
  const std::string& prefix() const noexcept { return prefix_; }

  /// Registers (or returns the existing) series `prefix() + name` with these
  /// labels. Throws std::invalid_argument naming the problem when the name or
  /// a label is invalid ([a-zA-Z_][a-zA-Z0-9_]*, no "__" prefix for labels,
  /// no "le"/"quantile" label), a counter's name does not end in "_total", the
  /// name exists with another type, help, label names or buckets, or a limit
  /// above is reached.
  Counter& counter(std::string_view name, std::string_view help, const MetricLabels& labels = {});
  /// As counter(), for a gauge (any name).
  Gauge& gauge(std::string_view name, std::string_view help, const MetricLabels& labels = {});
  /// `buckets` empty means default_histogram_buckets().
  Histogram& histogram(std::string_view name, std::string_view help, std::vector<double> buckets = {},
                       const MetricLabels& labels = {});

  /// Appends every family of the root registry (all scopes), sorted by name,
  /// in the Prometheus text format 0.0.4.
  void write_prometheus(std::string& out) const;
  /// Families registered in the root (all scopes).
  std::size_t family_count() const;

 private:
  struct Store;
  MetricsRegistry(std::shared_ptr<Store> store, std::string prefix);
  std::shared_ptr<Store> store_;
  std::string prefix_;
};

/// Helpers for writing the Prometheus text exposition format, version 0.0.4.
namespace prometheus {

/// The Content-Type of a scrape response.
inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

/// [a-zA-Z_:][a-zA-Z0-9_:]* (colons are allowed by Prometheus but reserved for
/// recording rules; MetricsRegistry refuses them).
bool is_metric_name(std::string_view name) noexcept;
/// [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__".
bool is_label_name(std::string_view name) noexcept;

/// Appends `value` escaped for a label value (\\, \", \n).
void append_label_value(std::string& out, std::string_view value);
/// Appends `text` escaped for a HELP line (\\, \n).
void append_help(std::string& out, std::string_view text);
/// Appends a sample value: integers without a fraction, +Inf, -Inf, NaN,
/// otherwise the shortest text that reads back as the same double.
void append_value(std::string& out, double value);
/// Appends an integer sample value.
void append_value(std::string& out, std::uint64_t value);

/// Writes families and samples into a string, one call per element:
///
///   TextWriter w(out);
///   w.family("http_requests_total", "Requests.", MetricType::counter);
///   w.sample("http_requests_total").label("code", "200").value(42);
///
/// The writer does not check grouping: write all samples of a family right
/// after its family() line.
class TextWriter {
 public:
  /// Appends to `out`, which must outlive the writer.
  explicit TextWriter(std::string& out) : out_(out) {}
  /// # HELP and # TYPE lines.
  void family(std::string_view name, std::string_view help, MetricType type);
  /// Starts a sample line; `suffix` is appended to the name ("_bucket", ...).
  TextWriter& sample(std::string_view name, std::string_view suffix = {});
  /// Adds a label to the current sample, escaping `value`.
  TextWriter& label(std::string_view name, std::string_view value);
  /// Appends already-formatted labels `a="b",c="d"` (no braces), e.g. cached.
  TextWriter& raw_labels(std::string_view labels);
  /// Ends the current sample with its value (see append_value()).
  void value(double v);
  /// Ends the current sample with an integer value.
  void value(std::uint64_t v);

 private:
  void close_labels();
  std::string& out_;
  bool labels_open_ = false;
};

}  // namespace prometheus

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
