// Metrics registry and the Prometheus text format.
#include "ordinaut/metrics.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>

#include <fmt/format.h>

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

const char* to_string(MetricType type) noexcept {
  switch (type) {
    case MetricType::counter: return "counter";
    case MetricType::gauge: return "gauge";
    case MetricType::histogram: return "histogram";
    case MetricType::summary: return "summary";
    case MetricType::untyped: return "untyped";
  }
  return "untyped";
}

void Counter::inc(double amount) {
  if (!(amount >= 0)) throw std::invalid_argument(fmt::format("a counter cannot go down (inc({}))", amount));
  value_.fetch_add(amount, std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double value) noexcept {
  // Bucket lists are short (≈ 10–20): a linear scan beats a binary search.
  std::size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.cumulative.reserve(bounds_.size() + 1);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(total);
  }
  s.count = total;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

const std::vector<double>& default_histogram_buckets() {
  static const std::vector<double> buckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return buckets;
}

// ---- Registry ------------------------------------------------------------------

namespace {

struct Series {
  std::string labels_text;  // a="x",b="y" — sorted by label name, escaped
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Histogram> histogram;
};

struct Family {
  std::string name;
  std::string help;
  MetricType type = MetricType::untyped;
  std::string owner;  // prefix of the scope that registered it
  std::vector<std::string> label_names;  // sorted
  std::vector<double> buckets;
  std::map<std::string, Series> series;  // by labels_text
};

}  // namespace

struct MetricsRegistry::Store {
  mutable std::shared_mutex mutex;
  std::map<std::string, Family, std::less<>> families;
  std::map<std::string, std::size_t, std::less<>> families_per_scope;

  // Finds or creates the series; every check happens under the lock so two
  // racing registrations agree.
  Series& series(const std::string& owner, std::string_view local, std::string_view help, MetricType type,
                 const MetricLabels& labels, std::vector<double> buckets) {
    std::string name = owner + std::string(local);
    if (local.empty() || !prometheus::is_metric_name(name) || name.find(':') != std::string::npos) {
      throw std::invalid_argument(
          fmt::format("metric name \"{}\" is invalid: use [a-zA-Z_][a-zA-Z0-9_]*", name));
    }
    if (name.starts_with("__")) throw std::invalid_argument(fmt::format("metric name \"{}\" is reserved", name));
    if (help.empty()) throw std::invalid_argument(fmt::format("metric \"{}\" needs a help text", name));
    if (type == MetricType::counter && !name.ends_with("_total")) {
      throw std::invalid_argument(fmt::format("counter \"{}\" must end in \"_total\"", name));
    }
    if (type != MetricType::counter && name.ends_with("_total")) {
      throw std::invalid_argument(fmt::format("only counters may end in \"_total\" (\"{}\" is a {})", name,
                                              to_string(type)));
    }
    for (std::string_view reserved : {"_bucket", "_count", "_sum"}) {
      if (name.ends_with(reserved)) {
        throw std::invalid_argument(
            fmt::format("metric name \"{}\" must not end in \"{}\" (reserved for histograms)", name, reserved));
      }
    }
    if (type == MetricType::histogram) {
      if (buckets.empty()) buckets = default_histogram_buckets();
      for (std::size_t i = 0; i < buckets.size(); ++i) {
        if (!std::isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
          throw std::invalid_argument(
              fmt::format("histogram \"{}\": buckets must be finite and strictly increasing", name));
        }
      }
    }
    std::vector<std::pair<std::string, std::string>> sorted = labels;
    std::sort(sorted.begin(), sorted.end());
    std::vector<std::string> label_names;
    std::string labels_text;
    for (const auto& [k, v] : sorted) {
      if (!prometheus::is_label_name(k)) {
        throw std::invalid_argument(fmt::format("metric \"{}\": label name \"{}\" is invalid", name, k));
      }
      if (k == "le" || k == "quantile") {
        throw std::invalid_argument(fmt::format("metric \"{}\": label \"{}\" is reserved", name, k));
      }
      if (!label_names.empty() && label_names.back() == k) {
        throw std::invalid_argument(fmt::format("metric \"{}\": label \"{}\" given twice", name, k));
      }
      label_names.push_back(k);
      if (!labels_text.empty()) labels_text += ',';
      labels_text += k;
      labels_text += "=\"";
      prometheus::append_label_value(labels_text, v);
      labels_text += '"';
    }

    std::unique_lock lock(mutex);
    auto it = families.find(name);
    if (it == families.end()) {
      std::size_t& count = families_per_scope[owner];
      if (count >= kMaxFamiliesPerScope) {
        throw std::invalid_argument(fmt::format("metric \"{}\": scope \"{}\" already has the maximum of {} families",
                                                name, owner, kMaxFamiliesPerScope));
      }
      ++count;
      Family f;
      f.name = name;
      f.help = help;
      f.type = type;
      f.owner = owner;
      f.label_names = label_names;
      f.buckets = buckets;
      it = families.emplace(name, std::move(f)).first;
    } else {
      Family& f = it->second;
      if (f.owner != owner) {
        throw std::invalid_argument(fmt::format("metric \"{}\" is already registered by another scope (\"{}\")",
                                                name, f.owner));
      }
      if (f.type != type) {
        throw std::invalid_argument(fmt::format("metric \"{}\" is already registered as a {}, not a {}", name,
                                                to_string(f.type), to_string(type)));
      }
      if (f.help != help) {
        throw std::invalid_argument(fmt::format("metric \"{}\" is already registered with another help text", name));
      }
      if (f.label_names != label_names) {
        throw std::invalid_argument(
            fmt::format("metric \"{}\" is already registered with labels ({}), not ({})", name,
                        fmt::join(f.label_names, ","), fmt::join(label_names, ",")));
      }
      if (type == MetricType::histogram && f.buckets != buckets) {
        throw std::invalid_argument(fmt::format("histogram \"{}\" is already registered with other buckets", name));
      }
    }
    Family& f = it->second;
    auto s = f.series.find(labels_text);
    if (s != f.series.end()) return s->second;
    if (f.series.size() >= kMaxSeriesPerFamily) {
      throw std::invalid_argument(fmt::format("metric \"{}\" already has the maximum of {} label combinations", name,
                                              kMaxSeriesPerFamily));
    }
    Series& created = f.series[labels_text];
    created.labels_text = labels_text;
    switch (type) {
      case MetricType::counter: created.counter = std::make_unique<Counter>(); break;
      case MetricType::gauge: created.gauge = std::make_unique<Gauge>(); break;
      default: created.histogram = std::make_unique<Histogram>(f.buckets); break;
    }
    return created;
  }
};

MetricsRegistry::MetricsRegistry() : store_(std::make_shared<Store>()) {}
MetricsRegistry::MetricsRegistry(std::shared_ptr<Store> store, std::string prefix)
    : store_(std::move(store)), prefix_(std::move(prefix)) {}
MetricsRegistry::~MetricsRegistry() = default;

std::unique_ptr<MetricsRegistry> MetricsRegistry::scope(std::string_view prefix) const {
  for (char c : prefix) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) {
      throw std::invalid_argument(fmt::format("metric prefix \"{}\" may only use [a-zA-Z0-9_]", prefix));
    }
  }
  return std::unique_ptr<MetricsRegistry>(new MetricsRegistry(store_, prefix_ + std::string(prefix)));
}

