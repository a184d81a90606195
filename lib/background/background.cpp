// The background-task supervisor: one thread per task, restarts with
// exponential backoff and jitter, bounded stop; and run_bounded() for the
// lifecycle callbacks.
#include "background/background_supervisor.hpp"

#include <algorithm>
#include <condition_variable>
#include <random>

#include <fmt/format.h>

#include "core/strings.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

const char* to_string(TaskState state) noexcept {
  switch (state) {
    case TaskState::running: return "running";
    case TaskState::backing_off: return "backing_off";
    case TaskState::failed: return "failed";
    case TaskState::stopped: return "stopped";
  }
  return "unknown";
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut

namespace ordinaut::detail {

namespace {

using Clock = std::chrono::steady_clock;

bool valid_task_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
  });
}

// The pause before restart number `streak` + 1 of a row.
std::chrono::milliseconds backoff_delay(const TaskOptions& o, int streak, std::minstd_rand& rng) {
  double pause = static_cast<double>(o.initial_backoff.count());
  const double cap = static_cast<double>(o.max_backoff.count());
  for (int i = 0; i < streak && pause < cap; ++i) pause *= 2;
  pause = std::min(pause, cap);
  std::uniform_real_distribution<double> factor(1.0 - o.jitter, 1.0);
  return std::chrono::milliseconds(static_cast<std::int64_t>(pause * factor(rng)));
}

}  // namespace

// Shared by the supervisor and the task's thread; the thread keeps it alive
// even after being abandoned.
struct TaskSupervisor::Task {
  const std::string name;
  const std::chrono::milliseconds interval;  // 0 = long-running
  const TaskOptions options;
  const TaskFunction function;
  const Logger log;

  mutable std::mutex mutex;  // guards everything below
  std::condition_variable_any wake;  // stop requests, and `finished`
  TaskState state = TaskState::running;
  std::uint64_t restarts = 0;
  std::uint64_t runs = 0;
  std::uint64_t failures = 0;
  int streak = 0;  // failures in a row
  std::string last_error;
  std::int64_t last_error_ms = 0;
  std::int64_t last_success_ms = 0;
  std::int64_t next_run_ms = 0;
  bool finished = false;   // the thread left the function for good
  bool abandoned = false;
  std::thread::id thread_id;

  Task(std::string n, std::chrono::milliseconds i, TaskOptions o, TaskFunction f, Logger l)
      : name(std::move(n)), interval(i), options(o), function(std::move(f)), log(std::move(l)) {}

  TaskStatus status() const {
    std::lock_guard lock(mutex);
    TaskStatus s;
    s.name = name;
    s.state = state;
    s.restarts = restarts;
    s.runs = runs;
    s.failures = failures;
    s.last_error = last_error;
    s.last_error_ms = last_error_ms;
    s.last_success_ms = last_success_ms;
    s.next_run_ms = next_run_ms;
    s.interval = interval;
    s.abandoned = abandoned;
    return s;
  }

