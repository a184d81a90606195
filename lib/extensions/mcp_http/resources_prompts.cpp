#include "resources_prompts.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "protocol.hpp"
#include "tool_catalog.hpp"

namespace ordinaut::mcp_http {

namespace {

const JsonValue* member(const JsonValue* object, const char* name) {
  if (object == nullptr || !object->IsObject()) return nullptr;
  auto it = object->FindMember(name);
  return it == object->MemberEnd() ? nullptr : &it->value;
}

std::string text_of(const JsonValue& v) { return std::string(v.GetString(), v.GetStringLength()); }

Failure invalid(std::string message) { return Failure{kInvalidParams, 400, "bad_request", std::move(message), {}}; }

// Like a tool without its scope: -32602 naming the scope, REST 403.
Failure forbidden(std::string_view what, std::string_view key, std::string_view name, std::string_view scope_kind) {
  const std::string scope = fmt::format("{}:{}", scope_kind, name);
  return Failure{kInvalidParams, 403, "forbidden",
                 fmt::format("{} {} is not permitted: the request lacks scope {} (or a matching {}:<prefix>*)", what,
                             name, scope, scope_kind),
                 fmt::format(R"({{"{}":{},"required_scope":{}}})", key, quote(name), quote(scope))};
}

// A registry error; `failed` is the REST error name for the operation's own failures.
Failure from_registry(const Error& e, std::string_view key, std::string_view value, std::string_view failed) {
  const std::string data = fmt::format(R"({{"{}":{}}})", key, quote(value));
  const std::string data_code = fmt::format(R"({{"{}":{},"code":{}}})", key, quote(value), quote(e.code));
  if (e.code == "resource_not_found") {
    return Failure{kResourceNotFound, 404, "not_found", fmt::format("Resource not found: {}", value), data};
  }
  if (e.code == "prompt_not_found") {
    return Failure{kInvalidParams, 404, "not_found", fmt::format("Unknown prompt: {}", value), data};
  }
  if (e.code == "invalid_arguments" || e.code == "invalid_params") {
    return Failure{kInvalidParams, 400, "bad_request", "Invalid params: " + e.message, data_code};
  }
  if (e.code == "extension_unavailable") {
    return Failure{kInternalError, 503, "extension_unavailable", e.message, data_code};
  }
  return Failure{kInternalError, 500, std::string(failed), e.message, data_code};
}

RpcOutcome to_rpc(const Failure& f) { return RpcOutcome{f.rpc_code, f.message, f.data_json, {}}; }
RpcOutcome to_rpc_result(std::string result) { return RpcOutcome{0, {}, {}, std::move(result)}; }

Response to_rest(const Failure& f) {
  return Response::error(f.http_status, f.error, f.message, f.data_json.empty() ? "{}" : f.data_json);
}

/// A {name: string} object of arguments (absent or null: none).
std::optional<Failure> string_map(const JsonValue* object, const char* what, StringMap& out) {
  if (object == nullptr || object->IsNull()) return std::nullopt;
  if (!object->IsObject()) {
    return invalid(fmt::format("Invalid params: {} must be an object, got {}", what, json::type_name(*object)));
  }
  for (const auto& m : object->GetObject()) {
    if (!m.value.IsString()) {
      return invalid(fmt::format("Invalid params: {}.{} must be a string, got {}", what, text_of(m.name),
                                 json::type_name(m.value)));
    }
    out.emplace(text_of(m.name), text_of(m.value));
  }
  return std::nullopt;
}

/// params.cursor: nullopt when absent; "after" the last key of the previous page.
std::optional<Failure> read_cursor(const JsonValue* params, std::string_view method,
                                   std::optional<std::string>& after) {
  const JsonValue* cursor = member(params, "cursor");
  if (cursor == nullptr || cursor->IsNull()) return std::nullopt;
  std::optional<std::string> decoded;
  if (cursor->IsString()) decoded = base64url_decode(text_of(*cursor));
  if (!decoded || !decoded->starts_with("after:")) {
    return invalid(fmt::format("Invalid params: unknown cursor (use the nextCursor of an earlier {})", method));
  }
  after = decoded->substr(6);
  return std::nullopt;
}

/// One page of `items` (sorted by key) as {"<list>":[...], "nextCursor"?}.
template <class T, class Key, class Allowed, class ToJson>
std::string page(std::string_view list, const std::vector<T>& items, const std::optional<std::string>& after,
                 std::size_t page_size, Key key, Allowed allowed, ToJson to_json) {
  std::string out = fmt::format(R"({{"{}":[)", list);
  std::size_t count = 0;
  std::string last;
  bool more = false;
  for (const T& item : items) {
    if (after && !(key(item) > *after)) continue;
    if (!allowed(item)) continue;
    if (count == page_size) {
      more = true;
      break;
    }
    if (count++) out += ',';
    out += to_json(item);
    last = key(item);
  }
  out += ']';
  if (more) out += R"(,"nextCursor":)" + quote(base64url_encode("after:" + last));
  out += '}';
  return out;
}

std::vector<ResourceInfo> sorted(std::vector<ResourceInfo> infos) {
  std::sort(infos.begin(), infos.end(), [](const ResourceInfo& a, const ResourceInfo& b) { return a.uri < b.uri; });
  return infos;
}

std::string updated_message(std::string_view uri) {
  return notification_message("notifications/resources/updated", R"({"uri":)" + quote(uri) + "}");
}

// REST listing entries: the registry's fields, snake_case like GET /tools.
std::string rest_resource_json(const ResourceInfo& info) {
  return fmt::format(R"({{"{}":{},"name":{},"title":{},"description":{},"mime_type":{},"owner":{},"declared":{}}})",
                     info.template_ ? "uri_template" : "uri", quote(info.uri), quote(info.name), quote(info.title),
                     quote(info.description), quote(info.mime_type), quote(info.owner),
                     info.declared ? "true" : "false");
}

}  // namespace

const CatalogPrompt* PromptSnapshot::find(std::string_view name) const {
  const std::string key(name);
  if (auto it = by_mcp_name.find(key); it != by_mcp_name.end()) return &prompts[it->second];
  if (auto it = by_registry_name.find(key); it != by_registry_name.end()) return &prompts[it->second];
  return nullptr;
}

ResourcesPrompts::ResourcesPrompts(ResourceView resources, PromptView prompts, const Config& config)
    : resources_(resources), prompts_(prompts), config_(config) {}

ResourcesPrompts::~ResourcesPrompts() { stop(); }

void ResourcesPrompts::start(std::function<void(const std::string&)> broadcast) {
  if (listening_) return;
  // Listeners run on whatever thread changed a registry: they only queue.
  static const std::string kResources = notification_message("notifications/resources/list_changed");
  static const std::string kPrompts = notification_message("notifications/prompts/list_changed");
  resource_listener_ = resources_.on_change([broadcast] { broadcast(kResources); });
  prompt_listener_ = prompts_.on_change([broadcast] { broadcast(kPrompts); });
  listening_ = true;
}

void ResourcesPrompts::stop() {
  if (listening_) {
    resources_.remove_listener(resource_listener_);
    prompts_.remove_listener(prompt_listener_);
    listening_ = false;
  }
  std::vector<std::uint64_t> ids;
  {
    std::lock_guard lock(mutex_);
    for (auto& [session, uris] : subscriptions_) {
      for (auto& [uri, id] : uris) ids.push_back(id);
    }
    subscriptions_.clear();
  }
  for (auto id : ids) resources_.unsubscribe(id);
}

std::size_t ResourcesPrompts::subscription_count() const {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const auto& [session, uris] : subscriptions_) n += uris.size();
  return n;
}

