// AdminEndpoints (admin.hpp).
#include "host/admin.hpp"

#include <fmt/format.h>

#include "core/strings.hpp"
#include "host/gate.hpp"
#include "ordinaut/json.hpp"

namespace ordinaut::detail {

Response AdminEndpoints::handle(Request& request, std::string_view rest) {
  static constexpr std::string_view kUsage = "POST /ext/_admin/extensions/{id}/enable|disable|reload";
  const std::string remote = json::escape(request.remote_addr);
  if (services_.require_scopes) {
    auto scopes = services_.scopes_of(request);
    if (!scope_allows(scopes, "ext:admin")) {
      services_.logger.audit("admin_denied", fmt::format("{} {} without scope ext:admin", request.method, request.path),
                             fmt::format(R"({{"required_scope":"ext:admin","remote":"{}"}})", remote));
      return scope_refusal(services_, "ext:admin");
    }
  }
  auto parts = split_path_view(rest);
  if (parts.size() != 3 || parts[0] != "extensions" ||
      (parts[2] != "enable" && parts[2] != "disable" && parts[2] != "reload")) {
    return Response::error(
        404, "not_found",
        fmt::format("no admin endpoint {}; use {}", json::escape(request.path.substr(0, 200)), kUsage));
  }
  const std::string_view action = parts[2];
  if (request.method != "POST") {
    Response r = Response::error(405, "method_not_allowed",
                                 fmt::format("{} is not allowed on {}; use POST", request.method, request.path));
    r.headers.set("Allow", "POST");
    return r;
  }
  Entry* found = catalog_.find(parts[1]);
  if (found == nullptr) {
    std::string shown(parts[1].substr(0, 80));
    return Response::error(404, "not_found", fmt::format("no extension '{}' is discovered", json::escape(shown)),
                           fmt::format(R"({{"extension":"{}"}})", json::escape(shown)));
  }
  Entry& entry = *found;
  const std::string actor =
      fmt::format("the admin API (from {})", request.remote_addr.empty() ? "in-process" : request.remote_addr);
  Result<void> result = action == "enable"    ? lifecycle_.enable(entry, actor)
                        : action == "disable" ? lifecycle_.disable(entry, actor)
                                              : lifecycle_.reload(entry, actor);
  const ExtensionState state = entry.state.load();
  std::string reason, last_error, phase;
  {
    std::lock_guard lock(entry.info_mutex);
    reason = entry.state_reason;
    last_error = entry.last_error;
    phase = entry.error_phase;
  }
  services_.logger.audit(
      "admin_action",
      fmt::format("{} of extension '{}' {}", action, entry.id, result ? "done" : "failed: " + result.error().message),
      fmt::format(R"({{"action":"{}","extension":"{}","remote":"{}","ok":{},"code":"{}","state":"{}"}})", action,
                  entry.id, remote, result.ok(), result ? "" : json::escape(result.error().code), to_string(state)));
  if (!result) {
    const Error& e = result.error();
    int status = 409;  // the extension could not be brought to the state asked for
    if (e.code == "invalid_json" || e.code == "invalid_manifest" || e.code == "unreadable_manifest" ||
        e.code == "manifest_too_large") {
      status = 422;
    }
    return Response::error(
        status, e.code, e.message,
        fmt::format(R"({{"extension":"{}","action":"{}","state":"{}","file":"{}","pointer":"{}"}})", entry.id, action,
                    to_string(state), json::escape(e.file), json::escape(e.pointer)));
  }
  Json doc = json::object();
  auto& a = doc.GetAllocator();
  doc.AddMember("extension", JsonValue(entry.id.c_str(), a), a);
  doc.AddMember("action", JsonValue(std::string(action).c_str(), a), a);
  doc.AddMember("state", JsonValue(to_string(state), a), a);
  doc.AddMember("reason", reason.empty() ? JsonValue(rapidjson::kNullType) : JsonValue(reason.c_str(), a), a);
  doc.AddMember("last_error", last_error.empty() ? JsonValue(rapidjson::kNullType) : JsonValue(last_error.c_str(), a),
                a);
  doc.AddMember("error_phase", phase.empty() ? JsonValue(rapidjson::kNullType) : JsonValue(phase.c_str(), a), a);
  return Response::json(200, doc);
}

}  // namespace ordinaut::detail
