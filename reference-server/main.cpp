// ordinaut-server: the reference server. Serves an ExtensionHost over its own
// connection layer (connection_server.hpp): /health, and everything under /ext through the host's dispatch
// (the built-in extensions and any on ORDINAUT_EXT_PATHS / --ext-path).
//
// Shutdown (SIGTERM or SIGINT): stop accepting, close idle connections, let
// requests in flight finish for up to --shutdown-timeout seconds (streams are
// told is_open() == false), then run every extension's on_shutdown() and exit 0.
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "connection_server.hpp"
#include "log_writer.hpp"
#include "ordinaut/host.hpp"
#include "ordinaut/json.hpp"
#include "ordinaut/redis_bus.hpp"
#include "ordinaut/version.hpp"
#include "server_auth.hpp"
#include "server_config.hpp"
#include "stream_watcher.hpp"

namespace {

using namespace ordinaut_server;
using Clock = std::chrono::steady_clock;

// The route a request log line names: a template, never the raw path, so that
// lines group by route ("(unmatched)" when no route answered).
std::string logged_route(const ordinaut::Request& request) {
  if (request.route_template.empty()) return "(unmatched)";
  if (request.extension_id.empty()) return request.route_template;
  return fmt::format("/ext/{}{}", request.extension_id, request.route_template);
}

// One line per request, through the host's sink (same format and buffer).
// Streamed responses are logged when the stream starts.
void log_request(const ordinaut::LogSink& sink, const ordinaut::Request& request, int status,
                 Clock::time_point started, bool streamed) {
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
  const std::string route = logged_route(request);
  std::string_view path = request.path;
  if (path.size() > 256) path = path.substr(0, 256);
  ordinaut::LogRecord record;
  record.time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  record.level = ordinaut::LogLevel::info;
  record.event = "request";
  record.extension = request.extension_id;
  record.message = fmt::format("{} {} {} {:.3f} ms", request.method, route, status, ms);
  record.fields_json = fmt::format(
      R"({{"method":"{}","route":"{}","path":"{}","status":{},"duration_ms":{:.3f},"extension":"{}",)"
      R"("remote":"{}","streamed":{}}})",
      ordinaut::json::escape(request.method), ordinaut::json::escape(route), ordinaut::json::escape(path), status,
      ms, request.extension_id, ordinaut::json::escape(request.remote_addr), streamed);
  sink(record);
}

// Coordinates the signal thread and main: who saw listen end, who ran
// on_shutdown().
struct ShutdownState {
  std::mutex mutex;
  std::condition_variable cv;
  bool listen_done = false;
  bool requested = false;
  std::once_flag host_stopped;
};

}  // namespace