Counter& MetricsRegistry::counter(std::string_view name, std::string_view help, const MetricLabels& labels) {
  return *store_->series(prefix_, name, help, MetricType::counter, labels, {}).counter;
}

Gauge& MetricsRegistry::gauge(std::string_view name, std::string_view help, const MetricLabels& labels) {
  return *store_->series(prefix_, name, help, MetricType::gauge, labels, {}).gauge;
}

Histogram& MetricsRegistry::histogram(std::string_view name, std::string_view help, std::vector<double> buckets,
                                      const MetricLabels& labels) {
  return *store_->series(prefix_, name, help, MetricType::histogram, labels, std::move(buckets)).histogram;
}

void MetricsRegistry::write_prometheus(std::string& out) const {
  prometheus::TextWriter w(out);
  std::shared_lock lock(store_->mutex);
  for (const auto& [name, f] : store_->families) {
    w.family(name, f.help, f.type);
    for (const auto& [key, s] : f.series) {
      if (s.counter) {
        w.sample(name).raw_labels(key).value(s.counter->value());
      } else if (s.gauge) {
        w.sample(name).raw_labels(key).value(s.gauge->value());
      } else if (s.histogram) {
        Histogram::Snapshot snap = s.histogram->snapshot();
        const auto& bounds = s.histogram->bounds();
        std::string le;
        for (std::size_t i = 0; i < bounds.size(); ++i) {
          le.clear();
          prometheus::append_value(le, bounds[i]);
          w.sample(name, "_bucket").raw_labels(key).label("le", le).value(snap.cumulative[i]);
        }
        w.sample(name, "_bucket").raw_labels(key).label("le", "+Inf").value(snap.count);
        w.sample(name, "_sum").raw_labels(key).value(snap.sum);
        w.sample(name, "_count").raw_labels(key).value(snap.count);
      }
    }
  }
}

