// Polling helper for asynchronous delivery in the event tests.
#pragma once

#include <chrono>
#include <thread>

namespace ordinaut_test {

/// Polls `done` every millisecond until it is true or `timeout` passed;
/// returns its last value.
template <typename Predicate>
bool wait_until(Predicate done, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace ordinaut_test
