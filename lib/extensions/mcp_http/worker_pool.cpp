#include "worker_pool.hpp"

#include <thread>

namespace ordinaut::mcp_http {

WorkerPool::WorkerPool(std::size_t max_threads, std::chrono::milliseconds idle)
    : state_(std::make_shared<State>()), max_threads_(max_threads == 0 ? 1 : max_threads), idle_(idle) {}

WorkerPool::~WorkerPool() { stop(std::chrono::milliseconds(0)); }

bool WorkerPool::submit(std::function<void()> job) {
  std::unique_lock lock(state_->mutex);
  if (state_->stopping) return false;
  state_->jobs.push_back(std::move(job));
  // Start a thread only when the waiting ones cannot take every queued job.
  const bool spawn = state_->jobs.size() > state_->idle && state_->threads < max_threads_;
  if (spawn) ++state_->threads;
  lock.unlock();
  if (spawn) {
    std::thread([state = state_, idle = idle_] { run(state, idle); }).detach();
  } else {
    state_->work.notify_one();
  }
  return true;
}

void WorkerPool::run(const std::shared_ptr<State>& state, std::chrono::milliseconds idle) {
  std::unique_lock lock(state->mutex);
  while (true) {
    if (!state->jobs.empty()) {
      auto job = std::move(state->jobs.front());
      state->jobs.pop_front();
      lock.unlock();
      try {
        job();
      } catch (...) {
        // Jobs report their own failures; a stray exception must not end the process.
      }
      job = nullptr;  // destroy captures outside the lock
      lock.lock();
      continue;
    }
    if (state->stopping) break;
    ++state->idle;
    const bool woken = state->work.wait_for(lock, idle, [&] { return !state->jobs.empty() || state->stopping; });
    --state->idle;
    if (!woken) break;  // idle too long
  }
  --state->threads;
  state->gone.notify_all();
}

void WorkerPool::stop(std::chrono::milliseconds timeout) {
  std::unique_lock lock(state_->mutex);
  state_->stopping = true;
  state_->work.notify_all();
  state_->gone.wait_for(lock, timeout, [&] { return state_->threads == 0; });
}

std::size_t WorkerPool::threads() const {
  std::lock_guard lock(state_->mutex);
  return state_->threads;
}

}  // namespace ordinaut::mcp_http
