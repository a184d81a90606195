// A small elastic thread pool for tool calls.
//
// Why: a tools/call reply is JSON unless the tool streams (logs, progress, a
// question to the client). The HTTP handler can only pick the content type
// before it returns, so the tool runs here while the handler waits for either
// the result (→ JSON) or the first streamed message (→ SSE, the handler's
// thread then writes the stream while the tool goes on).
//
// Threads start on demand up to `max_threads` and leave after `idle` without
// work; jobs wait in FIFO order when all are busy. Threads are detached and
// share the state, so the pool may be destroyed while a job still runs.
// Thread safety: all members are safe to call concurrently.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

namespace ordinaut::mcp_http {

class WorkerPool {
 public:
  WorkerPool(std::size_t max_threads, std::chrono::milliseconds idle);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  /// Queues `job`; false after stop().
  bool submit(std::function<void()> job);
  /// Refuses new jobs, lets queued ones finish and waits up to `timeout` for
  /// the threads to leave.
  void stop(std::chrono::milliseconds timeout);
  std::size_t threads() const;

 private:
  struct State {
    std::mutex mutex;
    std::condition_variable work;
    std::condition_variable gone;
    std::deque<std::function<void()>> jobs;
    std::size_t threads = 0;
    std::size_t idle = 0;
    bool stopping = false;
  };
  static void run(const std::shared_ptr<State>& state, std::chrono::milliseconds idle);

  std::shared_ptr<State> state_;
  std::size_t max_threads_;
  std::chrono::milliseconds idle_;
};

}  // namespace ordinaut::mcp_http