std::size_t MetricsRegistry::family_count() const {
  std::shared_lock lock(store_->mutex);
  return store_->families.size();
}

// ---- Prometheus text -------------------------------------------------------------

namespace prometheus {

namespace {
bool name_start(char c, bool colon) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}
bool name_char(char c, bool colon) { return name_start(c, colon) || (c >= '0' && c <= '9'); }
}  // namespace

bool is_metric_name(std::string_view name) noexcept {
  if (name.empty() || !name_start(name[0], true)) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return name_char(c, true); });
}

bool is_label_name(std::string_view name) noexcept {
  if (name.empty() || !name_start(name[0], false) || name.starts_with("__")) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return name_char(c, false); });
}

namespace {
// Appends `text` with '\\', '\n' and (when `quote`) '"' escaped; runs
// without one are copied in bulk (the common case: nothing to escape).
void append_escaped(std::string& out, std::string_view text, bool quote) {
  const auto has = [&](char c) { return std::memchr(text.data(), c, text.size()) != nullptr; };
  if (!has('\\') && !has('\n') && !(quote && has('"'))) {  // memchr is vectorised: the common case
    out.append(text);
    return;
  }
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c != '\\' && c != '\n' && !(quote && c == '"')) continue;
    out.append(text.data() + start, i - start);
    out += '\\';
    out += c == '\n' ? 'n' : c;
    start = i + 1;
  }
  out.append(text.data() + start, text.size() - start);
}
}  // namespace

void append_label_value(std::string& out, std::string_view value) {
  append_escaped(out, value, true);
}

void append_help(std::string& out, std::string_view text) { append_escaped(out, text, false); }

void append_value(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
    return;
  }
  if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[32];
  std::to_chars_result r;
  if (value == std::trunc(value) && std::fabs(value) < 9007199254740992.0) {  // 2^53: exact integers
    r = std::to_chars(buf, buf + sizeof buf, static_cast<std::int64_t>(value));
  } else if (std::fabs(value) >= 1e-5 && std::fabs(value) < 1e15) {
    r = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::fixed);  // shortest, "0.0001" not "1e-04"
  } else {
    r = std::to_chars(buf, buf + sizeof buf, value);  // shortest round-trip form
  }
  out.append(buf, r.ptr);
}

void append_value(std::string& out, std::uint64_t value) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, r.ptr);
}

void TextWriter::family(std::string_view name, std::string_view help, MetricType type) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  append_help(out_, help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += to_string(type);
  out_ += '\n';
}

TextWriter& TextWriter::sample(std::string_view name, std::string_view suffix) {
  out_ += name;
  out_ += suffix;
  labels_open_ = false;
  return *this;
}

TextWriter& TextWriter::label(std::string_view name, std::string_view value) {
  out_ += labels_open_ ? ',' : '{';
  labels_open_ = true;
  out_ += name;
  out_ += "=\"";
  append_label_value(out_, value);
  out_ += '"';
  return *this;
}

TextWriter& TextWriter::raw_labels(std::string_view labels) {
  if (labels.empty()) return *this;
  out_ += labels_open_ ? ',' : '{';
  labels_open_ = true;
  out_ += labels;
  return *this;
}

void TextWriter::close_labels() {
  if (labels_open_) out_ += '}';
  labels_open_ = false;
  out_ += ' ';
}

void TextWriter::value(double v) {
  close_labels();
  append_value(out_, v);
  out_ += '\n';
}

void TextWriter::value(std::uint64_t v) {
  close_labels();
  append_value(out_, v);
  out_ += '\n';
}

}  // namespace prometheus

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