std::optional<RpcOutcome> ResourcesPrompts::handle(std::string_view method, const JsonValue* params,
                                                   const std::shared_ptr<Session>& session, const Access& access) {
  if (method == "resources/list") return list_resources(params, access);
  if (method == "resources/templates/list") return list_templates(params, access);
  if (method == "resources/read") return read(params, access);
  if (method == "resources/subscribe") return subscribe(params, session, access);
  if (method == "resources/unsubscribe") return unsubscribe(params, session);
  if (method == "prompts/list") return list_prompts(params, access);
  if (method == "prompts/get") return get_prompt(params, access);
  if (method == "completion/complete") return complete(params, access);
  return std::nullopt;
}

// ---- names -------------------------------------------------------------------

std::shared_ptr<const PromptSnapshot> ResourcesPrompts::prompt_snapshot() const {
  const std::uint64_t generation = prompts_.generation();
  {
    std::lock_guard lock(mutex_);
    if (prompt_cache_ && prompt_cache_->generation == generation) return prompt_cache_;
  }
  auto snap = std::make_shared<PromptSnapshot>();
  snap->generation = generation;  // read before listing: a change meanwhile rebuilds next time
  std::vector<PromptInfo> infos = prompts_.list();
  std::vector<std::pair<std::string, std::string>> entries;
  entries.reserve(infos.size());
  for (const auto& info : infos) entries.emplace_back(info.name, info.owner);
  const std::vector<std::string> names = mcp_names(entries, config_);
  for (std::size_t i = 0; i < infos.size(); ++i) {
    CatalogPrompt p;
    p.mcp_name = names[i];
    p.registry_name = infos[i].name;
    PromptInfo listed = infos[i];
    listed.name = p.mcp_name;
    p.json = json::dump(to_json(listed));
    p.info = std::move(infos[i]);
    snap->prompts.push_back(std::move(p));
  }
  std::sort(snap->prompts.begin(), snap->prompts.end(),
            [](const CatalogPrompt& a, const CatalogPrompt& b) { return a.mcp_name < b.mcp_name; });
  for (std::size_t i = 0; i < snap->prompts.size(); ++i) {
    snap->by_mcp_name.emplace(snap->prompts[i].mcp_name, i);
    snap->by_registry_name.emplace(snap->prompts[i].registry_name, i);
  }
  std::lock_guard lock(mutex_);
  if (!prompt_cache_ || prompt_cache_->generation <= generation) prompt_cache_ = snap;
  return snap;
}