  // The thread's body: run, and on a throw back off and run again, until
  // stopped, ended or failed.
  void supervise(std::stop_token stop) {
    thread_local std::minstd_rand rng(std::random_device{}());
    const bool periodic = interval.count() > 0;
    const auto fields = fmt::format(R"({{"task":"{}"}})", json::escape(name));
    // The first run happens even when stop was requested before the thread
    // got going: every started task sees its function entered once.
    for (bool first = true; first || !stop.stop_requested(); first = false) {
      {
        std::lock_guard lock(mutex);
        state = TaskState::running;
        next_run_ms = 0;
        ++runs;
      }
      const auto began = Clock::now();
      std::string error;
      bool threw = false;
      try {
        function(stop);
      } catch (const std::exception& e) {
        threw = true;
        error = e.what();
      } catch (...) {
        threw = true;
        error = "a non-standard exception";
      }
      const auto ran = Clock::now() - began;
      std::unique_lock lock(mutex);
      if (!threw) {
        last_success_ms = now_ms();
        streak = 0;
        if (!periodic || stop.stop_requested()) break;  // a long-running task that returned has ended
        next_run_ms = now_ms() + interval.count();
        wake.wait_for(lock, stop, interval, [] { return false; });
        continue;
      }
      ++failures;
      last_error = error;
      last_error_ms = now_ms();
      if (stop.stop_requested()) break;  // a throw while stopping is no reason to restart
      if (!periodic && ran >= options.max_backoff) streak = 0;  // it had been healthy for a while
      if (options.max_restarts >= 0 && streak >= options.max_restarts) {
        state = TaskState::failed;
        log.error("task_failed",
                  fmt::format("task '{}' threw: {}; {} restarts in a row allowed, giving up", name, error,
                              options.max_restarts),
                  fields);
        break;
      }
      const auto pause = backoff_delay(options, streak, rng);
      ++streak;
      state = TaskState::backing_off;
      next_run_ms = now_ms() + pause.count();
      log.warn("task_backing_off", fmt::format("task '{}' threw: {}; restart {} in {} ms", name, error, streak,
                                               pause.count()),
               fields);
      wake.wait_for(lock, stop, pause, [] { return false; });
      if (!stop.stop_requested()) ++restarts;
    }
    std::lock_guard lock(mutex);
    if (state != TaskState::failed) state = TaskState::stopped;
    next_run_ms = 0;
    finished = true;
    wake.notify_all();
  }
};

TaskSupervisor::TaskSupervisor(std::string extension_id, Logger logger, SupervisorLimits limits)
    : extension_id_(std::move(extension_id)), logger_(std::move(logger)), limits_(limits) {}

TaskSupervisor::~TaskSupervisor() { (void)stop_all(); }

Result<void> TaskSupervisor::start(std::string name, TaskFunction function, TaskOptions options) {
  return launch(std::move(name), std::chrono::milliseconds(0), std::move(function), options);
}

Result<void> TaskSupervisor::start_periodic(std::string name, std::chrono::milliseconds interval,
                                            TaskFunction function, TaskOptions options) {
  if (interval.count() <= 0) {
    return make_error("invalid_task",
                      fmt::format("periodic task '{}': interval must be positive, got {} ms", name, interval.count()));
  }
  return launch(std::move(name), interval, std::move(function), options);
}

