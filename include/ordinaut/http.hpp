// The HTTP model: requests, responses, streamed responses and the Router an
// extension returns from setup().
//
// There is no HTTP server in here. A server adapter (the reference server uses
// cpp-httplib; a host may use anything) turns its own request into an
// `ordinaut::Request`, calls `ExtensionHost::handle()`, and writes the
// `ordinaut::Response` back; for a streamed response it implements `StreamSink`.
//
// Thread safety: a Router is built during setup() and is immutable afterwards;
// matching is safe from many threads. Handlers are called concurrently and must
// synchronise their own shared state.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ordinaut/json.hpp"
#include "ordinaut/result.hpp"
#include "ordinaut/version.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

/// Header list with case-insensitive lookup; order and duplicates are kept.
class Headers {
 public:
  /// First value of `name`, or "" when absent.
  std::string_view get(std::string_view name) const noexcept;
  /// True when `name` has at least one value.
  bool has(std::string_view name) const noexcept;
  /// Replaces every value of `name` with `value`.
  void set(std::string name, std::string value);
  /// Appends a value, keeping existing ones.
  void add(std::string name, std::string value);
  /// Removes every value of `name`.
  void erase(std::string_view name);
  /// Every (name, value) pair, in the order received or added.
  const std::vector<std::pair<std::string, std::string>>& list() const noexcept { return items_; }

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

/// Path parameters (decoded) captured by a route template.
using PathParams = std::vector<std::pair<std::string, std::string>>;

/// An HTTP request as the host and extensions see it (the server adapter fills
/// method, path, query_string, headers, body and remote_addr).
struct Request {
  std::string method;        ///< upper case: GET, POST, ...
  std::string path;          ///< raw (still percent-encoded) path, no query string
  std::string query_string;  ///< raw text after '?', without the '?'
  Headers headers;           ///< request headers, case-insensitive
  std::string body;          ///< the whole body (already de-chunked)
  std::string remote_addr;   ///< the client's address ("" in process)

  /// Filled by the router: decoded values of the template's {params}.
  PathParams params;
  /// Path relative to the extension's mount ("/" for the mount itself); set by
  /// the host before routing.
  std::string route_path;
  /// Set by the host for logs and metrics: the extension that served the
  /// request and the route template that matched ("" when none did).
  std::string extension_id;
  std::string route_template;  ///< see extension_id
  /// Set by the host when it enforces scopes (HostOptions::require_scopes):
  /// the caller's scopes as the host's ScopeResolver resolved them (by default
  /// the X-Scopes header). Extensions that check finer scopes of their own
  /// read them here, never from a header. Empty when scopes are not enforced.
  std::vector<std::string> scopes;

  /// Decoded path parameter, "" when absent.
  std::string_view param(std::string_view name) const noexcept;
  /// Decoded query parameter (first occurrence), nullopt when absent.
  std::optional<std::string> query(std::string_view name) const;
  /// First value of header `name` (case-insensitive), "" when absent.
  std::string_view header(std::string_view name) const noexcept { return headers.get(name); }
  /// Parses the body as JSON; error code "invalid_json" with the position.
  Result<Json> json() const { return json::parse(body); }
};

/// Where a streamed response's bytes go; implemented by the server adapter.
///
/// A producer that waits for data should wait in slices (a second or less) and
/// check is_open() between them: that is how a client's disconnect or a server
/// shutdown ends the stream and frees its thread. The reference server turns
/// is_open() false as soon as the client closes its connection (it watches the
/// socket), and on a text/event-stream it writes the comment ": keepalive\n\n"
/// whenever the producer has been silent for --stream-keepalive seconds; SSE
/// clients ignore comments. Writes are serialised by the adapter.
class StreamSink {
 public:
  virtual ~StreamSink() = default;
  /// Writes and flushes `data`. Returns false once the client has gone; the
  /// producer must then return promptly.
  virtual bool write(std::string_view data) = 0;
  /// False once the client disconnected or the server is shutting down.
  virtual bool is_open() const = 0;
};

/// Produces a streamed body. Runs on the server thread that serves the request
/// and holds it until it returns.
using StreamProducer = std::function<void(StreamSink&)>;

/// An HTTP response; build one with the factories below.
struct Response {
  int status = 200;  ///< HTTP status code
  Headers headers;   ///< response headers (Content-Type is set by the factories)
  std::string body;  ///< the body, unless `stream` is set
  /// When set, the body is streamed by this producer and `body` is ignored.
  StreamProducer stream;

