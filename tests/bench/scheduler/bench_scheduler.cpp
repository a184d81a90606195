// Scheduler benchmarks (not tests): the library's Service over a real store,
// with a trivial in-process tool, each figure beside its baseline measured in
// the same run.
//
//   latency:     scheduled time -> first step start of due runs, p50/p99/max,
//                with --tasks tasks in one SQLite store (all but the stream
//                due in a year) and a stream of --due tasks due at random
//                milliseconds over --window seconds. Rows: wake-at-due (the
//                dispatcher sleeps until the next due time) beside the
//                baseline poll-only (ServiceOptions::wake_at_due = false:
//                it sleeps poll_interval, 1 s, between rounds), in
//                alternating rounds.
//   throughput:  runs per second of a one-step pipeline, --runs tasks, on
//                SQLite and on a real PostgreSQL 15 started here
//                (tests/scheduler/pg_server.hpp): run_now of every task then
//                the dispatcher until all succeeded ("queued"), and every
//                task due at once ("due"); beside the baseline of the same
//                pipeline run by run_pipeline() on one thread without a store.
//
// Usage: bench_scheduler [latency|throughput|all] [--repeat N] [--tasks N]
//        [--due N] [--window S] [--runs N] [--workers N] [--no-postgres]
//        [--poll-only] (throughput with the poll-only dispatcher)
// Defaults: all, repeat 2, tasks 10000, due 200, window 20, runs 1000,
// workers 4 (the server's default). Exit 1 when a run fails or a deadline
// (generous: minutes) passes, so a broken scheduler cannot print figures.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "pg_server.hpp"
#include "pipeline.hpp"
#include "service.hpp"

// support.hpp (for TempDir) includes doctest: disabled, its assertion macros
// compile to nothing, leaving some helpers' parameters unused.
#define DOCTEST_CONFIG_DISABLE
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "support.hpp"
#pragma GCC diagnostic pop

using namespace ordinaut;
using namespace ordinaut::scheduler;

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string what = "all";
  int repeat = 2;
  std::size_t tasks = 10'000, due = 200, runs = 1000, workers = 4;
  int window_s = 20;
  bool postgres = true;
  bool poll_only = false;  // throughput with the baseline dispatcher (wake_at_due = false)
};

std::int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
std::int64_t wall_ms() { return wall_us() / 1000; }

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "bench_scheduler: %s\n", why.c_str());
  std::exit(1);
}

template <typename T>
T must(Result<T> r, std::string_view what) {
  if (!r.ok()) die(fmt::format("{}: {}: {}", what, r.error().code, r.error().message));
  return std::move(r).value();
}
void must(Result<void> r, std::string_view what) {
  if (!r.ok()) die(fmt::format("{}: {}: {}", what, r.error().code, r.error().message));
}

// The tool every benchmark pipeline calls: records how late its call came
// after the "due" it is given (latency), and counts calls.
struct Marker {
  ToolRegistry registry;
  std::mutex mutex;
  std::vector<double> late_ms;
  std::atomic<long> calls{0};

  Marker() {
    must(registry.add({.name = "bench.mark",
                       .description = "records the delay since input.due (Unix ms), if given",
                       .function =
                           [this](const JsonValue& in, ToolContext&) {
                             const std::int64_t now = wall_us();
                             ++calls;
                             if (in.IsObject() && in.HasMember("due") && in["due"].IsInt64()) {
                               std::lock_guard lock(mutex);
                               late_ms.push_back(static_cast<double>(now - in["due"].GetInt64() * 1000) / 1000.0);
                             }
                             Json out = json::object();
                             out.AddMember("ok", true, out.GetAllocator());
                             return out;
                           }}),
         "register bench.mark");
  }
  std::vector<double> take() {
    std::lock_guard lock(mutex);
    return std::exchange(late_ms, {});
  }
  std::size_t recorded() {
    std::lock_guard lock(mutex);
    return late_ms.size();
  }
};

// A stored task as create_task would write it, due at `due_ms` (any
// millisecond: the planner takes next_due_ms as the occurrence).
TaskRecord once_task(std::string id, std::int64_t due_ms, bool with_due) {
  TaskRecord t;
  t.id = std::move(id);
  t.title = t.id;
  t.schedule_kind = "once";
  t.schedule_expr = format_rfc3339_ms(due_ms / 1000 * 1000);
  t.timezone = "UTC";
  t.payload = with_due ? fmt::format(R"({{"params":{{}},"pipeline":[{{"uses":"bench.mark","with":{{"due":{}}}}}]}})",
                                     due_ms)
                       : std::string(R"({"params":{},"pipeline":[{"uses":"bench.mark"}]})");
  t.next_due_ms = due_ms;
  t.created_at_ms = t.updated_at_ms = wall_ms();
  return t;
}

// Counts finished runs through the service's changes; any failed or
// cancelled run ends the benchmark.
struct Finished {
  std::mutex mutex;
  std::condition_variable cv;
  std::size_t succeeded = 0, bad = 0;
  std::string first_bad;

