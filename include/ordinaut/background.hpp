// Background tasks: supervised long-running work of an extension.
//
// With BACKGROUND_TASKS an extension receives a BackgroundTasks handle scoped
// to its own tasks. A task is a function given a std::stop_token; it should
// return soon after stop is requested. A task that throws is restarted with
// exponential backoff and jitter, up to TaskOptions limits.
//
// Thread safety: the handle is safe for concurrent use.
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

enum class TaskState { running, backing_off, failed, stopped };
const char* to_string(TaskState state) noexcept;

using TaskFunction = std::function<void(std::stop_token)>;

struct TaskOptions {
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{30'000};
  /// Restarts allowed before the task is marked failed; negative = unlimited.
  int max_restarts = -1;
};

struct TaskStatus {
  std::string name;
  TaskState state = TaskState::stopped;
  std::uint64_t restarts = 0;
  std::string last_error;
  std::int64_t last_success_ms = 0;  ///< epoch ms of the last clean run, 0 if none
  std::chrono::milliseconds interval{0};  ///< periodic tasks only
};

/// One extension's view of the supervisor.
class BackgroundTasks {
 public:
  virtual ~BackgroundTasks() = default;
  /// Starts a long-running task. Fails with "duplicate_task" or "task_limit".
  virtual Result<void> start(std::string name, TaskFunction function, TaskOptions options = {}) = 0;
  /// Runs `function` every `interval`; a throw counts as a failure and backs off.
  virtual Result<void> start_periodic(std::string name, std::chrono::milliseconds interval,
                                      TaskFunction function, TaskOptions options = {}) = 0;
  /// Requests stop and waits up to the host's stop timeout. "unknown_task" if absent.
  virtual Result<void> stop(std::string_view name) = 0;
  virtual std::vector<TaskStatus> list() const = 0;
};

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