  /// `value` serialised, Content-Type application/json.
  static Response json(int status, const JsonValue& value);
  /// Already serialised JSON text.
  static Response json_text(int status, std::string text);
  /// A text body with `content_type`.
  static Response text(int status, std::string text,
                       std::string content_type = "text/plain; charset=utf-8");
  /// The error shape {"error": code, "message": message, "details": {...}}.
  /// `details_json` must be a JSON object text or empty.
  static Response error(int status, std::string_view code, std::string_view message,
                        std::string_view details_json = {});
  /// The error shape for `cause`: its message, and "details" holding
  /// cause.details' members plus "code" (cause.code), "pointer" (when set)
  /// and "offset", "line", "column" (when cause has a position, as parse
  /// errors do). E.g. error(400, "bad_request", parse_error) gives
  /// {"error":"bad_request","message":"line 1, column 9 (offset 8): ...",
  ///  "details":{"code":"invalid_json","offset":8,"line":1,"column":9}}.
  static Response error(int status, std::string_view code, const Error& cause);
  /// A text/event-stream response with no-cache headers.
  static Response event_stream(StreamProducer producer);
};

/// Formats one Server-Sent Event. `data` may span lines; each becomes a data: line.
std::string format_sse_event(std::string_view data, std::string_view event = {},
                             std::string_view id = {});

/// A route handler: answers one request. Called concurrently from many threads.
using Handler = std::function<Response(Request&)>;

/// Documentation and validation attached to a route.
/// Designated initializers work without warnings: {.summary = "..."}.
struct RouteOptions {
  std::string summary{};          ///< one line, shown in OpenAPI
  std::string request_schema{};   ///< JSON Schema text; when set, the host validates
                                  ///< the body before the handler runs (400 on failure)
  std::string response_schema{};  ///< JSON Schema text, documentation only
};

/// One route of a Router, as added.
struct Route {
  std::string method;  ///< "GET", "POST", ... ; "*" matches any method
  std::string path;    ///< template, e.g. "/items/{id}" or "/files/{path...}"
  Handler handler;     ///< what answers it
  RouteOptions options;  ///< summary and schemas, as given
  std::shared_ptr<const JsonSchema> request_schema;  ///< compiled options.request_schema

  /// Internal: the template split into segments; a segment starting with '{'
  /// is a parameter, "{name...}" captures the rest of the path.
  std::vector<std::string> segments;
};

/// Method + path-template routing. Templates are absolute ("/", "/items/{id}");
/// a final "{name...}" segment captures the remaining path (decoded segment by
/// segment, joined with '/'; a segment that decodes to contain '/' or '\\' or
/// NUL never matches, so captured paths cannot smuggle separators).
/// HEAD requests match GET routes.
class Router {
 public:
  /// Adds a route. Throws std::invalid_argument for a malformed template or an
  /// invalid request schema, naming the route.
  Router& add(std::string method, std::string path, Handler handler, RouteOptions options = {});
  /// add("GET", ...).
  Router& get(std::string path, Handler h, RouteOptions o = {}) { return add("GET", std::move(path), std::move(h), std::move(o)); }
  /// add("POST", ...).
  Router& post(std::string path, Handler h, RouteOptions o = {}) { return add("POST", std::move(path), std::move(h), std::move(o)); }
  /// add("PUT", ...).
  Router& put(std::string path, Handler h, RouteOptions o = {}) { return add("PUT", std::move(path), std::move(h), std::move(o)); }
  /// add("PATCH", ...).
  Router& patch(std::string path, Handler h, RouteOptions o = {}) { return add("PATCH", std::move(path), std::move(h), std::move(o)); }
  /// add("DELETE", ...).
  Router& del(std::string path, Handler h, RouteOptions o = {}) { return add("DELETE", std::move(path), std::move(h), std::move(o)); }

  /// The result of match().
  struct Match {
    int route_index = -1;      ///< index into routes(), -1 when nothing matched
    bool path_matched = false; ///< some route had this path but another method
    std::string allow;         ///< methods allowed for the path, for a 405
  };

  /// Matches `method` and `path` (raw, relative to the mount). On a match the
  /// decoded parameters are stored in `params`.
  Match match(std::string_view method, std::string_view path, PathParams& params) const;

  /// Every route, in the order added (Match::route_index indexes it).
  const std::vector<Route>& routes() const noexcept { return routes_; }
  /// True when no route was added.
  bool empty() const noexcept { return routes_.empty(); }

 private:
  std::vector<Route> routes_;
};

/// Percent-decodes `text` ('+' is kept). Returns nullopt for a malformed escape.
std::optional<std::string> percent_decode(std::string_view text);

/// Browser safety: which Host and Origin headers a server accepts, so that no
/// web page can drive it (cross-site requests, DNS rebinding).
struct OriginPolicy {
  /// Host names accepted besides localhost, 127.0.0.1 and [::1] (lower case,
  /// the port is ignored). "*" accepts any Host.
  std::vector<std::string> allowed_hosts;
  /// Origins ("https://console.example", scheme://host[:port], exact)
  /// accepted besides the request's own (http(s):// + its Host header).
  std::vector<std::string> allowed_origins;
};

/// Why `request` fails `policy`, or "" when it passes. Host, when present,
/// must be a loopback name or allowed; Origin, when present on a
/// state-changing request (POST, PUT, PATCH, DELETE), or on every request
/// when `origin_on_every_method`, must be the request's own origin or allowed.
/// A request without Host (in-process) passes the Host rule.
std::string origin_policy_problem(const Request& request, const OriginPolicy& policy,
                                  bool origin_on_every_method = false);

/// Reason phrase for an HTTP status ("Not Found").
const char* status_reason(int status) noexcept;

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
