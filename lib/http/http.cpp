#include "ordinaut/http.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <span>
#include <stdexcept>

#include <fmt/format.h>

#include "core/strings.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

// ---- Headers ---------------------------------------------------------------

std::string_view Headers::get(std::string_view name) const noexcept {
  for (const auto& [k, v] : items_) {
    if (detail::iequals(k, name)) return v;
  }
  return {};
}

bool Headers::has(std::string_view name) const noexcept {
  for (const auto& item : items_) {
    if (detail::iequals(item.first, name)) return true;
  }
  return false;
}

void Headers::set(std::string name, std::string value) {
  erase(name);
  items_.emplace_back(std::move(name), std::move(value));
}

void Headers::add(std::string name, std::string value) { items_.emplace_back(std::move(name), std::move(value)); }

void Headers::erase(std::string_view name) {
  std::erase_if(items_, [&](const auto& item) { return detail::iequals(item.first, name); });
}

// ---- Request ---------------------------------------------------------------

std::string_view Request::param(std::string_view name) const noexcept {
  for (const auto& [k, v] : params) {
    if (k == name) return v;
  }
  return {};
}

std::optional<std::string> Request::query(std::string_view name) const {
  std::string_view rest = query_string;
  while (!rest.empty()) {
    std::size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    std::size_t eq = pair.find('=');
    std::string key_raw(pair.substr(0, eq));
    std::replace(key_raw.begin(), key_raw.end(), '+', ' ');
    auto key = percent_decode(key_raw);
    if (!key || *key != name) continue;
    std::string value_raw(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
    std::replace(value_raw.begin(), value_raw.end(), '+', ' ');
    auto value = percent_decode(value_raw);
    return value ? *value : value_raw;
  }
  return std::nullopt;
}

// ---- Response --------------------------------------------------------------

Response Response::json(int status, const JsonValue& value) { return json_text(status, json::dump(value)); }

Response Response::json_text(int status, std::string text) {
  Response r;
  r.status = status;
  r.headers.set("Content-Type", "application/json");
  r.body = std::move(text);
  return r;
}

Response Response::text(int status, std::string text, std::string content_type) {
  Response r;
  r.status = status;
  r.headers.set("Content-Type", std::move(content_type));
  r.body = std::move(text);
  return r;
}

Response Response::error(int status, std::string_view code, std::string_view message,
                         std::string_view details_json) {
  return json_text(status, fmt::format(R"({{"error":"{}","message":"{}","details":{}}})", json::escape(code),
                                       json::escape(message), details_json.empty() ? "{}" : details_json));
}

Response Response::error(int status, std::string_view code, const Error& cause) {
  return error(status, code, cause.message, json::dump(json::error_details(cause)));
}

Response Response::event_stream(StreamProducer producer) {
  Response r;
  r.status = 200;
  r.headers.set("Content-Type", "text/event-stream");
  r.headers.set("Cache-Control", "no-cache");
  r.headers.set("X-Accel-Buffering", "no");
  r.stream = std::move(producer);
  return r;
}

std::string format_sse_event(std::string_view data, std::string_view event, std::string_view id) {
  std::string out;
  out.reserve(data.size() + event.size() + id.size() + 24);
  if (!id.empty()) {
    out += "id: ";
    out += id;
    out += '\n';
  }
  if (!event.empty()) {
    out += "event: ";
    out += event;
    out += '\n';
  }
  std::size_t start = 0;
  while (true) {
    std::size_t nl = data.find('\n', start);
    out += "data: ";
    out += data.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    out += '\n';
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  out += '\n';
  return out;
}

// ---- Router ----------------------------------------------------------------

namespace {

bool valid_param_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

}  // namespace

Router& Router::add(std::string method, std::string path, Handler handler, RouteOptions options) {
  if (method.empty()) throw std::invalid_argument("route " + path + ": method is empty");
  for (char& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (path.empty() || path.front() != '/') {
    throw std::invalid_argument(fmt::format("route {} {}: a path template must start with '/'", method, path));
  }
  if (!handler) throw std::invalid_argument(fmt::format("route {} {}: handler is empty", method, path));
  Route route;
  route.segments = detail::split_path(path);
  std::vector<std::string_view> param_names;
  for (std::size_t i = 0; i < route.segments.size(); ++i) {
    const std::string& seg = route.segments[i];
    if (seg.empty() && i + 1 != route.segments.size()) {
      throw std::invalid_argument(fmt::format("route {} {}: empty path segment", method, path));
    }
    if (seg.find('{') == std::string::npos && seg.find('}') == std::string::npos) continue;
    if (seg.size() < 3 || seg.front() != '{' || seg.back() != '}') {
      throw std::invalid_argument(
          fmt::format("route {} {}: segment \"{}\" must be a whole {{param}}", method, path, seg));
    }
    std::string_view name(seg.data() + 1, seg.size() - 2);
    if (name.ends_with("...")) {
      if (i + 1 != route.segments.size()) {
        throw std::invalid_argument(
            fmt::format("route {} {}: {{{}}} must be the last segment", method, path, name));
      }
      name.remove_suffix(3);
    }
    if (!valid_param_name(name)) {
      throw std::invalid_argument(fmt::format("route {} {}: bad parameter name \"{}\"", method, path, name));
    }
    // Request::param() returns the first value only, so a repeat would be lost.
    if (std::find(param_names.begin(), param_names.end(), name) != param_names.end()) {
      throw std::invalid_argument(fmt::format("route {} {}: parameter {{{}}} appears twice", method, path, name));
    }
    param_names.push_back(name);
  }
  for (const Route& existing : routes_) {
    if (existing.method == method && existing.path == path) {
      throw std::invalid_argument(fmt::format("route {} {} is defined twice", method, path));
    }
  }
  if (!options.request_schema.empty()) {
    auto schema = JsonSchema::compile(options.request_schema);
    if (!schema) {
      throw std::invalid_argument(fmt::format("route {} {}: request schema: {}", method, path, schema.error().message));
    }
    route.request_schema = std::make_shared<const JsonSchema>(std::move(schema).value());
  }
  route.method = std::move(method);
  route.path = std::move(path);
  route.handler = std::move(handler);
  route.options = std::move(options);
  routes_.push_back(std::move(route));
  return *this;
}

namespace {

// Matches one route's segments against the request's raw segments. Fills
// params (decoded) on success.
bool match_segments(const Route& route, std::span<const std::string_view> parts, PathParams& params) {
  const auto& segs = route.segments;
  params.clear();
  std::size_t i = 0;
  for (; i < segs.size(); ++i) {
    const std::string& seg = segs[i];
    const bool is_param = !seg.empty() && seg.front() == '{';
    if (is_param && seg.ends_with("...}")) {
      std::string joined;
      for (std::size_t j = i; j < parts.size(); ++j) {
        auto decoded = percent_decode(parts[j]);
        if (!decoded || decoded->find_first_of(std::string_view("/\\\0", 3)) != std::string::npos) return false;
        if (j > i) joined += '/';
        joined += *decoded;
      }
      params.emplace_back(seg.substr(1, seg.size() - 5), std::move(joined));
      return true;
    }
    if (i >= parts.size()) return false;
    if (is_param) {
      if (parts[i].empty()) return false;
      auto decoded = percent_decode(parts[i]);
      if (!decoded) return false;
      params.emplace_back(seg.substr(1, seg.size() - 2), std::move(*decoded));
    } else if (seg != parts[i]) {
      return false;
    }
  }
  return i == parts.size();
}

}  // namespace

Router::Match Router::match(std::string_view method, std::string_view path, PathParams& params) const {
  Match result;
  // Request paths rarely have more than a handful of segments: split them on
  // the stack and allocate only for unusually deep paths.
  std::array<std::string_view, 16> inline_parts;
  std::vector<std::string_view> heap_parts;
  std::size_t count = 0;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  for (std::size_t start = 0; !path.empty();) {
    const std::size_t slash = path.find('/', start);
    const std::string_view part =
        path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (count < inline_parts.size()) {
      inline_parts[count] = part;
    } else {
      if (heap_parts.empty()) heap_parts.assign(inline_parts.begin(), inline_parts.end());
      heap_parts.push_back(part);
    }
    ++count;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  const std::span<const std::string_view> parts =
      heap_parts.empty() ? std::span<const std::string_view>(inline_parts.data(), count)
                         : std::span<const std::string_view>(heap_parts);
  const bool head = method == "HEAD";
  for (std::size_t r = 0; r < routes_.size(); ++r) {
    const Route& route = routes_[r];
    const bool method_ok = route.method == "*" || route.method == method || (head && route.method == "GET");
    if (!method_ok) {
      // Only look at the path when we may need a 405.
      PathParams scratch;
      if (match_segments(route, parts, scratch)) {
        result.path_matched = true;
        if (result.allow.find(route.method) == std::string::npos) {
          if (!result.allow.empty()) result.allow += ", ";
          result.allow += route.method;
        }
      }
      continue;
    }
    if (match_segments(route, parts, params)) {
      result.route_index = static_cast<int>(r);
      return result;
    }
  }
  params.clear();
  return result;
}

std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '%') {
      out += c;
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    int hi = detail::hex_value(text[i + 1]);
    int lo = detail::hex_value(text[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

const char* status_reason(int status) noexcept {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "";
  }
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
