// Task execution statistics of the observability extension, counted from the
// scheduler's events (docs/observability.md, "Task execution statistics").
//
// Topics and payloads (what lib/extensions/scheduler publishes, source
// "scheduler"; any extension may publish the same shapes):
//   task.run.started                         the run: {"id": run id, "task_id", "status", "started_at", ...}
//   task.run.succeeded, .failed, .cancelled  the run, with "started_at" and "finished_at" (RFC 3339 or null)
//   task.run.skipped                         the run (never started: no times)
//   task.created, task.updated, task.deleted the task: {"id": task id, ...}
// Other task.* topics (task.run.queued, the retired task.started /
// task.succeeded / task.failed, ...) are counted as ignored; a payload that
// breaks its shape is counted as invalid and nothing else.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <ordinaut/events.hpp>
#include <ordinaut/metrics.hpp>

namespace ordinaut::observability {

/// Milliseconds since the Unix epoch of an RFC 3339 date-time such as
/// "2026-12-24T18:00:00.250Z" or "2026-12-24T19:00:00+01:00" (fractions of
/// any length, truncated to milliseconds); nullopt when `text` is not one.
std::optional<std::int64_t> parse_rfc3339_ms(std::string_view text);

/// Counts task.* events into families of `metrics` (which must outlive it):
///   ordinaut_task_runs_started_total{source}
///   ordinaut_task_runs_finished_total{source,status}   succeeded, failed, cancelled, skipped
///   ordinaut_task_run_duration_seconds{source,status}  finished_at - started_at of succeeded, failed, cancelled
///   ordinaut_task_runs_running{source}                 runs seen starting and not yet ending
///   ordinaut_task_changes_total{source,change}         created, updated, deleted
///   ordinaut_task_events_total{kind}                   counted, ignored, invalid
/// Series of source "scheduler" exist from the start (at 0). `source` is the
/// publishing extension id stamped by the bus, so the sources are bounded by
/// the extensions a host knows; run and task ids are never labels.
/// Thread safety: record() may be called from several threads at once.
class TaskStats {
 public:
  /// Runs remembered as running per source; beyond it new runs are not
  /// tracked by the running gauge (the counters still count them).
  static constexpr std::size_t kMaxRunningTracked = 10'000;

  explicit TaskStats(MetricsRegistry& metrics);
  TaskStats(const TaskStats&) = delete;
  TaskStats& operator=(const TaskStats&) = delete;

  /// Counts one event. Never throws: a bad payload (or a series limit) is
  /// counted as kind="invalid".
  void record(const Event& event) noexcept;

 private:
  struct Series {
    Counter* started = nullptr;
    std::map<std::string, Counter*, std::less<>> finished;       // by status
    std::map<std::string, Histogram*, std::less<>> duration;     // by status (not skipped)
    std::map<std::string, Counter*, std::less<>> changes;        // by change
    Gauge* running = nullptr;
    std::set<std::string, std::less<>> running_ids;
  };

  Series& series(const std::string& source);  // REQUIRES: mutex_ held; may throw at a series limit
  bool record_run(std::string_view status, const Event& event);
  bool record_change(std::string_view change, const Event& event);

  MetricsRegistry& metrics_;
  Counter& counted_;
  Counter& ignored_;
  Counter& invalid_;
  std::mutex mutex_;
  std::map<std::string, Series, std::less<>> by_source_;
};

}  // namespace ordinaut::observability