int main(int argc, char** argv) {
  const ServerConfig config = parse_command_line(argc, argv);
#ifdef M_ARENA_MAX
  // Few malloc arenas: memory freed after a burst of connections is reused
  // rather than kept in one arena per thread that once touched it.
  ::mallopt(M_ARENA_MAX, 2);
#endif

  // Signals are taken by one thread with sigwait; block them everywhere else
  // (threads inherit the mask).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);  // re-read the auth file's JWKS
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  ordinaut::HostOptions options;
  LogWriter log_writer(config.log_json, std::chrono::milliseconds(20));  // outlives the host
  options.log_sink = log_writer.sink();
  const ordinaut::LogSink request_sink = options.log_sink;
  options.builtin_dirs.push_back(config.builtin_dir ? std::filesystem::path(*config.builtin_dir)
                                                    : default_builtin_dir());
  for (const auto& p : config.ext_paths) options.extension_paths.emplace_back(p);
  if (config.require_scopes) options.require_scopes = true;
  options.max_body_bytes = config.max_body;
  options.lifecycle_timeout = config.lifecycle_timeout;
  // The scheduler extension reads its store from the environment.
  if (!config.data_dir.empty()) ::setenv("ORDINAUT_DATA_DIR", config.data_dir.c_str(), 1);
  if (!config.scheduler_store.empty()) ::setenv("ORDINAUT_SCHEDULER_STORE", config.scheduler_store.c_str(), 1);
  if (!config.redis_url.empty()) {  // else the host's in-memory bus
    ordinaut::RedisBusOptions bus_options;
    bus_options.url = config.redis_url;
    bus_options.subscribe_while_unreachable = true;  // extensions that subscribe load while Redis is down
    bus_options.log = options.log_sink;
    auto bus = ordinaut::make_redis_event_bus(bus_options);
    if (!bus) {
      std::fprintf(stderr, "ordinaut-server: --redis-url/REDIS_URL: %s\n", bus.error().message.c_str());
      return 2;
    }
    options.event_bus = *bus;
  }

  ServerAuth auth;  // outlives the host: the authenticator is the host's too
  if (auto configured = auth.configure(config, options); !configured) {
    std::fprintf(stderr, "ordinaut-server: %s\n", configured.error().message.c_str());
    return 2;
  }
  auto host = std::make_unique<ordinaut::ExtensionHost>(std::move(options));
  if (auto started = host->start(); !started) {
    std::fprintf(stderr, "ordinaut-server: %s\n", started.error().message.c_str());
    return 2;
  }
  const ordinaut::Logger& log = host->logger();
  auth.announce(config, log);

  StreamWatcher watcher(config.stream_keepalive);
  const int threads = worker_threads(config);
  const auto start_time = Clock::now();
  ConnectionHooks hooks;
  hooks.handle = [&](ordinaut::Request& request) -> ordinaut::Response {
    if (request.path == "/.well-known/oauth-protected-resource" && auth.resource_metadata()) {
      if (request.method != "GET" && request.method != "HEAD") {
        ordinaut::Response r = ordinaut::Response::error(405, "method_not_allowed", "GET or HEAD only");
        r.headers.set("Allow", "GET, HEAD");
        return r;
      }
      return ordinaut::Response::json_text(200, *auth.resource_metadata());  // RFC 9728, for MCP clients
    }
    if (request.path == "/health") {  // the server's own endpoint, not logged per request
      if (request.method != "GET" && request.method != "HEAD") {
        ordinaut::Response r = ordinaut::Response::error(405, "method_not_allowed", "GET or HEAD /health only",
                                                         R"({"allow":["GET","HEAD"]})");
        r.headers.set("Allow", "GET, HEAD");
        return r;
      }
      const double uptime = std::chrono::duration<double>(Clock::now() - start_time).count();
      return ordinaut::Response::json_text(200, fmt::format(R"({{"status":"ok","version":"{}","uptime_seconds":{:.3f}}})",
                                                            ordinaut::library_version(), uptime));
    }
    const auto started = Clock::now();
    ordinaut::Response response = host->handle(request);
    if (config.log_requests) {
      log_request(request_sink, request, response.status, started, static_cast<bool>(response.stream));
    }
    return response;
  };
  hooks.rejected = [&](const RequestError& error, std::string_view remote) {
    if (!config.log_requests) return;
    log.info("request_rejected", fmt::format("{} {}: {}", error.status, error.code, error.message),
             fmt::format(R"({{"status":{},"code":"{}","remote":"{}"}})", error.status, error.code,
                         ordinaut::json::escape(remote)));
  };
  hooks.error = [&](std::string_view event, std::string_view message) { log.error(std::string(event), std::string(message)); };
  ConnectionOptions connection_options;
  connection_options.threads = threads;
  connection_options.max_body = config.max_body;
  connection_options.header_timeout = config.header_timeout;
  connection_options.body_timeout = config.body_timeout;
  connection_options.read_timeout = std::chrono::seconds(config.read_timeout_s);
  connection_options.write_timeout = std::chrono::seconds(config.write_timeout_s);
  connection_options.keep_alive_timeout = std::chrono::seconds(config.keep_alive_timeout_s);
  ConnectionServer server(connection_options, std::move(hooks), watcher);

  const int port = server.bind(config.host, config.port);
  if (port < 0) {
    std::fprintf(stderr, "ordinaut-server: cannot bind %s:%d: %s\n", config.host.c_str(), config.port,
                 std::strerror(errno));
    return 1;
  }

  ShutdownState state;
  auto stop_host = [&] {
    std::call_once(state.host_stopped, [&] {
      host->shutdown();  // on_shutdown() of every loaded extension, reverse load order
    });
  };
  std::thread signal_thread([&] {
    int sig = 0;
    while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) auth.reload_keys(log);
    const auto began = Clock::now();
    {
      std::lock_guard lock(state.mutex);
      if (state.listen_done && !state.requested) return;  // main woke us: listening failed
      state.requested = true;
    }
    log.info("shutdown_requested",
             fmt::format("{} received: no new connections; in-flight requests get up to {} s", strsignal(sig),
                         config.shutdown_timeout_s),
             fmt::format(R"({{"signal":{},"open_connections":{},"open_streams":{}}})", sig,
                         server.open_connections(), watcher.open_streams()));
    watcher.close_all();
    server.begin_shutdown();
    std::unique_lock lock(state.mutex);
    if (state.cv.wait_for(lock, std::chrono::seconds(config.shutdown_timeout_s), [&] { return state.listen_done; })) {
      return;  // main finishes the shutdown
    }
    log.error("shutdown_timeout",
              fmt::format("{} connections still busy after {} s; closing them", server.open_connections(),
                          config.shutdown_timeout_s));
    server.abort_connections();
    if (state.cv.wait_for(lock, std::chrono::seconds(2), [&] { return state.listen_done; })) return;
    // A handler that ignores its closed connection cannot be waited for.
    lock.unlock();
    stop_host();
    log.error("stopped", fmt::format("forced exit after {:.1f} s; handlers still running",
                                     std::chrono::duration<double>(Clock::now() - began).count()));
    log_writer.flush();
    std::fflush(stdout);
    std::_Exit(0);
  });

  std::printf("ordinaut-server listening on http://%s:%d\n", config.host.c_str(), port);
  std::fflush(stdout);
  log.info("listening", fmt::format("http://{}:{} (up to {} open files)", config.host, port, server.max_files()),
           fmt::format(R"({{"port":{},"threads":{},"max_body":{},"stream_keepalive_ms":{},"max_open_files":{},)"
                       R"("header_timeout_ms":{},"body_timeout_ms":{}}})",
                       port, threads, config.max_body, config.stream_keepalive.count(), server.max_files(),
                       config.header_timeout.count(), config.body_timeout.count()));
  const bool listened = server.run();
  bool requested = false;
  {
    std::lock_guard lock(state.mutex);
    state.listen_done = true;
    requested = state.requested;
  }
  state.cv.notify_all();
  if (!requested) {
    log.error("listen_failed", "the server stopped accepting connections on its own");
    ::kill(::getpid(), SIGTERM);  // wakes the signal thread, which then returns
  }
  signal_thread.join();
  stop_host();
  log.info("stopped", requested ? "clean shutdown" : "listener failed");
  return requested && listened ? 0 : 1;
}
