// The REST companion of mcp_http, for clients that do not speak MCP:
//   GET  /tools                 every tool the request may use, with schemas
//   GET  /tools/{name}/schema   one tool's input and output schema
//   POST /invoke                {"tool": name, "parameters": {...}} → {"tool", "result"}
//   GET  /resources             every static resource the request may read
//   GET  /resources/templates   every resource template it may use
//   POST /read                  {"uri"} → {"uri", "contents": [MCP contents]}
//   GET  /prompts               every prompt it may get, with arguments
//   POST /prompt                {"prompt": name, "arguments": {..}} → {"prompt", "result": GetPromptResult}
//   POST /complete              MCP completion/complete params → {"completion": {values, total, hasMore}}
// Errors use the project's shape {"error", "message", "details"}: 404 unknown
// tool, resource or prompt, 400 invalid input (details.pointer names the
// offending value for tools), 403 missing tool/resource/prompt scope, 503 a
// declared extension that did not load, 500 when the tool, read or prompt
// itself fails (details.code: the extension's error code).
#include <fmt/format.h>

#include "mcp_server.hpp"

namespace ordinaut::mcp_http {

namespace {

std::string tool_json(const ToolInfo& info, std::string_view mcp_name) {
  std::string out = R"({"name":)" + quote(info.name);
  out += R"(,"mcp_name":)" + quote(mcp_name);
  out += R"(,"title":)" + quote(info.title);
  out += R"(,"description":)" + quote(info.description);
  out += R"(,"owner":)" + quote(info.owner);
  out += R"(,"input_schema":)" + (info.input_schema ? json::dump(*info.input_schema) : std::string("{}"));
  out += R"(,"output_schema":)" + (info.output_schema ? json::dump(*info.output_schema) : std::string("null"));
  out += R"(,"annotations":)" + (info.annotations ? json::dump(*info.annotations) : std::string("null"));
  out += R"(,"declared":)" + std::string(info.declared ? "true" : "false");
  out += '}';
  return out;
}

Response forbidden_tool(std::string_view name) {
  return Response::error(403, "forbidden", fmt::format("tool {} needs scope tool:{} (or a matching tool:<prefix>*)", name, name),
                         fmt::format(R"({{"tool":{},"required_scope":{}}})", quote(name), quote("tool:" + std::string(name))));
}

// The HTTP status and error code of a failed tool call (see ToolError).
std::pair<int, const char*> tool_error_status(std::string_view code) {
  if (code == "invalid_input" || code == "bad_request") return {400, "bad_request"};
  if (code == "forbidden") return {403, "forbidden"};
  if (code == "not_found") return {404, "not_found"};
  if (code == "conflict") return {409, "conflict"};
  if (code == "rate_limit_exceeded") return {429, "rate_limit_exceeded"};
  if (code == "unavailable" || code == "extension_unavailable") return {503, "unavailable"};
  return {500, "tool_failed"};
}

Response unknown_tool(std::string_view name) {
  return Response::error(404, "not_found", fmt::format("no tool named {}", name),
                         fmt::format(R"({{"tool":{}}})", quote(name)));
}

}  // namespace

Response McpServer::rest_tools(Request& request) {
  if (auto refused = refuse_rebinding(request, false)) return std::move(*refused);
  const Access access = Access::of(request, scopes_enforced_);
  auto snap = catalog_.snapshot();
  std::string out = R"({"tools":[)";
  std::size_t count = 0;
  for (const auto& info : tools_.list()) {
    if (!access.tool_allowed(info.name)) continue;
    const CatalogTool* t = snap->find(info.name);
    if (count++) out += ',';
    out += tool_json(info, t ? t->mcp_name : info.name);
  }
  out += fmt::format(R"(],"count":{}}})", count);
  Response response = Response::json_text(200, std::move(out));
  add_cors(request, response);
  return response;
}

Response McpServer::rest_schema(Request& request) {
  if (auto refused = refuse_rebinding(request, false)) return std::move(*refused);
  const std::string requested(request.param("name"));
  auto snap = catalog_.snapshot();
  const CatalogTool* t = snap->find(requested);
  const std::string name = t ? t->registry_name : requested;
  if (!Access::of(request, scopes_enforced_).tool_allowed(name)) return forbidden_tool(name);
  auto info = tools_.get(name);
  if (!info) return unknown_tool(requested);
  Response response = Response::json_text(
      200, fmt::format(R"({{"name":{},"input_schema":{},"output_schema":{}}})", quote(info->name),
                       info->input_schema ? json::dump(*info->input_schema) : std::string("{}"),
                       info->output_schema ? json::dump(*info->output_schema) : std::string("null")));
  add_cors(request, response);
  return response;
}

Response McpServer::rest_invoke(Request& request) {
  if (auto refused = refuse_rebinding(request, false)) return std::move(*refused);
  auto body = request.json();  // shape already checked by the route's request schema
  if (!body || !body->IsObject() || !body->HasMember("tool") || !(*body)["tool"].IsString()) {
    return Response::error(400, "bad_request", "body must be {\"tool\": name, \"parameters\": {...}}");
  }
  const std::string requested = (*body)["tool"].GetString();
  auto snap = catalog_.snapshot();
  const CatalogTool* t = snap->find(requested);
  const std::string name = t ? t->registry_name : requested;
  if (!Access::of(request, scopes_enforced_).tool_allowed(name)) return forbidden_tool(name);
  static const JsonValue kEmpty(rapidjson::kObjectType);
  const JsonValue& parameters = body->HasMember("parameters") ? (*body)["parameters"] : kEmpty;
  Result<Json> result = tools_.call(name, parameters);
  if (!result) {
    if (result.error().code == "tool_not_found") return unknown_tool(requested);
    const auto [status, code] = tool_error_status(result.error().code);
    Error e = result.error();
    json::add_detail(e, "tool", name);
    return Response::error(status, code, e);
  }
  Response response =
      Response::json_text(200, fmt::format(R"({{"tool":{},"result":{}}})", quote(name), json::dump(result.value())));
  add_cors(request, response);
  return response;
}

// ---- resources and prompts (resources_prompts.cpp does the work) -------------

namespace {

// The body was checked against the route's request schema; still, never trust it.
const JsonValue& body_object(const Request& request, Json& holder) {
  static const JsonValue kEmpty(rapidjson::kObjectType);
  auto body = request.json();
  if (!body || !body->IsObject()) return kEmpty;
  holder = std::move(body).value();
  return holder;
}

}  // namespace

Response McpServer::rest_content(Request& request, const std::function<Response(const Access&)>& handler) {
  if (auto refused = refuse_rebinding(request, false)) return std::move(*refused);
  Response response = handler(Access::of(request, scopes_enforced_));
  add_cors(request, response);
  return response;
}

Response McpServer::rest_resources(Request& request) {
  return rest_content(request, [&](const Access& access) { return content_->rest_resources(access); });
}

Response McpServer::rest_templates(Request& request) {
  return rest_content(request, [&](const Access& access) { return content_->rest_templates(access); });
}

Response McpServer::rest_read(Request& request) {
  Json holder;
  const JsonValue& body = body_object(request, holder);
  return rest_content(request, [&](const Access& access) { return content_->rest_read(body, access); });
}

Response McpServer::rest_prompts(Request& request) {
  return rest_content(request, [&](const Access& access) { return content_->rest_prompts(access); });
}

Response McpServer::rest_prompt(Request& request) {
  Json holder;
  const JsonValue& body = body_object(request, holder);
  return rest_content(request, [&](const Access& access) { return content_->rest_prompt(body, access); });
}

Response McpServer::rest_complete(Request& request) {
  Json holder;
  const JsonValue& body = body_object(request, holder);
  return rest_content(request, [&](const Access& access) { return content_->rest_complete(body, access); });
}

}  // namespace ordinaut::mcp_http