  void attach(Service& s) {
    s.on_change([this](const Change& c) {
      if (c.topic != "task.run.succeeded" && c.topic != "task.run.failed" && c.topic != "task.run.cancelled") return;
      {
        std::lock_guard lock(mutex);
        if (c.topic == "task.run.succeeded") {
          ++succeeded;
        } else if (bad++ == 0) {
          first_bad = json::dump(c.body);
        }
      }
      cv.notify_all();
    });
  }
  // Waits for `n` successes; dies on a failed run or after the deadline.
  void wait(std::size_t n, std::chrono::seconds deadline) {
    std::unique_lock lock(mutex);
    if (!cv.wait_for(lock, deadline, [&] { return succeeded >= n || bad > 0; })) {
      die(fmt::format("only {} of {} runs succeeded within {} s", succeeded, n, deadline.count()));
    }
    if (bad > 0) die("a run did not succeed: " + first_bad);
  }
};

std::unique_ptr<Service> make_service(const std::string& spec, Marker& marker, const Options& o, bool wake_at_due) {
  ServiceOptions options;
  options.owner = "bench";
  options.workers = o.workers;
  options.wake_at_due = wake_at_due;
  return std::make_unique<Service>(must(Store::open(spec), "open the store"), ToolView(marker.registry), options);
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// --- latency ----------------------------------------------------------------

// One round: `o.due` stream tasks due over the window, the dispatcher started
// after they are stored (so only its wait, not a local change, finds them).
std::vector<double> latency_round(const std::string& spec, Marker& marker, const Options& o, bool wake_at_due,
                                  std::mt19937_64& random, int round) {
  auto service = make_service(spec, marker, o, wake_at_due);
  Finished finished;
  finished.attach(*service);
  const std::int64_t start = wall_ms() + 2000;  // after the inserts below
  std::uniform_int_distribution<std::int64_t> at(0, std::int64_t{o.window_s} * 1000 - 1);
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < o.due; ++i) {
    ids.push_back(fmt::format("due-{}-{}-{}", round, wake_at_due ? "wake" : "poll", i));
    must(service->store().insert_task(once_task(ids.back(), start + at(random), true)), "insert a due task");
  }
  if (wall_ms() >= start) die("inserting the due stream took more than 2 s; lower --due");
  marker.take();
  {
    std::jthread dispatcher([&](std::stop_token stop) { service->run(stop); });
    finished.wait(o.due, std::chrono::seconds(o.window_s + 120));
  }
  for (const auto& id : ids) must(service->store().delete_task(id), "delete a due task");
  return marker.take();
}

void latency(const Options& o) {
  test_support::TempDir dir;
  const std::string spec = "sqlite:" + (dir.path() / "scheduler.db").string();
  Marker marker;
  {
    auto store = must(Store::open(spec), "open the store");
    const std::int64_t year = wall_ms() + 365LL * 24 * 3600 * 1000;
    const auto start = Clock::now();
    const std::size_t background = o.tasks > o.due ? o.tasks - o.due : 0;
    for (std::size_t i = 0; i < background; ++i) {
      must(store->insert_task(once_task(fmt::format("later-{}", i), year + static_cast<std::int64_t>(i) * 1000, false)),
           "insert a task");
    }
    std::printf("latency: %zu tasks not due stored in %.1f s (SQLite); stream of %zu due over %d s per round\n",
                background, std::chrono::duration<double>(Clock::now() - start).count(), o.due, o.window_s);
  }
  std::mt19937_64 random(std::random_device{}());
  std::vector<double> wake_all, poll_all;
  for (int r = 0; r < o.repeat; ++r) {
    for (const bool wake : {false, true}) {
      auto samples = latency_round(spec, marker, o, wake, random, r);
      if (samples.size() != o.due) die(fmt::format("{} latency samples, expected {}", samples.size(), o.due));
      std::printf("  round %d %-24s p50 %8.1f ms   p99 %8.1f ms   max %8.1f ms   (%zu runs)\n", r + 1,
                  wake ? "wake-at-due" : "baseline poll-only (1 s)", percentile(samples, 0.5),
                  percentile(samples, 0.99), percentile(samples, 1.0), samples.size());
      std::fflush(stdout);
      auto& all = wake ? wake_all : poll_all;
      all.insert(all.end(), samples.begin(), samples.end());
    }
  }
  std::printf("%-44s p50 %8.1f ms   p99 %8.1f ms   (%zu runs)\n", "latency due -> step start, wake-at-due",
              percentile(wake_all, 0.5), percentile(wake_all, 0.99), wake_all.size());
  std::printf("%-44s p50 %8.1f ms   p99 %8.1f ms   (%zu runs)\n", "  baseline: poll-only every 1 s",
              percentile(poll_all, 0.5), percentile(poll_all, 0.99), poll_all.size());
}

// --- throughput -------------------------------------------------------------

