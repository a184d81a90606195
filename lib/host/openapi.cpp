#include "host/openapi.hpp"

#include <cctype>

#include <fmt/format.h>

#include "ordinaut/version.hpp"

namespace ordinaut::detail {

namespace {

using Allocator = Json::AllocatorType;

JsonValue text(std::string_view s, Allocator& a) {
  return JsonValue(s.data(), static_cast<rapidjson::SizeType>(s.size()), a);
}

constexpr const char* kErrorSchema = R"({
  "type": "object",
  "required": ["error", "message", "details"],
  "properties": {
    "error": {"type": "string", "description": "machine-readable code, e.g. not_found"},
    "message": {"type": "string"},
    "details": {"type": "object"}
  }
})";

constexpr const char* kHealthSchema = R"({
  "type": "object",
  "required": ["status", "timestamp", "version", "checks"],
  "properties": {
    "status": {"type": "string", "enum": ["ok", "degraded", "unavailable"]},
    "timestamp": {"type": "string"},
    "version": {"type": "string"},
    "checks": {"type": "object"}
  }
})";

// A schema text as a JSON value; a text that does not parse is described
// instead of breaking the document.
JsonValue schema_value(const std::string& schema_text, Allocator& a) {
  auto doc = json::parse(schema_text);
  if (doc) return JsonValue(*doc, a);
  JsonValue v(rapidjson::kObjectType);
  v.AddMember("description", text("schema text is not valid JSON: " + doc.error().message, a), a);
  return v;
}

JsonValue json_content(JsonValue schema, Allocator& a) {
  JsonValue media(rapidjson::kObjectType);
  media.AddMember("schema", schema, a);
  JsonValue content(rapidjson::kObjectType);
  content.AddMember("application/json", media, a);
  return content;
}

JsonValue ref(const char* target, Allocator& a) {
  JsonValue v(rapidjson::kObjectType);
  v.AddMember("$ref", text(target, a), a);
  return v;
}

JsonValue response_object(const char* description, JsonValue schema, Allocator& a) {
  JsonValue r(rapidjson::kObjectType);
  r.AddMember("description", text(description, a), a);
  if (!schema.IsNull()) r.AddMember("content", json_content(std::move(schema), a), a);
  return r;
}

// "/items/{id}" and "/files/{path...}" → OpenAPI path and its parameters.
struct PathTemplate {
  std::string path;
  JsonValue parameters{rapidjson::kArrayType};
};

PathTemplate convert_template(const std::string& mount, const Route& route, Allocator& a) {
  PathTemplate out;
  out.path = mount;
  for (const std::string& seg : route.segments) {
    out.path += '/';
    if (seg.empty() || seg.front() != '{') {
      out.path += seg;
      continue;
    }
    std::string name = seg.substr(1, seg.size() - 2);
    const bool rest = name.ends_with("...");
    if (rest) name.resize(name.size() - 3);
    out.path += '{' + name + '}';
    JsonValue p(rapidjson::kObjectType);
    p.AddMember("name", text(name, a), a);
    p.AddMember("in", "path", a);
    p.AddMember("required", true, a);
    JsonValue schema(rapidjson::kObjectType);
    schema.AddMember("type", "string", a);
    p.AddMember("schema", schema, a);
    if (rest) {
      p.AddMember("description", "the rest of the path; may contain '/'", a);
      p.AddMember("x-ordinaut-rest", true, a);
    }
    out.parameters.PushBack(p, a);
  }
  if (route.segments.empty()) out.path += '/';
  return out;
}

std::string operation_id(std::string_view id, std::string_view method, std::string_view path) {
  std::string out = std::string(id) + "_";
  for (char c : method) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (char c : path) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      out += c;
    } else if (!out.empty() && out.back() != '_') {
      out += '_';
    }
  }
  while (out.back() == '_') out.pop_back();
  return out;
}

JsonValue& path_item(JsonValue& paths, const std::string& path, Allocator& a) {
  auto it = paths.FindMember(path.c_str());
  if (it == paths.MemberEnd()) {
    paths.AddMember(text(path, a), JsonValue(rapidjson::kObjectType), a);
    it = paths.FindMember(path.c_str());
  }
  return it->value;
}

