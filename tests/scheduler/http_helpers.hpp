// Helpers of the scheduler's loopback tests (test_scheduler_server.cpp,
// test_scheduler_cluster.cpp): waiting for a state, and JSON requests that
// fail the test case with the answer's body when the status is not the one
// expected.
#pragma once

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <vector>
#include <functional>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include "../server/common.hpp"

namespace scheduler_test {

/// Polls `condition` every 50 ms until it holds or `limit` passes; the last
/// answer of `condition`.
inline bool eventually(const std::function<bool()>& condition, std::chrono::seconds limit = std::chrono::seconds(90)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return condition();
}

inline ordinaut::Json get_json(int port, const std::string& path) {
  auto res = server_test::client(port)->Get(path);
  REQUIRE(res);
  REQUIRE_MESSAGE(res->status == 200, path << ": " << res->body);
  return server_test::parse_json(res->body);
}

inline std::string post(int port, const std::string& path, const std::string& body, int expect) {
  auto res = server_test::client(port)->Post(path, body, "application/json");
  REQUIRE(res);
  REQUIRE_MESSAGE(res->status == expect, path << ": " << res->body);
  return res->body;
}

/// The lines schedtest's tools appended to their record file
/// (ORDINAUT_SCHEDTEST_RECORD): key → the pids that recorded it, in order.
inline std::map<std::string, std::vector<std::string>> recorded_calls(const std::filesystem::path& file) {
  std::map<std::string, std::vector<std::string>> out;
  std::ifstream in(file);
  for (std::string key, pid; in >> key >> pid;) out[key].push_back(pid);
  return out;
}

}  // namespace scheduler_test
