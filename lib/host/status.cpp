// StatusReporter and the introspection view (status.hpp).
#include "host/status.hpp"

#include <set>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/strings.hpp"
#include "host/openapi.hpp"

namespace ordinaut::detail {

namespace {

JsonValue string_array(const std::vector<std::string>& items, Json::AllocatorType& a) {
  JsonValue arr(rapidjson::kArrayType);
  for (const auto& s : items) arr.PushBack(JsonValue(s.c_str(), a), a);
  return arr;
}

// Reads the host's own counters for observability; counts nothing itself.
class HostIntrospectionView final : public HostIntrospection {
 public:
  HostIntrospectionView(const HostServices& services, const Catalog& catalog, const StatusReporter& status)
      : services_(services), catalog_(catalog), status_(status) {}
  std::vector<ExtensionSnapshot> extensions() const override { return status_.snapshot(); }
  RouteMetrics host_requests() const override { return services_.host_counters.snapshot("*", "(host)"); }
  std::vector<ToolStats> tool_stats() const override { return services_.tools->stats(); }
  Json event_bus_health() const override { return services_.bus->health(); }
  Json subscriber_health(std::string_view id) const override { return services_.bus->subscriber_health(id); }
  std::vector<ExtensionTasks> background_tasks() const override {
    std::vector<ExtensionTasks> out;
    for (const auto& e : catalog_.entries()) {
      std::shared_ptr<Runtime> rt = e->runtime.load(std::memory_order_acquire);
      if (rt == nullptr || !rt->tasks) continue;
      auto tasks = rt->tasks->list();
      if (!tasks.empty()) out.push_back(ExtensionTasks{e->id, std::move(tasks)});
    }
    return out;
  }
  const MetricsRegistry& metrics() const override { return services_.metrics; }

