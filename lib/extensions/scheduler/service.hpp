// The scheduler's operations and its dispatcher, independent of HTTP and MCP.
//
// Service joins the three parts: schedules (schedule.hpp) say when, the store
// (store.hpp) remembers tasks and runs and arbitrates between servers, and
// pipelines (pipeline.hpp) run the tools. The extension module calls the
// operations from its tools and routes, and runs Service::run() as its
// background task.
//
// Operations take the JSON the tools' input schemas describe (extension.json)
// and answer the JSON their output schemas describe; bad input gets an Error
// with a code, a message naming what is wrong and a JSON pointer, and nothing
// is stored.
//
// Dispatch (tick): due occurrences are claimed from the store (each exactly
// once across every server sharing it), together with queued runs and runs
// whose lease expired because their server died; each is run on a worker
// thread while this server renews its lease. Missed occurrences (the server
// was down longer than `misfire_grace_ms`) follow the task's catch-up policy:
// `skip` records one skipped run for them, `run_once` runs the latest of them
// once. Snoozed occurrences are recorded as skipped runs.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ordinaut/json.hpp"
#include "ordinaut/result.hpp"
#include "ordinaut/tools.hpp"
#include "pipeline.hpp"
#include "schedule.hpp"
#include "store.hpp"

namespace ordinaut::scheduler {

struct ServiceOptions {
  /// Lease owner written on the runs this server claims; unique per server.
  std::string owner;
  /// A claimed run's lease; renewed while it runs, taken over by another
  /// server once it expires.
  std::int64_t lease_ms = 30'000;
  /// Runs executing at once on this server.
  std::size_t workers = 4;
  /// Occurrences claimed per store round.
  std::size_t claim_batch = 64;
  /// An occurrence later than this when claimed was missed (catch-up policy).
  std::int64_t misfire_grace_ms = 60'000;
  /// Retention of finished runs: older than this are pruned...
  std::int64_t retention_ms = 30LL * 24 * 3600 * 1000;
  /// ...and each task keeps at most this many.
  std::size_t retention_count = 1000;
  /// The longest the dispatcher sleeps: changes by other servers sharing the
  /// store are seen within this delay.
  std::chrono::milliseconds poll_interval{1000};
  /// Between rounds the dispatcher sleeps until the earliest of: the next due
  /// time in the store (Store::next_wake_ms), the next lease renewal of its
  /// own runs, and poll_interval; a local change wakes it at once. false:
  /// it sleeps poll_interval whatever is due (the behaviour before; kept as
  /// the baseline of tests/bench/scheduler).
  bool wake_at_due = true;
  /// The clock (Unix milliseconds); tests drive it.
  std::function<std::int64_t()> now_ms;
};

/// A change of a task or a run, for the extension's events and SSE stream.
struct Change {
  /// task.created, task.updated, task.deleted, task.run.queued,
  /// task.run.started, task.run.step, task.run.succeeded, task.run.failed,
  /// task.run.cancelled, task.run.skipped
  std::string topic;
  Json body;  ///< the task or the run, as the tools return them
};

class Service {
 public:
  Service(std::unique_ptr<Store> store, ToolView tools, ServiceOptions options);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // --- operations (the tools of the same names) ---
  Result<Json> create_task(const JsonValue& input);
  Result<Json> list_tasks(const JsonValue& input);
  Result<Json> get_task(std::string_view id);
  Result<Json> update_task(const JsonValue& input);
  Result<Json> delete_task(std::string_view id);
  Result<Json> pause_task(std::string_view id);
  Result<Json> resume_task(std::string_view id);
  Result<Json> run_now(const JsonValue& input);
  Result<Json> snooze_task(const JsonValue& input);
  Result<Json> cancel_run(std::string_view id);
  Result<Json> list_runs(const JsonValue& input);
  Result<Json> get_run(std::string_view id);

  /// A published event: queues a run of each enabled `event` task whose
  /// pattern matches the topic, with the event as ${event}. Returns the
  /// number of runs queued.
  std::size_t on_event(std::string_view topic, std::string_view event_id, std::int64_t time_ms,
                       const JsonValue& payload);

  /// One dispatch round at `now_ms`: renews leases, claims what is due and
  /// starts it. Returns how many runs it started.
  std::size_t tick(std::int64_t now_ms);
  /// The dispatcher: tick() until stop is requested, sleeping until the next
  /// due time or lease renewal (at most poll_interval; see
  /// ServiceOptions::wake_at_due), woken early by local changes. Running
  /// runs are cancelled and awaited when it returns.
  void run(std::stop_token stop);
  /// Cancels running runs and joins the workers (also done by ~Service).
  void shutdown();

  /// Listeners of changes; called on the thread that made the change, never
  /// under the service's locks.
  std::uint64_t on_change(std::function<void(const Change&)> listener);
  void remove_listener(std::uint64_t id);

  /// Runs executing on this server now.
  std::size_t active_runs() const;
  Store& store() { return *store_; }

 private:
  struct Active;
  Result<Json> set_enabled(std::string_view id, bool enabled);
  Result<TaskRecord> load_task(std::string_view id);
  Result<Schedule> schedule_of(const TaskRecord& task);
  std::vector<RunRecord> plan(TaskRecord& task, std::int64_t now_ms);
  void start_run(RunRecord run);
  void work();
  void execute(RunRecord run, std::shared_ptr<Active> active);
  void renew_leases(std::int64_t now_ms);
  std::chrono::milliseconds idle_wait(std::int64_t ticked_at_ms, std::size_t started);
  void emit(std::string topic, Json body);
  void wake();
  std::string new_id(std::string_view prefix);
  std::int64_t now() const;

  std::unique_ptr<Store> store_;
  ToolView tools_;
  ServiceOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable wake_cv_;
  bool woken_ = false;
  bool shutting_down_ = false;
  // Runs claimed by this server, queued or executing, by run id; the
  // workers (at most options_.workers, started on demand) take them in order.
  std::map<std::string, std::shared_ptr<Active>, std::less<>> active_;
  std::deque<std::pair<RunRecord, std::shared_ptr<Active>>> queue_;
  std::condition_variable work_cv_;
  std::vector<std::jthread> workers_;
  std::mt19937_64 random_;
  std::int64_t last_prune_ms_ = 0;

  // Compiled schedules by task id, with the fields they were compiled from
  // (a hit needs all of them equal; the revision is not a key: every claim
  // bumps it). Bounded; deleted tasks are dropped. plan() of an RRULE with
  // COUNT continues its walk instead of restarting from DTSTART.
  struct CachedSchedule {
    std::string kind, expr, timezone;
    std::int64_t created_at_ms = 0;
    Schedule schedule;
  };
  std::mutex schedules_mutex_;
  std::map<std::string, CachedSchedule, std::less<>> schedules_;

  std::mutex listeners_mutex_;
  std::uint64_t next_listener_ = 1;
  std::map<std::uint64_t, std::function<void(const Change&)>> listeners_;
};

}  // namespace ordinaut::scheduler
