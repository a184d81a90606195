// Dispatcher (dispatcher.hpp).
#include "host/dispatcher.hpp"

#include <fmt/format.h>

#include "http/static_files.hpp"
#include "ordinaut/json.hpp"

namespace ordinaut::detail {

namespace {

// A route's stream: exceptions inside it end the stream, never the server, and
// it holds a lease on its runtime until it ends. Members are destroyed in
// reverse order: the producer (the extension's code) before the lease.
struct GuardedStream {
  std::shared_ptr<Runtime> lease;
  StreamProducer producer;
  Logger log;
  std::string path;

  void operator()(StreamSink& sink) const {
    try {
      producer(sink);
    } catch (const std::exception& e) {
      log.error("stream_failed", fmt::format("stream of {} threw: {}", path, e.what()));
    } catch (...) {
      log.error("stream_failed", fmt::format("stream of {} threw", path));
    }
  }
};

}  // namespace

Response Dispatcher::handle(Request& request) {
  const auto started = std::chrono::steady_clock::now();
  std::string_view path = request.path;
  auto finish = [&](Response r) {
    services_.host_counters.record(r.status, std::chrono::steady_clock::now() - started);
    return r;
  };
  if (request.body.size() > services_.options.max_body_bytes) {
    return finish(Response::error(413, "payload_too_large",
                                  fmt::format("request body of {} bytes exceeds the limit of {} bytes",
                                              request.body.size(), services_.options.max_body_bytes),
                                  fmt::format(R"({{"limit":{}}})", services_.options.max_body_bytes)));
  }
  if (!path.starts_with("/ext/")) {
    return finish(Response::error(404, "not_found", fmt::format("no route for {}", path)));
  }
  std::string_view after = path.substr(5);
  std::size_t slash = after.find('/');
  std::string_view id = after.substr(0, slash);
  std::string_view rest = slash == std::string_view::npos ? std::string_view{} : after.substr(slash);
  if (!gate_bypassed_.load(std::memory_order_relaxed)) {
    if (auto refused = gate_.admit(request, id)) {
      if (refused->status == 401) {
        if (auto file = public_static_file(id, request, rest)) return finish(std::move(*file));
      }
      return finish(std::move(*refused));
    }
  }
  const bool host_document = (id == "status" || id == "openapi.json") && rest.empty();
  if (host_document && services_.options.authenticator && !scope_allows(request.scopes, "ext:status")) {
    services_.logger.audit("scope_denied", fmt::format("{} {} without scope ext:status", request.method, request.path),
                           fmt::format(R"({{"required_scope":"ext:status","remote":"{}"}})",
                                       json::escape(request.remote_addr)));
    return finish(scope_refusal(services_, "ext:status"));
  }
  if (id == "status" && rest.empty()) {
    request.route_template = "/ext/status";
    if (request.method != "GET" && request.method != "HEAD") {
      Response r = Response::error(405, "method_not_allowed", "GET /ext/status only");
      r.headers.set("Allow", "GET");
      return finish(std::move(r));
    }
    return finish(Response::json(200, status_.status()));
  }
  if (id == "openapi.json" && rest.empty()) {  // never an extension id: ids have no '.'
    request.route_template = "/ext/openapi.json";
    if (request.method != "GET" && request.method != "HEAD") {
      Response r = Response::error(405, "method_not_allowed", "GET /ext/openapi.json only");
      r.headers.set("Allow", "GET");
      return finish(std::move(r));
    }
    return finish(Response::json(200, status_.openapi()));
  }
  if (id == "_admin") return finish(admin_.handle(request, rest));  // no extension id starts with '_'
  Entry* entry = catalog_.find(id);
  if (entry == nullptr) {
    std::string shown(id.substr(0, 80));
    return finish(Response::error(404, "not_found", fmt::format("no extension '{}' is discovered", json::escape(shown)),
                                  fmt::format(R"({{"extension":"{}"}})", json::escape(shown))));
  }
  return dispatch_extension(*entry, request, rest, started);
}

// Under authentication, an extension's static files stay public: they are
// the code of its pages (a browser loads them before it can send a token),
// never data. Only GET/HEAD of a path no route claims, in an extension
// approved for STATIC, and only files that exist; everything else keeps its
// 401.
std::optional<Response> Dispatcher::public_static_file(std::string_view id, Request& request, std::string_view rest) {
  if (request.method != "GET" && request.method != "HEAD") return std::nullopt;
  Entry* entry = catalog_.find(id);
  if (entry == nullptr) return std::nullopt;
  {
    std::lock_guard lock(entry->info_mutex);
    if (!entry->approved.contains(Capability::STATIC)) return std::nullopt;
  }
  auto loaded = loader_.ensure_loaded(*entry);
  if (!loaded || (*loaded)->static_dir.empty()) return std::nullopt;
  const std::shared_ptr<Runtime> lease = std::move(*loaded);  // held while its router is read
  Runtime& rt = *lease;
  const std::string route_path = rest.empty() ? "/" : std::string(rest);
  PathParams params;
  if (rt.router && rt.router->match(request.method, route_path, params).route_index >= 0) return std::nullopt;
  auto file = serve_static(rt.static_dir, route_path, request);
  if (file) request.extension_id = entry->id;
  return file;
}

// The hot path: no allocation and one clock read beyond handle()'s on a
// matched route (clock reads cost ~100 ns on some virtual machines). The
// extension's Logger is made only where something is logged.
Response Dispatcher::dispatch_extension(Entry& entry, Request& request, std::string_view rest,
                                        std::chrono::steady_clock::time_point started) {
  if (services_.require_scopes) {
    const std::string needed = "ext:" + entry.id + ":routes";
    auto scopes = services_.scopes_of(request);
    if (!scope_allows(scopes, needed)) {
      services_.extension_logger(entry.id).audit(
          "scope_denied", fmt::format("{} {} without scope {}", request.method, request.path, needed),
          fmt::format(R"({{"required_scope":"{}","remote":"{}"}})", needed, json::escape(request.remote_addr)));
      services_.host_counters.record(403, std::chrono::steady_clock::now() - started);
      return scope_refusal(services_, needed);
    }
    request.scopes = std::move(scopes);
  }

  auto loaded = loader_.ensure_loaded(entry);
  if (!loaded && rest == "/health" && (request.method == "GET" || request.method == "HEAD") &&
      loaded.error().code != "disabled") {
    // Health checkers get the health shape (503, state) even when loading failed.
    Response health = status_.health(entry, nullptr);
    services_.host_counters.record(health.status, std::chrono::steady_clock::now() - started);
    return health;
  }
  if (!loaded) {
    const int status = loaded.error().code == "disabled" ? 404 : 503;
    services_.host_counters.record(status, std::chrono::steady_clock::now() - started);
    const ExtensionState state = entry.state.load();
    std::string reason;
    {
      std::lock_guard lock(entry.info_mutex);
      reason = state == ExtensionState::error ? entry.error_phase + ": " + entry.last_error : entry.state_reason;
    }
    return Response::error(status, status == 404 ? "not_found" : "unavailable", loaded.error().message,
                           fmt::format(R"({{"extension":"{}","state":"{}","reason":"{}"}})", entry.id, to_string(state),
                                       json::escape(reason)));
  }
  // The lease keeps the runtime (its routes, handlers, extension) alive until
  // this request is answered, and its stream until that ends, even if a
  // reload or stop replaces it meanwhile.
  std::shared_ptr<Runtime> lease = std::move(*loaded);
  Runtime& rt = *lease;
  if (rest.empty()) {
    request.route_path = "/";
  } else {
    request.route_path.assign(rest);
  }
  request.extension_id = entry.id;

  RouteCounters* counters = &rt.unrouted;
  Response response;
  const Route* route = nullptr;
  Router::Match match;
  if (rt.router) match = rt.router->match(request.method, request.route_path, request.params);
  if (match.route_index >= 0) {
    route = &rt.router->routes()[static_cast<std::size_t>(match.route_index)];
    counters = rt.route_counters[static_cast<std::size_t>(match.route_index)].get();
    request.route_template = route->path;
  }

  if (route == nullptr && request.route_path == "/health" && (request.method == "GET" || request.method == "HEAD")) {
    request.route_template = "/health";
    response = status_.health(entry, &rt);
  } else if (route == nullptr) {
    std::optional<Response> file;
    if (!rt.static_dir.empty() && (request.method == "GET" || request.method == "HEAD")) {
      file = serve_static(rt.static_dir, request.route_path, request);
    }
    if (file) {
      response = std::move(*file);
    } else if (match.path_matched) {
      response = Response::error(
          405, "method_not_allowed",
          fmt::format("{} is not allowed on {}; allowed: {}", request.method, request.path, match.allow));
      response.headers.set("Allow", match.allow);
    } else if (!rt.router) {
      response = Response::error(404, "not_found",
                                 fmt::format("extension '{}' mounts no routes{}", entry.id,
                                             rt.granted.contains(Capability::ROUTES) ? "" : " (ROUTES not granted)"),
                                 rt.granted.contains(Capability::ROUTES) ? "" : R"({"missing_capability":"ROUTES"})");
    } else {
      response = Response::error(404, "not_found", fmt::format("no route {} {}", request.method, request.path));
    }
  } else {
    bool valid = true;
    if (route->request_schema) {
      auto body = request.json();
      if (!body) {
        valid = false;
        Error e = body.error();
        e.message = "request body is not valid JSON: " + e.message;
        response = Response::error(400, "bad_request", e);
      } else if (auto v = route->request_schema->validate(*body); !v) {
        valid = false;
        Error e = v.error();
        e.message = "request body: " + e.message;
        response = Response::error(400, "bad_request", e);
      }
    }
    if (valid) {
      try {
        response = route->handler(request);
      } catch (const CapabilityError& e) {
        response = Response::error(403, "forbidden", e.what(),
                                   fmt::format(R"({{"missing_capability":"{}"}})", to_string(e.capability())));
      } catch (const std::exception& e) {
        {
          std::lock_guard lock(entry.info_mutex);
          entry.last_error = fmt::format("{} {}: {}", route->method, route->path, e.what());
          entry.error_phase = "request";
        }
        services_.extension_logger(entry.id).error(
            "handler_failed", fmt::format("{} {} threw: {}", request.method, route->path, e.what()));
        response = Response::error(
            500, "internal_error",
            fmt::format("extension '{}' failed while handling {} {}", entry.id, request.method, route->path));
      } catch (...) {
        services_.extension_logger(entry.id).error(
            "handler_failed", fmt::format("{} {} threw a non-standard exception", request.method, route->path));
        response = Response::error(
            500, "internal_error",
            fmt::format("extension '{}' failed while handling {} {}", entry.id, request.method, route->path));
      }
      if (response.stream) {
        response.stream = GuardedStream{std::move(lease), std::move(response.stream),
                                        services_.extension_logger(entry.id), route->path};
      }
    }
  }
  counters->record(response.status, std::chrono::steady_clock::now() - started);
  return response;
}

}  // namespace ordinaut::detail