void add_operation(JsonValue& item, std::string_view method, JsonValue op, Allocator& a) {
  std::string key;
  for (char c : method) key += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static constexpr std::string_view kOpenApiMethods[] = {"get", "put", "post", "delete", "options", "head", "patch", "trace"};
  bool known = false;
  for (auto m : kOpenApiMethods) known = known || m == key;
  if (!known || item.HasMember(key.c_str())) return;  // first route wins, as in matching
  item.AddMember(text(key, a), op, a);
}

JsonValue route_operation(const OpenApiExtension& ext, const Route& route, std::string_view method,
                          const PathTemplate& path, bool require_scopes, Allocator& a) {
  JsonValue op(rapidjson::kObjectType);
  op.AddMember("operationId", text(operation_id(ext.id, method, route.path), a), a);
  op.AddMember("summary", text(route.options.summary.empty() ? std::string(method) + " " + route.path
                                                              : route.options.summary, a), a);
  JsonValue tags(rapidjson::kArrayType);
  tags.PushBack(text(ext.id, a), a);
  op.AddMember("tags", tags, a);
  if (!path.parameters.Empty()) op.AddMember("parameters", JsonValue(path.parameters, a), a);
  if (!route.options.request_schema.empty()) {
    JsonValue body(rapidjson::kObjectType);
    body.AddMember("required", true, a);
    body.AddMember("content", json_content(schema_value(route.options.request_schema, a), a), a);
    op.AddMember("requestBody", body, a);
  }
  JsonValue responses(rapidjson::kObjectType);
  JsonValue ok_schema = route.options.response_schema.empty() ? JsonValue() : schema_value(route.options.response_schema, a);
  responses.AddMember("200", response_object("success", std::move(ok_schema), a), a);
  if (!route.options.request_schema.empty()) {
    responses.AddMember("400", response_object("the body is not valid JSON or violates the request schema",
                                               ref("#/components/schemas/Error", a), a), a);
  }
  if (require_scopes) {
    responses.AddMember("403", response_object("the request lacks the extension's scope",
                                               ref("#/components/schemas/Error", a), a), a);
  }
  responses.AddMember("default", response_object("error", ref("#/components/schemas/Error", a), a), a);
  op.AddMember("responses", responses, a);
  if (require_scopes) op.AddMember("x-ordinaut-scope", text("ext:" + ext.id + ":routes", a), a);
  return op;
}

JsonValue simple_get(std::string_view operation, std::string_view summary, const char* schema_ref,
                     std::string_view tag, Allocator& a) {
  JsonValue op(rapidjson::kObjectType);
  op.AddMember("operationId", text(operation, a), a);
  op.AddMember("summary", text(summary, a), a);
  if (!tag.empty()) {
    JsonValue tags(rapidjson::kArrayType);
    tags.PushBack(text(tag, a), a);
    op.AddMember("tags", tags, a);
  }
  JsonValue responses(rapidjson::kObjectType);
  JsonValue schema = schema_ref ? ref(schema_ref, a) : JsonValue(rapidjson::kObjectType);
  responses.AddMember("200", response_object("success", std::move(schema), a), a);
  responses.AddMember("default", response_object("error", ref("#/components/schemas/Error", a), a), a);
  op.AddMember("responses", responses, a);
  return op;
}

// POST /ext/_admin/extensions/{id}/{action}: run-time management.
JsonValue admin_post(std::string_view action, std::string_view summary, bool require_scopes, Allocator& a) {
  JsonValue op(rapidjson::kObjectType);
  op.AddMember("operationId", text(fmt::format("admin_{}", action), a), a);
  op.AddMember("summary", text(summary, a), a);
  JsonValue tags(rapidjson::kArrayType);
  tags.PushBack("_admin", a);
  op.AddMember("tags", tags, a);
  JsonValue parameters(rapidjson::kArrayType);
  JsonValue p(rapidjson::kObjectType);
  p.AddMember("name", "id", a);
  p.AddMember("in", "path", a);
  p.AddMember("required", true, a);
  p.AddMember("description", "a discovered extension's id", a);
  JsonValue schema(rapidjson::kObjectType);
  schema.AddMember("type", "string", a);
  p.AddMember("schema", schema, a);
  parameters.PushBack(p, a);
  op.AddMember("parameters", parameters, a);
  JsonValue responses(rapidjson::kObjectType);
  responses.AddMember("200", response_object("done: the extension's id, state and reason", JsonValue(rapidjson::kObjectType), a), a);
  if (require_scopes) {
    responses.AddMember("403", response_object("the request lacks scope ext:admin", ref("#/components/schemas/Error", a), a), a);
  }
  responses.AddMember("404", response_object("no such extension", ref("#/components/schemas/Error", a), a), a);
  responses.AddMember("409", response_object("the extension could not be brought to that state", ref("#/components/schemas/Error", a), a), a);
  if (action == "reload") {
    responses.AddMember("422", response_object("the manifest on disk is invalid (file, pointer)",
                                               ref("#/components/schemas/Error", a), a), a);
  }
  responses.AddMember("405", response_object("any method but POST", ref("#/components/schemas/Error", a), a), a);
  responses.AddMember("default", response_object("error", ref("#/components/schemas/Error", a), a), a);
  op.AddMember("responses", responses, a);
  if (require_scopes) op.AddMember("x-ordinaut-scope", "ext:admin", a);
  return op;
}

}  // namespace