 private:
  const HostServices& services_;
  const Catalog& catalog_;
  const StatusReporter& status_;
};

// The host's own check names in a health document: "extension", "events",
// "health_checks" and "task:{name}". An extension's check by one of them is
// reported as "custom:{name}", so the document never holds a key twice.
std::string check_name(std::string_view name) {
  const bool reserved = name == "extension" || name == "events" || name == "health_checks" ||
                        name.starts_with("task:") || name.starts_with("custom:");
  return reserved ? "custom:" + std::string(name) : std::string(name);
}

}  // namespace

std::unique_ptr<HostIntrospection> make_introspection(const HostServices& services, const Catalog& catalog,
                                                      const StatusReporter& status) {
  return std::make_unique<HostIntrospectionView>(services, catalog, status);
}

Json StatusReporter::status() const {
  Json doc = json::object();
  auto& a = doc.GetAllocator();
  JsonValue exts(rapidjson::kObjectType);
  std::uint64_t loaded = 0, failed = 0;
  for (const auto& e : catalog_.entries()) {
    const ExtensionState state = e->state.load();
    std::shared_ptr<Runtime> rt = e->runtime.load(std::memory_order_acquire);
    if (state == ExtensionState::active) ++loaded;
    if (state == ExtensionState::error) ++failed;
    JsonValue x(rapidjson::kObjectType);
    x.AddMember("state", JsonValue(to_string(state), a), a);
    // Held up to the error fields: reload and enable change the manifest fields.
    std::unique_lock info_lock(e->info_mutex);
    JsonValue info(rapidjson::kObjectType);
    if (rt != nullptr) {
      info.AddMember("id", JsonValue(rt->info.id.c_str(), a), a);
      info.AddMember("name", JsonValue(rt->info.name.c_str(), a), a);
      info.AddMember("version", JsonValue(rt->info.version.c_str(), a), a);
      info.AddMember("description", JsonValue(rt->info.description.c_str(), a), a);
    } else if (e->manifest) {
      info.AddMember("id", JsonValue(e->manifest->id.c_str(), a), a);
      info.AddMember("name", JsonValue(e->manifest->name.c_str(), a), a);
      info.AddMember("version", JsonValue(e->manifest->version.c_str(), a), a);
      info.AddMember("description", JsonValue(e->manifest->description.c_str(), a), a);
    } else {
      info.AddMember("id", JsonValue(e->id.c_str(), a), a);
    }
    x.AddMember("info", info, a);
    JsonValue caps(rapidjson::kObjectType);
    caps.AddMember("approved", string_array(e->approved.names(), a), a);
    if (rt != nullptr) {
      caps.AddMember("requested", string_array(rt->requested.names(), a), a);
      caps.AddMember("granted", string_array(rt->granted.names(), a), a);
      caps.AddMember("denied", string_array((rt->requested - rt->granted).names(), a), a);
    }
    x.AddMember("capabilities", caps, a);
    x.AddMember("grants", string_array(rt ? rt->granted.names() : std::vector<std::string>{}, a), a);
    x.AddMember("source", JsonValue(e->source.c_str(), a), a);
    x.AddMember("path", JsonValue(e->manifest ? e->manifest->file.string().c_str() : "", a), a);
    x.AddMember("eager", e->eager, a);
    x.AddMember("enabled", e->enabled, a);
    {
      if (rt != nullptr && state == ExtensionState::active) {
        x.AddMember("loaded_ms", e->load_ms, a);
      } else {
        x.AddMember("loaded_ms", JsonValue(rapidjson::kNullType), a);
      }
      x.AddMember("last_error",
                  e->last_error.empty() ? JsonValue(rapidjson::kNullType) : JsonValue(e->last_error.c_str(), a), a);
      x.AddMember("error_phase",
                  e->error_phase.empty() ? JsonValue(rapidjson::kNullType) : JsonValue(e->error_phase.c_str(), a), a);
      // Why it is disabled or stopped ("disabled through the admin API ...").
      x.AddMember("reason",
                  e->state_reason.empty() ? JsonValue(rapidjson::kNullType) : JsonValue(e->state_reason.c_str(), a), a);
      info_lock.unlock();
    }
    JsonValue metrics(rapidjson::kObjectType);
    std::uint64_t requests = 0, errors = 0;
    double seconds = 0;
    JsonValue routes(rapidjson::kArrayType);
    if (rt != nullptr) {
      auto add_route = [&](const RouteCounters& c, const std::string& method, const std::string& path) {
        RouteMetrics m = c.snapshot(method, path);
        requests += m.requests;
        errors += m.errors;
        seconds += m.seconds_total;
        if (m.requests == 0) return;
        JsonValue r(rapidjson::kObjectType);
        r.AddMember("method", JsonValue(method.c_str(), a), a);
        r.AddMember("route", JsonValue(path.c_str(), a), a);
        r.AddMember("requests", m.requests, a);
        r.AddMember("errors", m.errors, a);
        r.AddMember("seconds_total", m.seconds_total, a);
        routes.PushBack(r, a);
      };
      if (rt->router) {
        for (std::size_t i = 0; i < rt->router->routes().size(); ++i) {
          add_route(*rt->route_counters[i], rt->router->routes()[i].method, rt->router->routes()[i].path);
        }
      }
      add_route(rt->unrouted, "*", "(unrouted)");
    }
    metrics.AddMember("requests", requests, a);
    metrics.AddMember("errors", errors, a);
    metrics.AddMember("seconds_total", seconds, a);
    metrics.AddMember("routes", routes, a);
    if (rt != nullptr) {
      std::size_t tools_count = 0;
      for (const auto& t : services_.tools->stats()) tools_count += t.owner == e->id ? 1 : 0;
      metrics.AddMember("tools", static_cast<std::uint64_t>(tools_count), a);
      Json subs = services_.bus->subscriber_health(e->id);
      metrics.AddMember("subscriptions", JsonValue(subs, a), a);
    }
    x.AddMember("metrics", metrics, a);
    JsonValue tasks(rapidjson::kArrayType);
    if (rt != nullptr && rt->tasks) {
      for (const auto& t : rt->tasks->list()) tasks.PushBack(task_status_json(t, a), a);
    }
    x.AddMember("tasks", tasks, a);
    exts.AddMember(JsonValue(e->id.c_str(), a), x, a);
  }
  doc.AddMember("extensions", exts, a);
  doc.AddMember("discovery_sources", string_array(catalog_.sources(), a), a);
  JsonValue errors(rapidjson::kArrayType);
  for (const auto& [file, message] : catalog_.errors()) {
    JsonValue err(rapidjson::kObjectType);
    err.AddMember("file", JsonValue(file.c_str(), a), a);
    err.AddMember("error", JsonValue(message.c_str(), a), a);
    errors.PushBack(err, a);
  }
  doc.AddMember("discovery_errors", errors, a);
  doc.AddMember("total_extensions", static_cast<std::uint64_t>(catalog_.entries().size()), a);
  doc.AddMember("loaded_extensions", loaded, a);
  doc.AddMember("failed_extensions", failed, a);
  doc.AddMember("require_scopes", services_.require_scopes, a);
  Json bus_health = services_.bus->health();
  doc.AddMember("event_bus", JsonValue(bus_health, a), a);
  return doc;
}

Json StatusReporter::openapi() const {
  std::vector<OpenApiExtension> list;
  std::vector<std::shared_ptr<Runtime>> leases;  // the routers listed stay alive until the document is made
  for (const auto& e : catalog_.entries()) {
    OpenApiExtension x;
    x.id = e->id;
    const ExtensionState state = e->state.load();
    x.state = to_string(state);
    std::shared_ptr<Runtime> rt = e->runtime.load(std::memory_order_acquire);
    if (rt != nullptr && state == ExtensionState::active) {
      x.name = rt->info.name;
      x.version = rt->info.version;
      x.description = rt->info.description;
      x.router = rt->router ? &*rt->router : nullptr;
      x.has_health_route = rt->has_health_route;
      leases.push_back(std::move(rt));
    } else {
      std::lock_guard lock(e->info_mutex);  // the manifest may be replaced by reload()
      if (e->manifest) {
        x.name = e->manifest->name;
        x.version = e->manifest->version;
        x.description = e->manifest->description;
      }
    }
    list.push_back(std::move(x));
  }
  return openapi_document(list, services_.require_scopes);
}

Response StatusReporter::health(Entry& entry, Runtime* runtime) const {
  Json doc = json::object();
  auto& a = doc.GetAllocator();
  const ExtensionState state = entry.state.load();
  std::string status = state == ExtensionState::active ? "ok" : "unavailable";
  JsonValue checks(rapidjson::kObjectType);
  if (runtime != nullptr && state == ExtensionState::active) {
    std::string problem;  // what was wrong with health_checks() itself
    try {
      Json custom = runtime->extension->health_checks();
      if (custom.IsObject()) {
        std::set<std::string, std::less<>> names;
        std::vector<std::string> twice;
        for (auto& m : custom.GetObject()) {
          const std::string name = check_name(std::string_view(m.name.GetString(), m.name.GetStringLength()));
          if (!names.insert(name).second) {
            twice.push_back(name);
            continue;
          }
          auto s = json::get_string(m.value, "status");
          if (!s || *s != "ok") status = "degraded";
          checks.AddMember(JsonValue(name.c_str(), static_cast<rapidjson::SizeType>(name.size()), a),
                           JsonValue(m.value, a), a);
        }
        if (!twice.empty()) problem = fmt::format("health_checks() named a check twice: {}", fmt::join(twice, ", "));
      }
    } catch (const std::exception& e) {
      problem = e.what();
    }
    if (!problem.empty()) {
      status = "degraded";
      JsonValue c(rapidjson::kObjectType);
      c.AddMember("status", "error", a);
      c.AddMember("error", JsonValue(problem.c_str(), a), a);
      checks.AddMember("health_checks", c, a);
    }
    // One check per background task, "task:{name}": running or ended cleanly
    // is "ok"; backing off, failed or abandoned degrades the extension.
    if (runtime->tasks) {
      for (const auto& t : runtime->tasks->list()) {
        const bool ok = !t.abandoned && (t.state == TaskState::running || t.state == TaskState::stopped);
        if (!ok) status = "degraded";
        JsonValue c = detail::task_status_json(t, a);
        c.AddMember("status", JsonValue(ok ? "ok" : t.abandoned ? "abandoned" : to_string(t.state), a), a);
        checks.AddMember(JsonValue(("task:" + t.name).c_str(), a), c, a);
      }
    }
    // "events": the bus's state and this extension's subscriptions (streams,
    // groups, pending, lag). The verdict is the worst of the bus's own status
    // and each subscription's ("ok" < "degraded" < "unhealthy"), with the first
    // reason given; a bus without "status" is judged by "connected". Anything
    // but "ok" degrades the extension, which stays active (the check's own
    // status reads "error" while the bus is disconnected).
    if (runtime->granted.contains(Capability::EVENTS_PUB) || runtime->granted.contains(Capability::EVENTS_SUB)) {
      Json bus_health = services_.bus->health();
      Json subs = services_.bus->subscriber_health(entry.id);
      const bool connected = !bus_health.HasMember("connected") || bus_health["connected"].IsTrue();
      auto rank = [](std::string_view v) { return v == "ok" ? 0 : v == "degraded" ? 1 : 2; };
      std::string verdict = "ok";
      std::string reason;
      auto consider = [&](const JsonValue& h) {
        auto st = json::get_string(h, "status");
        if (!st || *st == "ok") return;
        if (rank(*st) > rank(verdict)) verdict = std::string(*st);
        if (auto r = json::get_string(h, "reason"); r && reason.empty()) reason = std::string(*r);
      };
      consider(bus_health);
      if (subs.IsArray()) {
        for (const auto& sub : subs.GetArray()) consider(sub);
      }
      if (!connected && verdict == "ok") verdict = "degraded";
      if (verdict != "ok") status = "degraded";
      if (reason.empty() && !connected && bus_health.HasMember("last_error") && bus_health["last_error"].IsString()) {
        reason = bus_health["last_error"].GetString();
      }
      JsonValue c(rapidjson::kObjectType);
      // A lost connection keeps its long-standing "error"; otherwise the verdict.
      c.AddMember("status", JsonValue(connected ? verdict.c_str() : "error", a), a);
      c.AddMember("bus", bus_health.HasMember("kind") ? JsonValue(bus_health["kind"], a) : JsonValue(), a);
      c.AddMember("connected", connected, a);
      if (!reason.empty()) c.AddMember("reason", JsonValue(reason.c_str(), a), a);
      if (!connected && bus_health.HasMember("last_error")) {
        c.AddMember("last_error", JsonValue(bus_health["last_error"], a), a);
      }
      c.AddMember("subscriptions", JsonValue(subs, a), a);
      checks.AddMember("events", c, a);
    }
  }
  JsonValue st(rapidjson::kObjectType);
  st.AddMember("status", JsonValue(state == ExtensionState::active ? "ok" : "error", a), a);
  st.AddMember("state", JsonValue(to_string(state), a), a);
  checks.AddMember("extension", st, a);
  doc.AddMember("status", JsonValue(status.c_str(), a), a);
  doc.AddMember("timestamp", JsonValue(detail::rfc3339(detail::now_ms()).c_str(), a), a);
  std::string version;
  if (runtime != nullptr) {
    version = runtime->info.version;
  } else {
    std::lock_guard lock(entry.info_mutex);  // the manifest may be replaced by reload()
    version = entry.manifest ? entry.manifest->version : "";
  }
  doc.AddMember("version", JsonValue(version.c_str(), a), a);
  doc.AddMember("checks", checks, a);
  return Response::json(status == "unavailable" ? 503 : 200, doc);
}

std::vector<ExtensionSnapshot> StatusReporter::snapshot() const {
  std::vector<ExtensionSnapshot> out;
  for (const auto& e : catalog_.entries()) {
    ExtensionSnapshot s;
    s.id = e->id;
    s.state = e->state.load();
    s.source = e->source;
    std::shared_ptr<Runtime> rt = e->runtime.load(std::memory_order_acquire);
    {
      std::lock_guard lock(e->info_mutex);  // the manifest may be replaced by reload()
      s.path = e->manifest ? e->manifest->file.string() : "";
      s.version = rt ? rt->info.version : e->manifest ? e->manifest->version : "";
      s.load_ms = e->load_ms;
      s.last_error = e->last_error;
      s.error_phase = e->error_phase;
      s.state_reason = e->state_reason;
    }
    if (rt != nullptr && rt->tasks) s.tasks = rt->tasks->list();
    if (rt != nullptr) {
      if (rt->router) {
        for (std::size_t i = 0; i < rt->router->routes().size(); ++i) {
          s.routes.push_back(
              rt->route_counters[i]->snapshot(rt->router->routes()[i].method, rt->router->routes()[i].path));
        }
      }
      s.routes.push_back(rt->unrouted.snapshot("*", "(unrouted)"));
      for (const auto& r : s.routes) {
        s.requests += r.requests;
        s.errors += r.errors;
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

void register_host_resources(HostServices& services, const StatusReporter& status) {
  auto& registry = *services.resources;
  (void)registry.add(
      ResourceSpec{.uri = "ordinaut://host/status",
                   .name = "host-status",
                   .title = "Extension host status",
                   .description = "Every extension's state, version, grants, routes, load time and errors, plus the "
                                  "discovery errors (the GET /ext/status document).",
                   .mime_type = "application/json",
                   .read = [&status](const ResourceRequest& request) {
                     return std::vector<ResourceContents>{
                         ResourceContents::make_text(request.uri, json::dump(status.status()), "application/json")};
                   }},
      "core");
  (void)registry.add_template(
      ResourceTemplateSpec{
          .uri_template = "ordinaut://host/extensions/{id}",
          .name = "extension-status",
          .title = "One extension's status",
          .description = "The /ext/status entry of one extension: state, version, grants, routes, errors.",
          .mime_type = "application/json",
          .read =
              [&status](const ResourceRequest& request) {
                const std::string& id = request.variables.at("id");
                Json doc = status.status();
                const JsonValue& extensions = doc["extensions"];
                if (auto it = extensions.FindMember(JsonValue(rapidjson::StringRef(id.c_str(), id.size())));
                    it != extensions.MemberEnd()) {
                  return std::vector<ResourceContents>{
                      ResourceContents::make_text(request.uri, json::dump(it->value), "application/json")};
                }
                throw ResourceError("resource_not_found", fmt::format("no extension '{}' is discovered", id));
              },
          .complete =
              [&status](std::string_view, std::string_view value, const StringMap&) {
                std::vector<std::string> ids;
                for (const ExtensionSnapshot& snap : status.snapshot()) {
                  if (snap.id.starts_with(value)) ids.push_back(snap.id);
                }
                return ids;
              }},
      "core");
}

}  // namespace ordinaut::detail
