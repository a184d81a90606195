#include "server_config.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include "ordinaut/redis_bus.hpp"
#include "ordinaut/version.hpp"

namespace ordinaut_server {

namespace fs = std::filesystem;

namespace {

const char* kUsage = R"(usage: ordinaut-server [options]

Serves the Ordinaut extension host over HTTP: /health, /ext/status,
/ext/openapi.json, /ext/{id}/health and /ext/{id}/... for every discovered
extension (the built-ins and those on ORDINAUT_EXT_PATHS / --ext-path).

options:
  --host ADDR              address to bind (default 127.0.0.1)
  --port N                 port (default 8080; 0 picks a free port)
  --ext-path DIR           extension folder added after ORDINAUT_EXT_PATHS (repeatable)
  --builtin-dir DIR        folder of built-in extensions (default: found next to the binary)
  --require-scopes         require scope ext:{id}:routes (as ORDINAUT_REQUIRE_SCOPES=1);
                           scopes then come from the client's X-Scopes: development only
  --auth FILE              authentication (default: ORDINAUT_AUTH_FILE): bearer tokens
                           and JWTs as FILE says (docs/configuration.md); every request
                           under /ext then needs one. SIGHUP re-reads its JWKS file
  --insecure-no-auth       allow a non-loopback --host without --auth (a warning at start
                           and every hour); only when something in front authenticates
  --allowed-host NAME      Host name accepted besides localhost/127.0.0.1/[::1] and the
                           bound address (repeatable; "*" = any; DNS-rebinding protection)
  --allowed-origin ORIGIN  Origin accepted besides the server's own (repeatable)
  --log-format json|text   structured log format (default json)
  --no-request-log         no log line per request
  --threads N              worker threads that read requests and run handlers (default
                           max(16, 4 x cores)); idle connections and streams hold none
  --max-body BYTES         largest request body, any content type, also chunked
                           (default 1048576); larger gets 413 and the connection closes
  --header-timeout S       seconds a whole request head may take to arrive (default 10;
                           fractions allowed); later gets 408
  --body-timeout S         seconds a whole request body may take to arrive (default 60;
                           fractions allowed); later gets 408
  --read-timeout S         seconds to wait for the next bytes of a request (default 30)
  --write-timeout S        seconds to wait for the client to take response bytes (default 30)
  --keep-alive-timeout S   seconds an idle keep-alive connection stays open (default 30)
  --stream-keepalive S     seconds of producer silence before an SSE stream gets a
                           ": keepalive" comment (default 15; fractions allowed; 0 = off)
  --shutdown-timeout S     seconds in-flight requests get after SIGTERM/SIGINT (default 10)
  --lifecycle-timeout S    seconds an extension's on_startup/on_shutdown may take, and a
                           stopping task gets, before it is abandoned (default 5;
                           fractions allowed; 0 = wait without limit)
  --redis-url URL          event bus on Redis Streams, redis://[:password@]host:port/db
                           (default: REDIS_URL; unset: in-memory bus, this process only)
  --data-dir DIR           the scheduler's files (default: ORDINAUT_DATA_DIR, else ./ordinaut-data)
  --scheduler-store SPEC   the scheduler's store: sqlite:PATH or postgresql://user@host:port/db
                           (default: ORDINAUT_SCHEDULER_STORE, else sqlite:DIR/scheduler.db);
                           servers sharing one PostgreSQL database share the tasks and runs
  --help                   this text
  --version                print the version

fixed request limits: request line 8 KiB (else 414); one header line 8 KiB, all
header lines 32 KiB, 100 fields (else 431). Every error answer closes the connection.
The soft limit on open files is raised to the hard limit at start (one per connection).

The server prints "ordinaut-server listening on http://HOST:PORT" on stdout once
it accepts connections; logs go to stderr.

environment: ORDINAUT_EXT_PATHS, ORDINAUT_EXT_ENTRY_GRANTS, ORDINAUT_EXT_ENTRY_EAGER,
             ORDINAUT_REQUIRE_SCOPES, ORDINAUT_AUTH_FILE, ORDINAUT_ALLOWED_HOSTS,
             ORDINAUT_ALLOWED_ORIGINS, REDIS_URL
)";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "ordinaut-server: %s\n(try --help)\n", message.c_str());
  std::exit(2);
}

long long parse_integer(std::string_view flag, const std::string& value, long long min, long long max) {
  char* end = nullptr;
  errno = 0;
  long long n = std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || errno != 0 || n < min || n > max) {
    usage_error(fmt::format("{} needs a whole number from {} to {}, got \"{}\"", flag, min, max, value));
  }
  return n;
}

double parse_seconds(std::string_view flag, const std::string& value, double max) {
  char* end = nullptr;
  errno = 0;
  double s = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0' || errno != 0 || !std::isfinite(s) || s < 0 || s > max) {
    usage_error(fmt::format("{} needs a number of seconds from 0 to {}, got \"{}\"", flag, max, value));
  }
  return s;
}

// A positive number of seconds, to the next millisecond (never 0).
std::chrono::milliseconds seconds_flag(std::string_view flag, const std::string& value) {
  const double s = parse_seconds(flag, value, 3600);
  if (s <= 0) usage_error(fmt::format("{} needs a number of seconds above 0, got \"{}\"", flag, value));
  return std::chrono::milliseconds(static_cast<long long>(std::ceil(s * 1000)));
}

}  // namespace

