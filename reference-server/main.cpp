// ordinaut-server: the reference server. Serves an ExtensionHost over
// cpp-httplib, with the built-in extensions and any on ORDINAUT_EXT_PATHS.
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <httplib.h>
#include <fmt/format.h>

#include "ordinaut/host.hpp"
#include "ordinaut/json.hpp"
#include "ordinaut/version.hpp"

namespace {

namespace fs = std::filesystem;

struct Config {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::vector<std::string> ext_paths;
  std::optional<std::string> builtin_dir;
  bool require_scopes = false;
  bool log_json = true;
  bool log_requests = true;
  int threads = 0;  // 0 = automatic
  std::size_t max_body = 1 << 20;
  int shutdown_timeout_s = 10;
};

const char* kUsage = R"(usage: ordinaut-server [options]

Serves the Ordinaut extension host over HTTP: /health, /ext/status,
/ext/{id}/health and /ext/{id}/... for every discovered extension.

options:
  --host ADDR            address to bind (default 127.0.0.1)
  --port N               port (default 8080; 0 picks a free port, printed on stdout)
  --ext-path DIR         extension folder to add to ORDINAUT_EXT_PATHS (repeatable)
  --builtin-dir DIR      folder of built-in extensions (default: found next to the binary)
  --require-scopes       require scope ext:{id}:routes (same as ORDINAUT_REQUIRE_SCOPES=1)
  --log-format json|text structured log format (default json)
  --no-request-log       do not log one line per request
  --threads N            worker threads (default: max(16, 4 x cores))
  --max-body BYTES       largest request body (default 1048576); larger gets 413
  --shutdown-timeout S   seconds in-flight requests get after SIGTERM (default 10)
  --help                 this text
  --version              print the version

environment: ORDINAUT_EXT_PATHS, ORDINAUT_EXT_ENTRY_GRANTS, ORDINAUT_EXT_ENTRY_EAGER,
             ORDINAUT_REQUIRE_SCOPES
)";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "ordinaut-server: %s\n(try --help)\n", message.c_str());
  std::exit(2);
}

long parse_number(const std::string& flag, const std::string& value, long min, long max) {
  char* end = nullptr;
  errno = 0;
  long n = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || errno != 0 || n < min || n > max) {
    usage_error(fmt::format("{} needs a whole number from {} to {}, got \"{}\"", flag, min, max, value));
  }
  return n;
}

Config parse_args(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      auto eq = arg.find('=');
      if (eq != std::string::npos) return arg.substr(eq + 1);
      if (i + 1 >= argc) usage_error(arg + " needs a value");
      return argv[++i];
    };
    std::string name = arg.substr(0, arg.find('='));
    if (name == "--help" || name == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (name == "--version") {
      std::printf("ordinaut-server %s (extension ABI %u)\n", ordinaut::library_version(),
                  ordinaut::library_abi_version());
      std::exit(0);
    } else if (name == "--host") {
      c.host = value();
    } else if (name == "--port") {
      c.port = static_cast<int>(parse_number("--port", value(), 0, 65535));
    } else if (name == "--ext-path") {
      c.ext_paths.push_back(value());
    } else if (name == "--builtin-dir") {
      c.builtin_dir = value();
    } else if (name == "--require-scopes") {
      c.require_scopes = true;
    } else if (name == "--log-format") {
      std::string f = value();
      if (f != "json" && f != "text") usage_error("--log-format is json or text, got \"" + f + "\"");
      c.log_json = f == "json";
    } else if (name == "--no-request-log") {
      c.log_requests = false;
    } else if (name == "--threads") {
      c.threads = static_cast<int>(parse_number("--threads", value(), 1, 4096));
    } else if (name == "--max-body") {
      c.max_body = static_cast<std::size_t>(parse_number("--max-body", value(), 1, 1L << 34));
    } else if (name == "--shutdown-timeout") {
      c.shutdown_timeout_s = static_cast<int>(parse_number("--shutdown-timeout", value(), 0, 3600));
    } else {
      usage_error("unknown option " + arg);
    }
  }
  return c;
}

// The built-in extensions sit at a fixed place relative to the binary, both in
// the build tree and after `meson install` (paths computed by Meson).
fs::path default_builtin_dir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (const char* rel : {ORDINAUT_BUILTIN_REL_BUILD, ORDINAUT_BUILTIN_REL_INSTALL}) {
      fs::path candidate = exe.parent_path() / rel;
      if (fs::is_directory(candidate, ec)) return fs::weakly_canonical(candidate, ec);
    }
  }
  return ORDINAUT_BUILTIN_INSTALL_DIR;
}

std::atomic<bool> g_stopping{false};

class HttplibSink final : public ordinaut::StreamSink {
 public:
  explicit HttplibSink(httplib::DataSink& sink) : sink_(sink) {}
  bool write(std::string_view data) override {
    if (!is_open()) return false;
    if (!sink_.write(data.data(), data.size())) {
      closed_ = true;
      return false;
    }
    return true;
  }
  bool is_open() const override { return !closed_ && !g_stopping.load() && sink_.is_writable(); }

 private:
  httplib::DataSink& sink_;
  bool closed_ = false;
};

ordinaut::Request to_request(const httplib::Request& in) {
  ordinaut::Request r;
  r.method = in.method;
  const std::string& target = in.target.empty() ? in.path : in.target;
  auto q = target.find('?');
  r.path = target.substr(0, q);
  if (q != std::string::npos) r.query_string = target.substr(q + 1);
  for (const auto& [k, v] : in.headers) r.headers.add(k, v);
  r.body = in.body;
  r.remote_addr = in.remote_addr;
  return r;
}