std::optional<Failure> ResourcesPrompts::resolve_prompt(const std::string& requested,
                                                        std::string& registry_name) const {
  auto snap = prompt_snapshot();
  const CatalogPrompt* p = snap->find(requested);
  if (p == nullptr && !requested.starts_with("ext.")) {
    return Failure{kInvalidParams, 404, "not_found", "Unknown prompt: " + requested,
                   fmt::format(R"({{"prompt":{}}})", quote(requested))};
  }
  registry_name = p ? p->registry_name : requested;
  return std::nullopt;
}

bool ResourcesPrompts::resource_exists(std::string_view uri) const {
  for (const auto& info : resources_.list()) {
    if (info.uri == uri) return true;
  }
  for (const auto& info : resources_.list_templates()) {
    if (match_uri_template(info.uri, uri)) return true;
  }
  return false;
}

// ---- the operations, shared by MCP and REST ----------------------------------------

namespace {

// REQUIRES: the caller checked the scope.
std::optional<Failure> read_contents(const ResourceView& resources, const std::string& uri, std::string& contents) {
  auto result = resources.read(uri);
  if (!result) return from_registry(result.error(), "uri", uri, "read_failed");
  contents = "[";
  bool first = true;
  for (const ResourceContents& c : *result) {
    if (!first) contents += ',';
    first = false;
    contents += json::dump(to_json(c));
  }
  contents += ']';
  return std::nullopt;
}

}  // namespace

RpcOutcome ResourcesPrompts::list_resources(const JsonValue* params, const Access& access) const {
  std::optional<std::string> after;
  if (auto f = read_cursor(params, "resources/list", after)) return to_rpc(*f);
  return to_rpc_result(page(
      "resources", sorted(resources_.list()), after, config_.page_size, [](const ResourceInfo& r) { return r.uri; },
      [&](const ResourceInfo& r) { return access.resource_allowed(r.uri); },
      [](const ResourceInfo& r) { return json::dump(to_json(r)); }));
}

