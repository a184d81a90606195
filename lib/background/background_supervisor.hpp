// The background-task supervisor and the bounded lifecycle calls (internal).
//
// TaskSupervisor implements BackgroundTasks for one runtime of one extension:
// the host makes one per load of an extension granted BACKGROUND_TASKS and
// calls stop_all() when it shuts that runtime down. run_bounded() runs an
// extension callback (on_startup, on_shutdown) on its own thread and stops
// waiting for it after a timeout.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ordinaut/background.hpp"
#include "ordinaut/json.hpp"
#include "ordinaut/logging.hpp"

namespace ordinaut::detail {

struct SupervisorLimits {
  std::size_t max_tasks = 32;                   ///< live tasks per extension
  std::chrono::milliseconds stop_timeout{5000};  ///< wait for a stopping task
};

class TaskSupervisor final : public BackgroundTasks {
 public:
  TaskSupervisor(std::string extension_id, Logger logger, SupervisorLimits limits);
  ~TaskSupervisor() override;  // stop_all()
  TaskSupervisor(const TaskSupervisor&) = delete;
  TaskSupervisor& operator=(const TaskSupervisor&) = delete;

  Result<void> start(std::string name, TaskFunction function, TaskOptions options) override;
  Result<void> start_periodic(std::string name, std::chrono::milliseconds interval, TaskFunction function,
                              TaskOptions options) override;
  Result<void> stop(std::string_view name) override;
  std::vector<TaskStatus> list() const override;

  /// Refuses new tasks, requests stop of every task, waits for all of them
  /// together up to the stop timeout and abandons (detaches) the rest.
  /// Returns the names of the tasks abandoned. Idempotent.
  std::vector<std::string> stop_all();
  /// True once any task was abandoned: its thread may still run extension code.
  bool has_abandoned() const;

 private:
  struct Task;
  struct Slot {
    std::shared_ptr<Task> task;
    std::jthread thread;  // joinable until joined or detached
  };

  Result<void> launch(std::string name, std::chrono::milliseconds interval, TaskFunction function,
                      TaskOptions options);
  // Waits until `task` finished or `deadline`; joins or detaches `thread`.
  // Returns false when the thread was abandoned.
  bool finish(Task& task, std::jthread& thread, std::chrono::steady_clock::time_point deadline);

  const std::string extension_id_;
  const Logger logger_;
  const SupervisorLimits limits_;
  mutable std::mutex mutex_;  // guards the fields below
  std::vector<Slot> slots_;   // start order
  bool closed_ = false;
};

/// JSON of one task as shown in /ext/status and /ext/{id}/health:
/// {"name","kind","state","restarts","runs","failures","last_error",
///  "last_error_time","last_success","next_run","interval_ms","abandoned"}.
JsonValue task_status_json(const TaskStatus& status, Json::AllocatorType& allocator);

struct BoundedRun {
  enum class Outcome { returned, threw, timed_out };
  Outcome outcome = Outcome::returned;
  std::string error;  ///< what() when it threw
};

/// Runs `function` on a new thread and waits up to `timeout` for it. On time-
/// out the thread is detached and keeps running; whatever `function` captures
/// must then stay alive. A timeout <= 0 waits without limit.
BoundedRun run_bounded(std::function<void()> function, std::chrono::milliseconds timeout);

}  // namespace ordinaut::detail