Result<void> TaskSupervisor::launch(std::string name, std::chrono::milliseconds interval, TaskFunction function,
                                    TaskOptions options) {
  if (!valid_task_name(name)) {
    return make_error("invalid_task", fmt::format("task name \"{}\" is invalid: use 1 to 64 of [A-Za-z0-9_.-]",
                                                  json::escape(name.substr(0, 80))));
  }
  if (!function) return make_error("invalid_task", fmt::format("task '{}' has no function", name));
  if (options.initial_backoff.count() <= 0 || options.max_backoff < options.initial_backoff) {
    return make_error("invalid_task",
                      fmt::format("task '{}': backoff needs 0 < initial_backoff ({} ms) <= max_backoff ({} ms)", name,
                                  options.initial_backoff.count(), options.max_backoff.count()));
  }
  if (!(options.jitter >= 0.0 && options.jitter <= 1.0)) {
    return make_error("invalid_task", fmt::format("task '{}': jitter must be within [0, 1], got {}", name,
                                                  options.jitter));
  }
  std::lock_guard lock(mutex_);
  if (closed_) {
    return make_error("tasks_closed", fmt::format("extension '{}' is shutting down; task '{}' was not started",
                                                  extension_id_, name));
  }
  std::size_t live = 0;
  auto same = slots_.end();
  for (auto it = slots_.begin(); it != slots_.end(); ++it) {
    std::lock_guard task_lock(it->task->mutex);
    if (!it->task->finished) ++live;
    if (it->task->name == name) {
      if (!it->task->finished) {
        return make_error("duplicate_task", fmt::format("extension '{}' already runs a task '{}'", extension_id_, name));
      }
      same = it;
    }
  }
  if (live >= limits_.max_tasks) {
    logger_.warn("task_limit", fmt::format("task '{}' refused: {} tasks already run (limit {})", name, live,
                                           limits_.max_tasks));
    return make_error("task_limit", fmt::format("extension '{}' already runs {} tasks, the limit is {}",
                                                extension_id_, live, limits_.max_tasks));
  }
  // Ended tasks stay listed; make room by dropping the one replaced, or the
  // oldest ended one once the list is as long as the limit.
  if (same == slots_.end() && slots_.size() >= limits_.max_tasks) {
    same = std::find_if(slots_.begin(), slots_.end(), [](const Slot& s) {
      std::lock_guard task_lock(s.task->mutex);
      return s.task->finished;
    });
  }
  if (same != slots_.end()) {
    // Finished: its thread is past the function and exits at once.
    if (same->thread.joinable()) same->thread.join();
    slots_.erase(same);
  }
  auto task = std::make_shared<Task>(name, interval, options, std::move(function), logger_);
  Slot slot;
  slot.task = task;
  try {
    slot.thread = std::jthread([task](std::stop_token stop) {
      {
        std::lock_guard task_lock(task->mutex);
        task->thread_id = std::this_thread::get_id();
      }
      task->supervise(std::move(stop));
    });
  } catch (const std::system_error& e) {
    return make_error("task_limit", fmt::format("cannot start a thread for task '{}': {}", name, e.what()));
  }
  slots_.push_back(std::move(slot));
  logger_.info("task_started",
               interval.count() > 0 ? fmt::format("periodic task '{}' started, every {} ms", name, interval.count())
                                    : fmt::format("task '{}' started", name),
               fmt::format(R"({{"task":"{}","interval_ms":{}}})", json::escape(name), interval.count()));
  return {};
}

bool TaskSupervisor::finish(Task& task, std::jthread& thread, Clock::time_point deadline) {
  std::unique_lock lock(task.mutex);
  const bool own_thread = task.thread_id == std::this_thread::get_id();
  const bool done = own_thread || task.wake.wait_until(lock, deadline, [&] { return task.finished; });
  if (!done) task.abandoned = true;
  lock.unlock();
  if (!thread.joinable()) return done;
  if (done && !own_thread) {
    thread.join();
  } else {
    thread.detach();  // a task stopping itself, or one that does not stop: never wait for it
  }
  return done;
}

Result<void> TaskSupervisor::stop(std::string_view name) {
  std::shared_ptr<Task> task;
  std::jthread thread;
  {
    std::lock_guard lock(mutex_);
    auto it = std::find_if(slots_.begin(), slots_.end(), [&](const Slot& s) { return s.task->name == name; });
    if (it == slots_.end()) {
      return make_error("unknown_task",
                        fmt::format("extension '{}' has no task '{}'", extension_id_, json::escape(name.substr(0, 80))));
    }
    task = it->task;
    it->thread.request_stop();
    thread = std::move(it->thread);  // joined below, outside the lock
  }
  const auto deadline = Clock::now() + limits_.stop_timeout;
  if (!finish(*task, thread, deadline)) {
    logger_.error("task_abandoned",
                  fmt::format("task '{}' did not stop within {} ms; its thread is abandoned", name,
                              limits_.stop_timeout.count()),
                  fmt::format(R"({{"task":"{}"}})", json::escape(name)));
    return {};
  }
  logger_.info("task_stopped", fmt::format("task '{}' stopped", name),
               fmt::format(R"({{"task":"{}"}})", json::escape(name)));
  return {};
}

