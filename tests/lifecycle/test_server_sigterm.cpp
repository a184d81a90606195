// The real ordinaut-server on SIGTERM: every loaded extension is taken down in
// reverse load order, on_shutdown() before its background tasks stop, and the
// process exits 0. Seen through the file the probe extensions append to.
//
// usage: lifecycle_server_sigterm <path of ordinaut-server>
#define DOCTEST_CONFIG_IMPLEMENT  // main() below takes the server path first
#include <doctest/doctest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include "support.hpp"

#ifndef ORDINAUT_LIFECYCLE_EXT_DIR
#error "ORDINAUT_LIFECYCLE_EXT_DIR must name build/tests/lifecycle/extensions"
#endif

extern char** environ;

namespace {

using namespace std::chrono_literals;

std::string g_server;  // set by main from argv[1]

std::vector<std::string> read_lines(const std::string& file) {
  std::vector<std::string> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool has_line(const std::string& file, const std::string& line) {
  auto lines = read_lines(file);
  return std::find(lines.begin(), lines.end(), line) != lines.end();
}

// A server child process; killed (SIGKILL) if the test leaves it running.
struct Server {
  pid_t pid = -1;
  FILE* out = nullptr;
  ~Server() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (out != nullptr) std::fclose(out);
  }
};

}  // namespace

TEST_CASE("SIGTERM: on_shutdown, then task stop, extension by extension in reverse load order; exit 0") {
  REQUIRE_MESSAGE(!g_server.empty(), "pass the ordinaut-server binary as the first argument");
  test_support::TempDir dir;
  const std::string journal = (dir.path() / "lifecycle.log").string();
  std::filesystem::create_directories(dir.path() / "no-builtins");

  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[1]);
  std::vector<std::string> args = {g_server,
                                   "--port",
                                   "0",
                                   "--ext-path",
                                   ORDINAUT_LIFECYCLE_EXT_DIR,
                                   "--builtin-dir",
                                   (dir.path() / "no-builtins").string(),
                                   "--no-request-log",
                                   "--shutdown-timeout",
                                   "5"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings = {"ORDINAUT_LIFECYCLE_LOG=" + journal};
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view v(*e);
    if (!v.starts_with("ORDINAUT_")) env_strings.emplace_back(v);  // no stray configuration
  }
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  Server server;
  REQUIRE(::posix_spawn(&server.pid, g_server.c_str(), &actions, nullptr, argv.data(), envp.data()) == 0);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  server.out = ::fdopen(pipe_fds[0], "r");
  REQUIRE(server.out != nullptr);

  char line[512] = {0};
  REQUIRE(std::fgets(line, sizeof line, server.out) != nullptr);
  std::string banner = line;
  auto colon = banner.rfind(':');
  REQUIRE_MESSAGE(banner.find("listening on http://127.0.0.1:") != std::string::npos, banner);
  const int port = std::stoi(banner.substr(colon + 1));

  // Both probes are eager; their workers run once the server listens.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline &&
         !(has_line(journal, "probe_a task_started") && has_line(journal, "probe_b task_started"))) {
    std::this_thread::sleep_for(5ms);
  }
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(5, 0);
  auto ping = client.Get("/ext/probe_b/ping");
  REQUIRE(ping);
  CHECK(ping->status == 200);
  CHECK(ping->body == "pong");
  auto status = client.Get("/ext/status");
  REQUIRE(status);
  auto doc = test_support::parse_json(status->body);
  REQUIRE_MESSAGE(doc["extensions"].HasMember("probe_a"), status->body);
  const auto& probe_a = doc["extensions"]["probe_a"];
  CHECK(test_support::str(probe_a["state"]) == "active");
  REQUIRE(probe_a["tasks"].Size() == 1);
  CHECK(test_support::str(probe_a["tasks"][0]["state"]) == "running");

  REQUIRE(::kill(server.pid, SIGTERM) == 0);
  int wstatus = 0;
  pid_t done = 0;
  const auto exit_deadline = std::chrono::steady_clock::now() + 20s;
  while ((done = ::waitpid(server.pid, &wstatus, WNOHANG)) == 0 && std::chrono::steady_clock::now() < exit_deadline) {
    std::this_thread::sleep_for(10ms);
  }
  REQUIRE_MESSAGE(done == server.pid, "the server did not exit within 20 s of SIGTERM");
  server.pid = -1;
  REQUIRE(WIFEXITED(wstatus));
  CHECK(WEXITSTATUS(wstatus) == 0);

  const std::vector<std::string> expected = {
      "probe_a setup",       "probe_a task_started", "probe_a on_startup",  // load order: a, then b
      "probe_b setup",       "probe_b task_started", "probe_b on_startup",
      "probe_b on_shutdown", "probe_b task_stopped",                        // reverse order on SIGTERM
      "probe_a on_shutdown", "probe_a task_stopped",
  };
  auto lines = read_lines(journal);
  // A task starts on its own thread: within one extension it may log before or
  // after on_startup(); everything else is strictly ordered.
  auto position = [&](const std::string& l) {
    return std::find(lines.begin(), lines.end(), l) - lines.begin();
  };
  INFO("journal:\n" << [&] {
    std::string all;
    for (auto& l : lines) all += l + "\n";
    return all;
  }());
  REQUIRE(lines.size() == expected.size());
  for (const auto& l : expected) CHECK(position(l) < static_cast<long>(lines.size()));
  CHECK(position("probe_a setup") < position("probe_a on_startup"));
  CHECK(position("probe_a on_startup") < position("probe_b setup"));
  CHECK(position("probe_a task_started") < position("probe_b on_shutdown"));
  CHECK(position("probe_b setup") < position("probe_b on_startup"));
  CHECK(position("probe_b on_startup") < position("probe_b on_shutdown"));
  CHECK(position("probe_b task_started") < position("probe_b on_shutdown"));
  CHECK(position("probe_b on_shutdown") < position("probe_b task_stopped"));
  CHECK(position("probe_b task_stopped") < position("probe_a on_shutdown"));
  CHECK(position("probe_a on_shutdown") < position("probe_a task_stopped"));
  CHECK(lines.back() == "probe_a task_stopped");
}

int main(int argc, char** argv) {
  if (argc > 1 && argv[1][0] != '-') g_server = argv[1];
  doctest::Context context;
  context.applyCommandLine(argc, argv);
  return context.run();
}
