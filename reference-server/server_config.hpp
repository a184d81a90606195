// Command line of ordinaut-server.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace ordinaut_server {

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::vector<std::string> ext_paths;
  std::optional<std::string> builtin_dir;
  bool require_scopes = false;
  std::string auth_file;  // --auth, else ORDINAUT_AUTH_FILE (read by ServerAuth)
  bool insecure_no_auth = false;
  std::vector<std::string> allowed_hosts;
  std::vector<std::string> allowed_origins;
  bool log_json = true;
  bool log_requests = true;
  int threads = 0;  // 0: max(16, 4 x cores); handler threads, not one per connection
  std::size_t max_body = 1 << 20;
  int shutdown_timeout_s = 10;
  int read_timeout_s = 30;
  int write_timeout_s = 30;
  int keep_alive_timeout_s = 30;
  std::chrono::milliseconds header_timeout{10000};  // a whole request head
  std::chrono::milliseconds body_timeout{60000};    // a whole request body
  std::chrono::milliseconds stream_keepalive{15000};
  std::chrono::milliseconds lifecycle_timeout{5000};  // HostOptions::lifecycle_timeout
  std::string redis_url;  // --redis-url, else REDIS_URL; empty: the in-memory event bus
  // The scheduler extension's store; main() hands both to it through the
  // environment (ORDINAUT_DATA_DIR, ORDINAUT_SCHEDULER_STORE). Empty: unset.
  std::string data_dir;         // --data-dir
  std::string scheduler_store;  // --scheduler-store sqlite:PATH | postgresql://...
};

/// Parses argv. Prints usage and exits 0 for --help/--version; prints a
/// message naming the bad flag and exits 2 for anything invalid.
ServerConfig parse_command_line(int argc, char** argv);

/// Worker threads to use for `config` (resolves the automatic default).
int worker_threads(const ServerConfig& config);

/// The built-in extensions folder: the one next to the binary in the build
/// tree, or the installed one, whichever exists.
std::filesystem::path default_builtin_dir();

}  // namespace ordinaut_server