// Runs per second of run_pipeline() alone on one thread: no store, no dispatcher.
double bare_pipeline_rate(Marker& marker, std::size_t n) {
  const Json steps = must(json::parse(R"([{"uses":"bench.mark"}])"), "parse the pipeline");
  const Pipeline pipeline = must(parse_pipeline(steps, "/pipeline"), "compile the pipeline");
  const Json params = json::object();
  const ToolView tools(marker.registry);
  const auto start = Clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    CancelToken token;
    RunResult r = run_pipeline(pipeline, params, nullptr, tools, RunOptions{}, token, StepObserver{});
    if (to_string(r.status) != "succeeded") die("the bare pipeline did not succeed");
  }
  return static_cast<double>(n) / std::chrono::duration<double>(Clock::now() - start).count();
}

// "queued": run_now of every task, then the dispatcher until all succeeded.
// "due": every task due now, the dispatcher until all succeeded.
double scheduler_rate(const std::string& spec, Marker& marker, const Options& o, bool due, int round) {
  auto service = make_service(spec, marker, o, !o.poll_only);
  Finished finished;
  finished.attach(*service);
  std::vector<std::string> ids;
  const std::int64_t now = wall_ms();
  for (std::size_t i = 0; i < o.runs; ++i) {
    ids.push_back(fmt::format("{}-{}-{}", due ? "due" : "manual", round, i));
    TaskRecord t = once_task(ids.back(), now, false);
    if (!due) {
      t.schedule_kind = "manual";
      t.schedule_expr.clear();
      t.next_due_ms.reset();
    }
    must(service->store().insert_task(t), "insert a task");
  }
  if (!due) {
    for (const auto& id : ids) {
      Json input = json::object();
      input.AddMember("id", JsonValue(id.c_str(), input.GetAllocator()), input.GetAllocator());
      must(service->run_now(input), "run_now");
    }
  }
  const auto start = Clock::now();
  {
    std::jthread dispatcher([&](std::stop_token stop) { service->run(stop); });
    finished.wait(o.runs, std::chrono::seconds(600));
  }
  const double rate = static_cast<double>(o.runs) / std::chrono::duration<double>(Clock::now() - start).count();
  for (const auto& id : ids) must(service->store().delete_task(id), "delete a task");
  return rate;
}

void throughput(const Options& o) {
  Marker marker;
  test_support::TempDir dir;
  std::vector<std::pair<std::string, std::string>> backends = {
      {"SQLite", "sqlite:" + (dir.path() / "scheduler.db").string()}};
  std::unique_ptr<test_support::PgServer> pg;
  if (o.postgres) {
    pg = std::make_unique<test_support::PgServer>();  // throws (and the bench fails) if it cannot start
    backends.emplace_back("PostgreSQL", pg->uri(pg->create_database()));
  }
  std::printf("throughput: %zu runs of a one-step pipeline per row, %zu workers\n", o.runs, o.workers);
  for (int r = 0; r < o.repeat; ++r) {
    const double bare = bare_pipeline_rate(marker, o.runs * 10);
    for (const auto& [name, spec] : backends) {
      for (const bool due : {false, true}) {
        const double rate = scheduler_rate(spec, marker, o, due, r);
        std::printf("  round %d %-10s %-28s %9.0f runs/s   baseline run_pipeline() alone %9.0f runs/s\n", r + 1,
                    name.c_str(), due ? "due at once (claim_due)" : "run_now queued (claim_runs)", rate, bare);
        std::fflush(stdout);
      }
    }
  }
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto number = [&](long lo, long hi) {
      if (i + 1 >= argc) die(fmt::format("{} needs a number", a));
      char* end = nullptr;
      const long v = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || v < lo || v > hi) die(fmt::format("{} must be a number from {} to {}", a, lo, hi));
      return v;
    };
    if (a == "latency" || a == "throughput" || a == "all") {
      o.what = a;
    } else if (a == "--repeat") {
      o.repeat = static_cast<int>(number(1, 100));
    } else if (a == "--tasks") {
      o.tasks = static_cast<std::size_t>(number(1, 10'000'000));
    } else if (a == "--due") {
      o.due = static_cast<std::size_t>(number(1, 100'000));
    } else if (a == "--window") {
      o.window_s = static_cast<int>(number(1, 3600));
    } else if (a == "--runs") {
      o.runs = static_cast<std::size_t>(number(1, 10'000'000));
    } else if (a == "--workers") {
      o.workers = static_cast<std::size_t>(number(1, 256));
    } else if (a == "--poll-only") {
      o.poll_only = true;
    } else if (a == "--no-postgres") {
      o.postgres = false;
    } else {
      die(fmt::format("unknown argument \"{}\"; see the usage at the top of tests/bench/scheduler/bench_scheduler.cpp",
                      a));
    }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
  try {
    if (o.what == "all" || o.what == "latency") latency(o);
    if (o.what == "all" || o.what == "throughput") throughput(o);
  } catch (const std::exception& e) {
    die(e.what());
  }
  return 0;
}