void write_response(ordinaut::Response&& out, httplib::Response& res) {
  res.status = out.status;
  std::string content_type;
  for (const auto& [k, v] : out.headers.list()) {
    if (strcasecmp(k.c_str(), "Content-Type") == 0) {  // set with the content below
      content_type = v;
    } else {
      res.set_header(k, v);
    }
  }
  if (out.stream) {
    auto producer = std::make_shared<ordinaut::StreamProducer>(std::move(out.stream));
    res.set_chunked_content_provider(content_type.empty() ? "text/event-stream" : content_type,
                                     [producer](std::size_t, httplib::DataSink& sink) {
                                       HttplibSink adapter(sink);
                                       (*producer)(adapter);
                                       sink.done();
                                       return true;
                                     });
  } else if (!out.body.empty() || !content_type.empty()) {
    res.set_content(std::move(out.body), content_type.empty() ? "application/octet-stream" : content_type);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Config config = parse_args(argc, argv);

  // Signals are taken by one thread with sigwait; block them everywhere else.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  ordinaut::HostOptions options;
  options.log_sink = ordinaut::stderr_log_sink(config.log_json);
  options.builtin_dirs.push_back(config.builtin_dir ? fs::path(*config.builtin_dir) : default_builtin_dir());
  for (const auto& p : config.ext_paths) options.extension_paths.emplace_back(p);
  if (config.require_scopes) options.require_scopes = true;
  options.max_body_bytes = config.max_body;

  auto host = std::make_unique<ordinaut::ExtensionHost>(std::move(options));
  if (auto started = host->start(); !started) {
    std::fprintf(stderr, "ordinaut-server: %s\n", started.error().message.c_str());
    return 2;
  }
  const ordinaut::Logger& log = host->logger();
  ordinaut::Logger request_log = host->logger();

  httplib::Server server;
  const int threads = config.threads > 0 ? config.threads
                                         : static_cast<int>(std::max(16u, 4 * std::thread::hardware_concurrency()));
  server.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(100000);
  server.set_keep_alive_timeout(30);
  server.set_read_timeout(30, 0);
  server.set_write_timeout(30, 0);
  server.set_payload_max_length(config.max_body);
  int listen_fd = -1;
  server.set_socket_options([&listen_fd](int fd) {
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_fd = fd;
  });

  server.set_error_handler([&config](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413) {
      auto r = ordinaut::Response::error(
          413, "payload_too_large", fmt::format("request body exceeds the limit of {} bytes", config.max_body),
          fmt::format(R"({{"limit":{}}})", config.max_body));
      res.set_content(r.body, "application/json");
    } else if (res.status >= 400) {
      auto r = ordinaut::Response::error(res.status, res.status == 400 ? "bad_request" : "error",
                                         ordinaut::status_reason(res.status));
      res.set_content(r.body, "application/json");
    }
  });

  const auto start_time = std::chrono::system_clock::now();
  server.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    auto uptime = std::chrono::duration<double>(std::chrono::system_clock::now() - start_time).count();
    res.set_content(fmt::format(R"({{"status":"ok","version":"{}","uptime_seconds":{:.3f}}})",
                                ordinaut::library_version(), uptime),
                    "application/json");
  });

  auto handler = [&](const httplib::Request& in, httplib::Response& res) {
    const auto started = std::chrono::steady_clock::now();
    ordinaut::Request request = to_request(in);
    ordinaut::Response response = host->handle(request);
    const int status = response.status;
    const bool streamed = static_cast<bool>(response.stream);
    write_response(std::move(response), res);
    if (config.log_requests) {
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
      request_log.log(ordinaut::LogLevel::info, "request",
                      fmt::format("{} {} {}", request.method, request.route_template.empty() ? request.path
                                                                                            : request.route_template,
                                  status),
                      fmt::format(R"({{"method":"{}","route":"{}","status":{},"duration_ms":{:.3f},"extension":"{}",)"
                                  R"("streamed":{}}})",
                                  request.method, ordinaut::json::escape(request.route_template), status, ms,
                                  request.extension_id, streamed));
    }
  };
  const char* kAll = "/.*";
  server.Get(kAll, handler);
  server.Post(kAll, handler);
  server.Put(kAll, handler);
  server.Patch(kAll, handler);
  server.Delete(kAll, handler);
  server.Options(kAll, handler);

  int port = config.port;
  if (port == 0) {
    port = server.bind_to_any_port(config.host);
    if (port < 0) {
      std::fprintf(stderr, "ordinaut-server: cannot bind %s\n", config.host.c_str());
      return 1;
    }
  } else if (!server.bind_to_port(config.host, port)) {
    std::fprintf(stderr, "ordinaut-server: cannot bind %s:%d: %s\n", config.host.c_str(), port, std::strerror(errno));
    return 1;
  }
  if (listen_fd >= 0) ::listen(listen_fd, 1024);  // httplib's compiled-in backlog is 5

  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    log.info("shutdown_requested", fmt::format("signal {} received; draining for up to {} s", sig,
                                               config.shutdown_timeout_s));
    g_stopping.store(true);
    server.stop();
    std::this_thread::sleep_for(std::chrono::seconds(config.shutdown_timeout_s));
    log.error("shutdown_timeout", "in-flight requests did not finish in time; exiting");
    host->shutdown();
    std::_Exit(0);
  });
  signal_thread.detach();

  std::printf("ordinaut-server listening on http://%s:%d\n", config.host.c_str(), port);
  std::fflush(stdout);
  log.info("listening", fmt::format("http://{}:{}", config.host, port),
           fmt::format(R"({{"port":{},"threads":{}}})", port, threads));
  server.listen_after_bind();
  host->shutdown();
  log.info("stopped", "clean shutdown");
  return 0;
}
