// MetricsRegistry and the Prometheus text helpers, in process.
#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <ordinaut/metrics.hpp>

using ordinaut::MetricsRegistry;
namespace prom = ordinaut::prometheus;

namespace {

std::string render(const MetricsRegistry& r) {
  std::string out;
  r.write_prometheus(out);
  return out;
}

std::string value_text(double v) {
  std::string out;
  prom::append_value(out, v);
  return out;
}

}  // namespace

TEST_CASE("a scope prefixes every name and renders HELP, TYPE and samples") {
  MetricsRegistry root;
  auto shop = root.scope("ext_shop_");
  shop->counter("orders_total", "Orders placed.", {{"kind", "express"}}).inc(3);
  shop->gauge("queue_depth", "Orders waiting.").set(7);
  const std::string text = render(root);
  CHECK(text.find("# HELP ext_shop_orders_total Orders placed.\n# TYPE ext_shop_orders_total counter\n"
                  "ext_shop_orders_total{kind=\"express\"} 3\n") != std::string::npos);
  CHECK(text.find("# TYPE ext_shop_queue_depth gauge\next_shop_queue_depth 7\n") != std::string::npos);
  CHECK(root.family_count() == 2);
}

TEST_CASE("registering the same series again returns the same metric") {
  MetricsRegistry root;
  auto a = root.scope("ext_a_");
  auto& first = a->counter("hits_total", "Hits.", {{"x", "1"}});
  auto& again = a->counter("hits_total", "Hits.", {{"x", "1"}});
  CHECK(&first == &again);
  auto& other = a->counter("hits_total", "Hits.", {{"x", "2"}});
  CHECK(&other != &first);
  // A new scope object for the same prefix (an extension reloaded) gets the same counter.
  auto reloaded = root.scope("ext_a_");
  first.inc();
  CHECK(reloaded->counter("hits_total", "Hits.", {{"x", "1"}}).value() == 1);
}

TEST_CASE("label order does not matter; labels are sorted and escaped") {
  MetricsRegistry root;
  auto& c1 = root.counter("x_total", "X.", {{"b", "2"}, {"a", "1"}});
  auto& c2 = root.counter("x_total", "X.", {{"a", "1"}, {"b", "2"}});
  CHECK(&c1 == &c2);
  root.gauge("quoted", "Escapes.", {{"path", "a\"b\\c\nd"}}).set(1);
  const std::string text = render(root);
  CHECK(text.find("x_total{a=\"1\",b=\"2\"} 0\n") != std::string::npos);
  CHECK(text.find(R"(quoted{path="a\"b\\c\nd"} 1)") != std::string::npos);
}