RpcOutcome ResourcesPrompts::list_templates(const JsonValue* params, const Access& access) const {
  std::optional<std::string> after;
  if (auto f = read_cursor(params, "resources/templates/list", after)) return to_rpc(*f);
  return to_rpc_result(page(
      "resourceTemplates", sorted(resources_.list_templates()), after, config_.page_size,
      [](const ResourceInfo& r) { return r.uri; }, [&](const ResourceInfo& r) { return access.template_allowed(r.uri); },
      [](const ResourceInfo& r) { return json::dump(to_json(r)); }));
}

RpcOutcome ResourcesPrompts::list_prompts(const JsonValue* params, const Access& access) const {
  std::optional<std::string> after;
  if (auto f = read_cursor(params, "prompts/list", after)) return to_rpc(*f);
  auto snap = prompt_snapshot();
  return to_rpc_result(page(
      "prompts", snap->prompts, after, config_.page_size, [](const CatalogPrompt& p) { return p.mcp_name; },
      [&](const CatalogPrompt& p) { return access.prompt_allowed(p.registry_name); },
      [](const CatalogPrompt& p) { return p.json; }));
}

RpcOutcome ResourcesPrompts::read(const JsonValue* params, const Access& access) const {
  const JsonValue* uri = member(params, "uri");
  if (uri == nullptr || !uri->IsString()) return to_rpc(invalid("Invalid params: uri must be a string"));
  const std::string u = text_of(*uri);
  if (!access.resource_allowed(u)) return to_rpc(forbidden("Resource", "uri", u, "resource"));
  std::string contents;
  if (auto f = read_contents(resources_, u, contents)) return to_rpc(*f);
  return to_rpc_result(R"({"contents":)" + contents + "}");
}

RpcOutcome ResourcesPrompts::subscribe(const JsonValue* params, const std::shared_ptr<Session>& session,
                                       const Access& access) {
  const JsonValue* uri = member(params, "uri");
  if (uri == nullptr || !uri->IsString()) return to_rpc(invalid("Invalid params: uri must be a string"));
  const std::string u = text_of(*uri);
  if (!access.resource_allowed(u)) return to_rpc(forbidden("Resource", "uri", u, "resource"));
  if (!resource_exists(u)) {
    return RpcOutcome{kResourceNotFound, "Resource not found: " + u, fmt::format(R"({{"uri":{}}})", quote(u)), {}};
  }
  bool new_session = false;
  {
    std::lock_guard lock(mutex_);
    auto it = subscriptions_.find(session->id());
    if (it == subscriptions_.end()) {
      it = subscriptions_.emplace(session->id(), decltype(subscriptions_)::mapped_type{}).first;
      new_session = true;
    }
    auto& uris = it->second;
    if (uris.find(u) == uris.end()) {
      if (uris.size() >= kMaxSubscriptions) {
        return to_rpc(invalid(fmt::format("Invalid params: a session holds at most {} resource subscriptions",
                                          kMaxSubscriptions)));
      }
      std::weak_ptr<Session> weak = session;
      // Runs on the notifying thread: it only queues the notification.
      uris.emplace(u, resources_.subscribe(u, [weak](std::string_view updated) {
        if (auto s = weak.lock()) s->notify(updated_message(updated));
      }));
    }
  }
  if (new_session) {
    // At once when the session already ended meanwhile.
    session->on_close([weak = weak_from_this(), id = session->id()] {
      if (auto self = weak.lock()) self->drop_session(id);
    });
  }
  return to_rpc_result("{}");
}

RpcOutcome ResourcesPrompts::unsubscribe(const JsonValue* params, const std::shared_ptr<Session>& session) {
  const JsonValue* uri = member(params, "uri");
  if (uri == nullptr || !uri->IsString()) return to_rpc(invalid("Invalid params: uri must be a string"));
  std::optional<std::uint64_t> id;
  {
    std::lock_guard lock(mutex_);
    if (auto it = subscriptions_.find(session->id()); it != subscriptions_.end()) {
      if (auto sub = it->second.find(std::string_view(uri->GetString(), uri->GetStringLength()));
          sub != it->second.end()) {
        id = sub->second;
        it->second.erase(sub);
      }
    }
  }
  if (id) resources_.unsubscribe(*id);
  return to_rpc_result("{}");
}