Json openapi_document(const std::vector<OpenApiExtension>& extensions, bool require_scopes) {
  Json doc = json::object();
  auto& a = doc.GetAllocator();
  doc.AddMember("openapi", "3.1.0", a);
  JsonValue info(rapidjson::kObjectType);
  info.AddMember("title", "Ordinaut extension host", a);
  info.AddMember("version", text(library_version(), a), a);
  info.AddMember("description",
                 "Routes mounted by the extensions loaded now. A lazy extension's routes appear once it has "
                 "loaded (its first request); until then only its health is listed.",
                 a);
  doc.AddMember("info", info, a);

  JsonValue paths(rapidjson::kObjectType);
  add_operation(path_item(paths, "/ext/status", a), "GET",
                simple_get("host_status", "Discovered extensions: state, grants, load time, metrics", nullptr, "", a),
                a);
  add_operation(path_item(paths, "/ext/openapi.json", a), "GET",
                simple_get("host_openapi", "This document", nullptr, "", a), a);
  add_operation(path_item(paths, "/ext/_admin/extensions/{id}/enable", a), "POST",
                admin_post("enable", "Enable an extension (it loads as its manifest says: eager now, lazy on use)",
                           require_scopes, a),
                a);
  add_operation(path_item(paths, "/ext/_admin/extensions/{id}/disable", a), "POST",
                admin_post("disable", "Disable an extension: stop it and refuse its routes with 503", require_scopes, a),
                a);
  add_operation(path_item(paths, "/ext/_admin/extensions/{id}/reload", a), "POST",
                admin_post("reload", "Reload an extension: stop it, re-read its manifest, load it again",
                           require_scopes, a),
                a);

  JsonValue tags(rapidjson::kArrayType);
  for (const OpenApiExtension& ext : extensions) {
    JsonValue tag(rapidjson::kObjectType);
    tag.AddMember("name", text(ext.id, a), a);
    tag.AddMember("description", text(ext.name.empty() ? ext.description : ext.name + ": " + ext.description, a), a);
    tag.AddMember("x-ordinaut-state", text(ext.state, a), a);
    if (!ext.version.empty()) tag.AddMember("x-ordinaut-version", text(ext.version, a), a);
    tags.PushBack(tag, a);

    const std::string mount = "/ext/" + ext.id;
    if (!ext.has_health_route) {
      add_operation(path_item(paths, mount + "/health", a), "GET",
                    simple_get(ext.id + "_health", "Health of " + ext.id, "#/components/schemas/Health", ext.id, a),
                    a);
    }
    if (ext.router == nullptr) continue;
    for (const Route& route : ext.router->routes()) {
      PathTemplate path = convert_template(mount, route, a);
      JsonValue& item = path_item(paths, path.path, a);
      if (route.method == "*") {
        for (const char* m : {"GET", "POST", "PUT", "PATCH", "DELETE"}) {
          add_operation(item, m, route_operation(ext, route, m, path, require_scopes, a), a);
        }
      } else {
        add_operation(item, route.method, route_operation(ext, route, route.method, path, require_scopes, a), a);
      }
    }
  }
  doc.AddMember("paths", paths, a);
  doc.AddMember("tags", tags, a);

  JsonValue schemas(rapidjson::kObjectType);
  schemas.AddMember("Error", schema_value(kErrorSchema, a), a);
  schemas.AddMember("Health", schema_value(kHealthSchema, a), a);
  JsonValue components(rapidjson::kObjectType);
  components.AddMember("schemas", schemas, a);
  doc.AddMember("components", components, a);
  return doc;
}

}  // namespace ordinaut::detail
