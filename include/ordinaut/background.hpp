// Background tasks: supervised long-running work of an extension.
//
// With BACKGROUND_TASKS an extension receives (SetupContext::background()) a
// BackgroundTasks handle scoped to its own tasks. Each task runs on its own
// thread and is given a std::stop_token; it must return soon after stop is
// requested (poll the token, or wait on a condition_variable_any with it).
// A started task's function is always entered at least once, even when stop
// was requested before its thread ran (it then finds the token set).
//
// Two kinds:
//   start()          a long-running task: runs once; returning normally ends it
//                    (state `stopped`), throwing restarts it.
//   start_periodic() runs the function, waits `interval` after it returns, runs
//                    it again; a run that throws is retried after a backoff
//                    instead of the interval.
// A failure is followed by a pause of initial_backoff × 2^k (k = failures in a
// row, capped at max_backoff), shortened by a random jitter of up to `jitter`
// of itself; the state is `backing_off` meanwhile. After `max_restarts`
// failures in a row the task is `failed` and not run again. A clean periodic
// run, or a long-running run that lasted at least max_backoff, ends the row.
//
// The host stops every task when it shuts the extension down (disable, reload,
// host shutdown): it requests stop, waits up to HostOptions::lifecycle_timeout
// and then abandons the thread (it is detached and reported `abandoned`; the
// extension's objects are kept alive for it).
//
// Thread safety: the handle is safe for concurrent use, also from inside the
// tasks themselves (a task may stop itself).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "ordinaut/result.hpp"
#include "ordinaut/version.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

/// Where a supervised task is: running, waiting to restart after a throw,
/// given up (max_restarts reached), or stopped.
enum class TaskState { running, backing_off, failed, stopped };
/// "running", "backing_off", "failed", "stopped".
const char* to_string(TaskState state) noexcept;

/// The work of a task; return soon after the stop token is requested.
using TaskFunction = std::function<void(std::stop_token)>;

/// How a supervised task is restarted after it throws.
struct TaskOptions {
  /// Pause after the first failure in a row; doubles with each further one.
  std::chrono::milliseconds initial_backoff{200};
  /// Cap of the pause.
  std::chrono::milliseconds max_backoff{30'000};
  /// Each pause is drawn uniformly from [pause × (1 - jitter), pause], so that
  /// tasks failing together do not retry in lock-step. 0 ≤ jitter ≤ 0.5 keeps
  /// successive pauses growing until the cap.
  double jitter = 0.2;
  /// Restarts allowed in a row before the task is marked failed; negative =
  /// unlimited, 0 = never restart.
  int max_restarts = -1;
};

/// A task as BackgroundTasks::list() reports it (and the extension's health).
struct TaskStatus {
  std::string name;                     ///< as given to start()
  TaskState state = TaskState::stopped;  ///< where it is now
  std::uint64_t restarts = 0;         ///< restarts since start (all rows)
  std::uint64_t runs = 0;             ///< times the function was entered
  std::uint64_t failures = 0;         ///< runs that threw
  std::string last_error;             ///< what() of the last throw, "" if none
  std::int64_t last_error_ms = 0;     ///< epoch ms of the last throw, 0 if none
  std::int64_t last_success_ms = 0;   ///< epoch ms of the last clean run, 0 if none
  std::int64_t next_run_ms = 0;       ///< epoch ms of the next run (periodic or backing off), 0 if none
  std::chrono::milliseconds interval{0};  ///< periodic tasks only
  bool abandoned = false;  ///< did not stop within the host's timeout: its thread was detached and may still run
};

/// One extension's view of the supervisor.
class BackgroundTasks {
 public:
  virtual ~BackgroundTasks() = default;
  /// Starts a long-running task. Names use [A-Za-z0-9_.-], 1..64 characters;
  /// the name of a task that has ended (stopped or failed) may be reused.
  /// Errors: "invalid_task" (name, function or options), "duplicate_task" (a
  /// live task has the name), "task_limit" (the extension runs as many tasks
  /// as HostOptions::max_tasks_per_extension allows), "tasks_closed" (the
  /// extension is shutting down).
  virtual Result<void> start(std::string name, TaskFunction function, TaskOptions options = {}) = 0;
  /// Runs `function` now and then `interval` (> 0) after each run returns;
  /// a throw counts as a failure and backs off. Errors as start().
  virtual Result<void> start_periodic(std::string name, std::chrono::milliseconds interval,
                                      TaskFunction function, TaskOptions options = {}) = 0;
  /// Requests stop and waits up to the host's lifecycle timeout (not when a
  /// task stops itself); a task still running then is abandoned. The task
  /// stays listed as `stopped`. "unknown_task" when no task has that name.
  virtual Result<void> stop(std::string_view name) = 0;
  /// Every task of this extension, in start order, live or ended.
  virtual std::vector<TaskStatus> list() const = 0;
};

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