void ResourcesPrompts::drop_session(const std::string& session_id) {
  std::vector<std::uint64_t> ids;
  {
    std::lock_guard lock(mutex_);
    auto it = subscriptions_.find(session_id);
    if (it == subscriptions_.end()) return;
    for (auto& [uri, id] : it->second) ids.push_back(id);
    subscriptions_.erase(it);
  }
  for (auto id : ids) resources_.unsubscribe(id);
}

std::optional<Failure> ResourcesPrompts::do_get_prompt(const JsonValue* name, const JsonValue* arguments,
                                                       const Access& access, std::string& registry_name,
                                                       std::string& result) const {
  if (name == nullptr || !name->IsString()) return invalid("Invalid params: name must be a string");
  StringMap args;
  if (auto f = string_map(arguments, "arguments", args)) return f;
  const std::string requested = text_of(*name);
  if (auto f = resolve_prompt(requested, registry_name)) return f;
  if (!access.prompt_allowed(registry_name)) return forbidden("Prompt", "prompt", registry_name, "prompt");
  auto got = prompts_.get(registry_name, args);
  if (!got) return from_registry(got.error(), "prompt", requested, "prompt_failed");
  result = json::dump(to_json(*got));
  return std::nullopt;
}

RpcOutcome ResourcesPrompts::get_prompt(const JsonValue* params, const Access& access) const {
  std::string registry_name;
  std::string result;
  if (auto f = do_get_prompt(member(params, "name"), member(params, "arguments"), access, registry_name, result)) {
    return to_rpc(*f);
  }
  return to_rpc_result(std::move(result));
}

std::optional<Failure> ResourcesPrompts::do_complete(const JsonValue* params, const Access& access,
                                                     std::string& out) const {
  const JsonValue* ref = member(params, "ref");
  const JsonValue* type = member(ref, "type");
  const JsonValue* argument = member(params, "argument");
  const JsonValue* arg_name = member(argument, "name");
  const JsonValue* arg_value = member(argument, "value");
  if (type == nullptr || !type->IsString()) {
    return invalid(R"(Invalid params: ref must be {"type": "ref/prompt", "name"} or {"type": "ref/resource", "uri"})");
  }
  if (arg_name == nullptr || !arg_name->IsString() || arg_value == nullptr || !arg_value->IsString()) {
    return invalid(R"(Invalid params: argument must be {"name": string, "value": string})");
  }
  StringMap context;
  if (auto f = string_map(member(member(params, "context"), "arguments"), "context.arguments", context)) return f;
  const std::string kind = text_of(*type);
  const std::string a = text_of(*arg_name);
  const std::string v = text_of(*arg_value);
  if (kind == "ref/prompt") {
    const JsonValue* name = member(ref, "name");
    if (name == nullptr || !name->IsString()) return invalid("Invalid params: ref.name must be a string");
    const std::string requested = text_of(*name);
    std::string registry_name;
    if (auto f = resolve_prompt(requested, registry_name)) return f;
    if (!access.prompt_allowed(registry_name)) return forbidden("Prompt", "prompt", registry_name, "prompt");
    auto result = prompts_.complete(registry_name, a, v, context);
    if (!result) return from_registry(result.error(), "prompt", requested, "completion_failed");
    out = json::dump(to_json(*result));
    return std::nullopt;
  }
  if (kind == "ref/resource") {
    const JsonValue* uri = member(ref, "uri");
    if (uri == nullptr || !uri->IsString()) return invalid("Invalid params: ref.uri must be a string");
    const std::string u = text_of(*uri);
    if (!access.template_allowed(u)) return forbidden("Resource template", "uri", u, "resource");
    auto result = resources_.complete(u, a, v, context);
    if (!result) return from_registry(result.error(), "uri", u, "completion_failed");
    out = json::dump(to_json(*result));
    return std::nullopt;
  }
  return invalid(fmt::format("Invalid params: ref.type must be ref/prompt or ref/resource, got {}", kind));
}