std::vector<std::string> TaskSupervisor::stop_all() {
  std::vector<std::pair<std::shared_ptr<Task>, std::jthread>> stopping;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    for (auto& slot : slots_) {
      if (!slot.thread.joinable()) continue;
      slot.thread.request_stop();  // every task first, so they stop together
      stopping.emplace_back(slot.task, std::move(slot.thread));
    }
  }
  std::vector<std::string> abandoned;
  const auto deadline = Clock::now() + limits_.stop_timeout;
  for (auto& [task, thread] : stopping) {
    if (!finish(*task, thread, deadline)) abandoned.push_back(task->name);
  }
  if (!abandoned.empty()) {
    std::string names;
    for (const auto& n : abandoned) names += (names.empty() ? "" : ", ") + n;
    logger_.error("task_abandoned",
                  fmt::format("{} task(s) did not stop within {} ms and were abandoned: {}", abandoned.size(),
                              limits_.stop_timeout.count(), names));
  }
  return abandoned;
}

bool TaskSupervisor::has_abandoned() const {
  std::lock_guard lock(mutex_);
  return std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) {
    std::lock_guard task_lock(s.task->mutex);
    return s.task->abandoned;
  });
}

std::vector<TaskStatus> TaskSupervisor::list() const {
  std::lock_guard lock(mutex_);
  std::vector<TaskStatus> out;
  out.reserve(slots_.size());
  for (const auto& slot : slots_) out.push_back(slot.task->status());
  return out;
}

JsonValue task_status_json(const TaskStatus& s, Json::AllocatorType& a) {
  auto time_or_null = [&](std::int64_t ms) {
    return ms == 0 ? JsonValue(rapidjson::kNullType) : JsonValue(rfc3339(ms).c_str(), a);
  };
  JsonValue v(rapidjson::kObjectType);
  v.AddMember("name", JsonValue(s.name.c_str(), a), a);
  v.AddMember("kind", JsonValue(s.interval.count() > 0 ? "periodic" : "long_running", a), a);
  v.AddMember("state", JsonValue(to_string(s.state), a), a);
  v.AddMember("restarts", s.restarts, a);
  v.AddMember("runs", s.runs, a);
  v.AddMember("failures", s.failures, a);
  v.AddMember("last_error", s.last_error.empty() ? JsonValue(rapidjson::kNullType) : JsonValue(s.last_error.c_str(), a),
              a);
  v.AddMember("last_error_time", time_or_null(s.last_error_ms), a);
  v.AddMember("last_success", time_or_null(s.last_success_ms), a);
  v.AddMember("next_run", time_or_null(s.next_run_ms), a);
  if (s.interval.count() > 0) v.AddMember("interval_ms", static_cast<std::int64_t>(s.interval.count()), a);
  v.AddMember("abandoned", s.abandoned, a);
  return v;
}

BoundedRun run_bounded(std::function<void()> function, std::chrono::milliseconds timeout) {
  struct Shared {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    BoundedRun result;
  };
  auto call = [](const std::function<void()>& f) {
    BoundedRun r;
    try {
      f();
    } catch (const std::exception& e) {
      r.outcome = BoundedRun::Outcome::threw;
      r.error = e.what();
    } catch (...) {
      r.outcome = BoundedRun::Outcome::threw;
      r.error = "a non-standard exception";
    }
    return r;
  };
  if (timeout.count() <= 0) return call(function);
  auto shared = std::make_shared<Shared>();
  std::thread thread;
  try {
    thread = std::thread([shared, call, f = std::move(function)] {
      BoundedRun r = call(f);
      std::lock_guard lock(shared->mutex);
      shared->result = std::move(r);
      shared->done = true;
      shared->done_cv.notify_all();
    });
  } catch (const std::system_error& e) {
    return BoundedRun{BoundedRun::Outcome::threw, fmt::format("cannot start a thread: {}", e.what())};
  }
  std::unique_lock lock(shared->mutex);
  if (!shared->done_cv.wait_for(lock, timeout, [&] { return shared->done; })) {
    lock.unlock();
    thread.detach();
    return BoundedRun{BoundedRun::Outcome::timed_out, {}};
  }
  BoundedRun result = std::move(shared->result);
  lock.unlock();
  thread.join();
  return result;
}

}  // namespace ordinaut::detail