TEST_CASE("bad names, types and labels are refused with a message naming the problem") {
  MetricsRegistry root;
  auto ext = root.scope("ext_a_");
  CHECK_THROWS_WITH_AS(ext->counter("orders", "No suffix."), doctest::Contains("must end in \"_total\""),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ext->gauge("level_total", "Suffix on a gauge."), doctest::Contains("only counters"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ext->gauge("bad-name", "Dash."), doctest::Contains("\"ext_a_bad-name\" is invalid"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ext->gauge("g", ""), doctest::Contains("needs a help text"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ext->gauge("g", "G.", {{"le", "1"}}), doctest::Contains("reserved"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ext->gauge("g", "G.", {{"__x", "1"}}), doctest::Contains("label name \"__x\" is invalid"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ext->gauge("size_count", "Reserved suffix."), doctest::Contains("reserved for histograms"),
                       std::invalid_argument);
  ext->gauge("level", "Level.", {{"a", "1"}});
  CHECK_THROWS_WITH_AS(ext->histogram("level", "Level."), doctest::Contains("already registered as a gauge"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ext->gauge("level", "Other help."), doctest::Contains("another help text"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ext->gauge("level", "Level.", {{"b", "1"}}), doctest::Contains("labels (a), not (b)"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ext->histogram("lat_seconds", "L.", {1, 0.5}), doctest::Contains("strictly increasing"),
                       std::invalid_argument);
  CHECK_THROWS_AS(ext->counter("up_total", "Up.").inc(-1), std::invalid_argument);
  CHECK_THROWS_AS(root.scope("ext-bad"), std::invalid_argument);
  // Nothing half-registered is rendered.
  CHECK(render(root).find("ext_a_orders") == std::string::npos);
}

TEST_CASE("one scope cannot take over a name another scope registered") {
  MetricsRegistry root;
  auto a = root.scope("ext_a_");
  auto a_b = root.scope("ext_a_b_");
  a->counter("b_c_total", "From a.");
  CHECK_THROWS_WITH_AS(a_b->counter("c_total", "From a_b."), doctest::Contains("another scope"),
                       std::invalid_argument);
}

TEST_CASE("limits bound the series of a family and the families of a scope") {
  MetricsRegistry root;
  auto ext = root.scope("ext_a_");
  for (std::size_t i = 0; i < MetricsRegistry::kMaxSeriesPerFamily; ++i) {
    ext->counter("per_user_total", "Bad idea.", {{"user", std::to_string(i)}});
  }
  CHECK_THROWS_WITH_AS(ext->counter("per_user_total", "Bad idea.", {{"user", "one-more"}}),
                       doctest::Contains("maximum of 1000 label combinations"), std::invalid_argument);
  for (std::size_t i = 1; i < MetricsRegistry::kMaxFamiliesPerScope; ++i) {
    ext->gauge("g" + std::to_string(i), "G.");
  }
  CHECK_THROWS_WITH_AS(ext->gauge("one_more", "G."), doctest::Contains("maximum of 200 families"),
                       std::invalid_argument);
  // Another scope still has room.
  CHECK_NOTHROW(root.scope("ext_b_")->gauge("g", "G."));
}

TEST_CASE("a histogram renders cumulative buckets, +Inf, sum and count") {
  MetricsRegistry root;
  auto& h = root.histogram("job_seconds", "Job time.", {0.1, 1, 10}, {{"queue", "q"}});
  for (double v : {0.05, 0.1, 0.5, 2.0, 100.0}) h.observe(v);
  const std::string text = render(root);
  CHECK(text.find("# TYPE job_seconds histogram\n"
                  "job_seconds_bucket{queue=\"q\",le=\"0.1\"} 2\n"
                  "job_seconds_bucket{queue=\"q\",le=\"1\"} 3\n"
                  "job_seconds_bucket{queue=\"q\",le=\"10\"} 4\n"
                  "job_seconds_bucket{queue=\"q\",le=\"+Inf\"} 5\n"
                  "job_seconds_sum{queue=\"q\"} 102.65\n"
                  "job_seconds_count{queue=\"q\"} 5\n") != std::string::npos);
  auto& d = root.histogram("default_seconds", "Default buckets.");
  CHECK(d.bounds() == ordinaut::default_histogram_buckets());
}

TEST_CASE("values are written as Prometheus reads them") {
  CHECK(value_text(3) == "3");
  CHECK(value_text(-2) == "-2");
  CHECK(value_text(0.0001) == "0.0001");
  CHECK(value_text(0.1) == "0.1");
  CHECK(value_text(1e20) == "1e+20");
  CHECK(value_text(1.5e-9) == "1.5e-09");
  CHECK(value_text(std::numeric_limits<double>::infinity()) == "+Inf");
  CHECK(value_text(-std::numeric_limits<double>::infinity()) == "-Inf");
  CHECK(value_text(std::nan("")) == "NaN");
  std::string big;
  prom::append_value(big, std::uint64_t{18446744073709551615u});
  CHECK(big == "18446744073709551615");
}

TEST_CASE("name checks follow the exposition format") {
  CHECK(prom::is_metric_name("a_b:c"));
  CHECK_FALSE(prom::is_metric_name("1abc"));
  CHECK_FALSE(prom::is_metric_name(""));
  CHECK(prom::is_label_name("route"));
  CHECK_FALSE(prom::is_label_name("__name__"));
  CHECK_FALSE(prom::is_label_name("a:b"));
}

TEST_CASE("TextWriter groups labels and escapes HELP") {
  std::string out;
  prom::TextWriter w(out);
  w.family("m", "line one\nback\\slash", ordinaut::MetricType::gauge);
  w.sample("m").value(1.0);
  w.sample("m").raw_labels("a=\"x\"").label("b", "y\"z").value(std::uint64_t{2});
  w.sample("m", "_sum").raw_labels("").value(0.5);
  CHECK(out ==
        "# HELP m line one\\nback\\\\slash\n# TYPE m gauge\n"
        "m 1\n"
        "m{a=\"x\",b=\"y\\\"z\"} 2\n"
        "m_sum 0.5\n");
}

TEST_CASE("updates from many threads are all counted while rendering runs") {
  MetricsRegistry root;
  auto ext = root.scope("ext_t_");
  constexpr int kThreads = 4, kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&ext, t] {
      auto& c = ext->counter("events_total", "Events.");
      auto& own = ext->counter("by_thread_total", "By thread.", {{"thread", std::to_string(t)}});
      auto& g = ext->gauge("in_flight", "In flight.");
      auto& h = ext->histogram("work_seconds", "Work.", {0.5});
      for (int i = 0; i < kPerThread; ++i) {
        c.inc();
        own.inc();
        g.inc();
        g.dec();
        h.observe(i % 2 ? 0.25 : 1.0);
      }
    });
  }
  threads.emplace_back([&root] {
    for (int i = 0; i < 200; ++i) (void)render(root);
  });
  for (auto& t : threads) t.join();
  const std::string text = render(root);
  CHECK(text.find("ext_t_events_total 80000\n") != std::string::npos);
  CHECK(text.find("ext_t_by_thread_total{thread=\"3\"} 20000\n") != std::string::npos);
  CHECK(text.find("ext_t_in_flight 0\n") != std::string::npos);
  CHECK(text.find("ext_t_work_seconds_bucket{le=\"0.5\"} 40000\n") != std::string::npos);
  CHECK(text.find("ext_t_work_seconds_count 80000\n") != std::string::npos);
}