RpcOutcome ResourcesPrompts::complete(const JsonValue* params, const Access& access) const {
  std::string result;
  if (auto f = do_complete(params, access, result)) return to_rpc(*f);
  return to_rpc_result(std::move(result));
}

// ---- REST -----------------------------------------------------------------------

Response ResourcesPrompts::rest_resources(const Access& access) const {
  std::string out = R"({"resources":[)";
  std::size_t count = 0;
  for (const auto& info : sorted(resources_.list())) {
    if (!access.resource_allowed(info.uri)) continue;
    if (count++) out += ',';
    out += rest_resource_json(info);
  }
  out += fmt::format(R"(],"count":{}}})", count);
  return Response::json_text(200, std::move(out));
}

Response ResourcesPrompts::rest_templates(const Access& access) const {
  std::string out = R"({"templates":[)";
  std::size_t count = 0;
  for (const auto& info : sorted(resources_.list_templates())) {
    if (!access.template_allowed(info.uri)) continue;
    if (count++) out += ',';
    out += rest_resource_json(info);
  }
  out += fmt::format(R"(],"count":{}}})", count);
  return Response::json_text(200, std::move(out));
}

Response ResourcesPrompts::rest_read(const JsonValue& body, const Access& access) const {
  const JsonValue* uri = member(&body, "uri");
  if (uri == nullptr || !uri->IsString()) return to_rest(invalid("body must be {\"uri\": string}"));
  const std::string u = text_of(*uri);
  if (!access.resource_allowed(u)) return to_rest(forbidden("resource", "uri", u, "resource"));
  std::string contents;
  if (auto f = read_contents(resources_, u, contents)) return to_rest(*f);
  return Response::json_text(200, fmt::format(R"({{"uri":{},"contents":{}}})", quote(u), contents));
}

Response ResourcesPrompts::rest_prompts(const Access& access) const {
  auto snap = prompt_snapshot();
  std::string out = R"({"prompts":[)";
  std::size_t count = 0;
  for (const auto& p : snap->prompts) {
    if (!access.prompt_allowed(p.registry_name)) continue;
    if (count++) out += ',';
    std::string args = "[";
    for (const auto& arg : p.info.arguments) {
      if (args.size() > 1) args += ',';
      args += fmt::format(R"({{"name":{},"title":{},"description":{},"required":{}}})", quote(arg.name),
                          quote(arg.title), quote(arg.description), arg.required ? "true" : "false");
    }
    args += ']';
    out += fmt::format(
        R"({{"name":{},"mcp_name":{},"title":{},"description":{},"owner":{},"declared":{},"arguments":{}}})",
        quote(p.registry_name), quote(p.mcp_name), quote(p.info.title), quote(p.info.description),
        quote(p.info.owner), p.info.declared ? "true" : "false", args);
  }
  out += fmt::format(R"(],"count":{}}})", count);
  return Response::json_text(200, std::move(out));
}

Response ResourcesPrompts::rest_prompt(const JsonValue& body, const Access& access) const {
  const JsonValue* name = member(&body, "prompt");
  if (name == nullptr || !name->IsString()) {
    return to_rest(invalid(R"(body must be {"prompt": name, "arguments": {name: string}})"));
  }
  std::string registry_name;
  std::string result;
  if (auto f = do_get_prompt(name, member(&body, "arguments"), access, registry_name, result)) return to_rest(*f);
  return Response::json_text(200, fmt::format(R"({{"prompt":{},"result":{}}})", quote(registry_name), result));
}

Response ResourcesPrompts::rest_complete(const JsonValue& body, const Access& access) const {
  // The same request and answer as MCP's completion/complete.
  std::string result;
  if (auto f = do_complete(&body, access, result)) return to_rest(*f);
  return Response::json_text(200, std::move(result));
}

}  // namespace ordinaut::mcp_http