ServerConfig parse_command_line(int argc, char** argv) {
  ServerConfig c;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    auto value = [&]() -> std::string {
      if (eq != std::string::npos) return arg.substr(eq + 1);
      if (i + 1 >= argc) usage_error(name + " needs a value");
      return argv[++i];
    };
    auto no_value = [&] {
      if (eq != std::string::npos) usage_error(name + " takes no value");
    };
    if (name == "--help" || name == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (name == "--version") {
      std::printf("ordinaut-server %s (extension ABI %u)\n", ordinaut::library_version(),
                  ordinaut::library_abi_version());
      std::exit(0);
    } else if (name == "--host") {
      c.host = value();
      if (c.host.empty()) usage_error("--host needs an address, got \"\"");
    } else if (name == "--port") {
      c.port = static_cast<int>(parse_integer("--port", value(), 0, 65535));
    } else if (name == "--ext-path") {
      c.ext_paths.push_back(value());
    } else if (name == "--builtin-dir") {
      c.builtin_dir = value();
      std::error_code ec;
      if (!fs::is_directory(*c.builtin_dir, ec)) usage_error("--builtin-dir " + *c.builtin_dir + ": not a folder");
    } else if (name == "--auth") {
      c.auth_file = value();
      if (c.auth_file.empty()) usage_error("--auth needs a file, got \"\"");
    } else if (name == "--insecure-no-auth") {
      no_value();
      c.insecure_no_auth = true;
    } else if (name == "--allowed-host") {
      c.allowed_hosts.push_back(value());
    } else if (name == "--allowed-origin") {
      c.allowed_origins.push_back(value());
    } else if (name == "--require-scopes") {
      no_value();
      c.require_scopes = true;
    } else if (name == "--log-format") {
      const std::string f = value();
      if (f != "json" && f != "text") usage_error("--log-format is json or text, got \"" + f + "\"");
      c.log_json = f == "json";
    } else if (name == "--no-request-log") {
      no_value();
      c.log_requests = false;
    } else if (name == "--threads") {
      c.threads = static_cast<int>(parse_integer("--threads", value(), 1, 4096));
    } else if (name == "--max-body") {
      c.max_body = static_cast<std::size_t>(parse_integer("--max-body", value(), 1, 1LL << 34));
    } else if (name == "--header-timeout") {
      c.header_timeout = seconds_flag("--header-timeout", value());
    } else if (name == "--body-timeout") {
      c.body_timeout = seconds_flag("--body-timeout", value());
    } else if (name == "--read-timeout") {
      c.read_timeout_s = static_cast<int>(parse_integer("--read-timeout", value(), 1, 3600));
    } else if (name == "--write-timeout") {
      c.write_timeout_s = static_cast<int>(parse_integer("--write-timeout", value(), 1, 3600));
    } else if (name == "--keep-alive-timeout") {
      c.keep_alive_timeout_s = static_cast<int>(parse_integer("--keep-alive-timeout", value(), 1, 3600));
    } else if (name == "--stream-keepalive") {
      c.stream_keepalive = std::chrono::milliseconds(
          static_cast<long long>(std::llround(parse_seconds("--stream-keepalive", value(), 3600) * 1000)));
    } else if (name == "--shutdown-timeout") {
      c.shutdown_timeout_s = static_cast<int>(parse_integer("--shutdown-timeout", value(), 0, 3600));
    } else if (name == "--lifecycle-timeout") {
      // Up to the next millisecond: a tiny timeout must not become 0 ("no limit").
      c.lifecycle_timeout = std::chrono::milliseconds(
          static_cast<long long>(std::ceil(parse_seconds("--lifecycle-timeout", value(), 3600) * 1000)));
    } else if (name == "--redis-url") {
      c.redis_url = value();
      if (auto url = ordinaut::parse_redis_url(c.redis_url); !url) usage_error("--redis-url: " + url.error().message);
    } else if (name == "--data-dir") {
      c.data_dir = value();
      if (c.data_dir.empty()) usage_error("--data-dir needs a folder, got \"\"");
    } else if (name == "--scheduler-store") {
      c.scheduler_store = value();
      if (!c.scheduler_store.starts_with("sqlite:") && !c.scheduler_store.starts_with("postgresql://") &&
          !c.scheduler_store.starts_with("postgres://")) {
        usage_error("--scheduler-store is sqlite:PATH or postgresql://..., got \"" + c.scheduler_store + "\"");
      }
    } else {
      usage_error("unknown option " + arg);
    }
  }
  if (const char* env = std::getenv("REDIS_URL"); c.redis_url.empty() && env != nullptr && *env != '\0') {
    c.redis_url = env;
    if (auto url = ordinaut::parse_redis_url(c.redis_url); !url) usage_error("REDIS_URL: " + url.error().message);
  }
  return c;
}

int worker_threads(const ServerConfig& config) {
  if (config.threads > 0) return config.threads;
  return static_cast<int>(std::max(16u, 4 * std::thread::hardware_concurrency()));
}

// The built-in extensions sit at a fixed place relative to the binary, both in
// the build tree and after `meson install` (paths computed by Meson).
fs::path default_builtin_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (const char* rel : {ORDINAUT_BUILTIN_REL_BUILD, ORDINAUT_BUILTIN_REL_INSTALL}) {
      fs::path candidate = exe.parent_path() / rel;
      if (fs::is_directory(candidate, ec)) return fs::weakly_canonical(candidate, ec);
    }
  }
  return ORDINAUT_BUILTIN_INSTALL_DIR;
}

}  // namespace ordinaut_server
