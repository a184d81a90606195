// ExtensionHost: a thin coordinator over the host's parts.
//
//   services     what every part shares (options, log, tools, bus, metrics)
//   catalog      discovery: which extensions exist          catalog.cpp
//   loader       dlopen/factory, grants, setup, startup       loader.cpp
//   dispatcher   request → extension → route                  dispatcher.cpp
//   lifecycle    enable/disable/reload, shutdown order        lifecycle.cpp
//   status       /ext/status, openapi, health, introspection  status.cpp
//   admin        /ext/_admin/…                                admin.cpp
//
// Members are declared in dependency order, so each part is built after, and
// destroyed before, the parts it refers to.
#include "ordinaut/host.hpp"

#include <fmt/format.h>

#include "host/admin.hpp"
#include "host/bench_access.hpp"
#include "host/catalog.hpp"
#include "host/dispatcher.hpp"
#include "host/entry.hpp"
#include "host/environment.hpp"
#include "host/lifecycle.hpp"
#include "host/loader.hpp"
#include "host/services.hpp"
#include "host/status.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

struct ExtensionHost::Impl {
  explicit Impl(HostOptions options)
      : services(std::move(options)),
        catalog(services),
        status(services, catalog),
        introspection(detail::make_introspection(services, catalog, status)),
        loader(services, load_order, status, *introspection),
        lifecycle(services, catalog, loader, load_order),
        admin(services, catalog, lifecycle),
        dispatcher(services, catalog, loader, status, admin) {}

  detail::Entry* find(std::string_view id) const { return catalog.find(id); }

  detail::HostServices services;
  detail::Catalog catalog;
  detail::LoadOrder load_order;
  detail::StatusReporter status;
  std::unique_ptr<HostIntrospection> introspection;
  detail::Loader loader;
  detail::Lifecycle lifecycle;
  detail::AdminEndpoints admin;
  detail::Dispatcher dispatcher;
  bool started = false;
};

namespace {

Error not_discovered(std::string_view id) {
  return make_error("not_found", fmt::format("no extension '{}' is discovered", id));
}

}  // namespace

ExtensionHost::ExtensionHost(HostOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

ExtensionHost::~ExtensionHost() {
  shutdown();
  detail::HostServices& s = impl_->services;
  s.tools->set_resolver(nullptr);
  s.prompts->set_resolver(nullptr);
  s.resources->set_resolver(nullptr);
  if (!s.options.event_bus) s.bus->shutdown();
  // A runtime whose code may still run on an abandoned thread (a hung
  // on_startup/on_shutdown or task) is never freed under it: release() moved
  // it to a process-wide list that is never destroyed (modules are never
  // unloaded either), so it stays valid for as long as that thread runs. The
  // rest are freed with their entries, or after the last lease on them.
  for (const auto& entry : impl_->catalog.entries()) {
    std::shared_ptr<detail::Runtime> rt = entry->runtime.load();
    if (rt && (rt->abandoned.load() || (rt->tasks && rt->tasks->has_abandoned()))) detail::park_abandoned(std::move(rt));
  }
}

void ExtensionHost::add_linked(std::string id, ExtensionFactory factory, std::optional<CapabilitySet> approved,
                               std::optional<bool> eager) {
  impl_->catalog.add_linked(std::move(id), std::move(factory), approved, eager);
}

Result<void> ExtensionHost::start() {
  Impl& h = *impl_;
  detail::HostServices& s = h.services;
  if (h.started) return make_error("already_started", "ExtensionHost::start() was already called");
  if (auto env = detail::apply_environment(s.options, s.require_scopes); !env) {
    s.logger.error("invalid_configuration", env.error().message);
    return env;
  }
  if (s.options.authenticator) s.require_scopes = true;  // scopes are what authentication proves
  h.started = true;
  h.catalog.discover();

  // "ext.{id}.{name}": load {id} lazily on the first call of one of its
  // tools or prompts, declared in its manifest or not.
  auto load_owner_of = [this](std::string_view name) {
    if (!name.starts_with("ext.")) return;
    std::string_view rest = name.substr(4);
    if (detail::Entry* entry = impl_->find(rest.substr(0, rest.find('.')))) (void)impl_->loader.ensure_loaded(*entry);
  };
  s.tools->set_resolver(load_owner_of);
  s.prompts->set_resolver(load_owner_of);
  s.resources->set_resolver([this](std::string_view owner) {
    if (detail::Entry* entry = impl_->find(owner)) (void)impl_->loader.ensure_loaded(*entry);
  });
  for (const auto& entry : h.catalog.entries()) {
    if (!entry->enabled) continue;
    std::lock_guard lock(entry->load_mutex);
    (void)h.loader.declare(*entry);
  }
  detail::register_host_resources(s, h.status);

  for (const auto& entry : h.catalog.entries()) {
    if (entry->eager && entry->enabled) (void)h.loader.ensure_loaded(*entry);
  }
  s.logger.info("host_started",
                fmt::format("{} extensions discovered, {} loaded, {} discovery errors", h.catalog.entries().size(),
                            h.load_order.size(), h.catalog.errors().size()));
  return {};
}

void ExtensionHost::shutdown() {
  Impl& h = *impl_;
  if (!h.started || h.services.shut_down.exchange(true)) return;
  h.services.logger.info("host_stopping", "shutting extensions down in reverse load order");
  h.lifecycle.shutdown_all();
}

Result<void> ExtensionHost::enable(std::string_view id) {
  detail::Entry* entry = impl_->find(id);
  if (entry == nullptr) return not_discovered(id);
  return impl_->lifecycle.enable(*entry, "the host application");
}

Result<void> ExtensionHost::disable(std::string_view id) {
  detail::Entry* entry = impl_->find(id);
  if (entry == nullptr) return not_discovered(id);
  return impl_->lifecycle.disable(*entry, "the host application");
}

Result<void> ExtensionHost::reload(std::string_view id) {
  detail::Entry* entry = impl_->find(id);
  if (entry == nullptr) return not_discovered(id);
  return impl_->lifecycle.reload(*entry, "the host application");
}

Response ExtensionHost::handle(Request& request) {
  try {
    return impl_->dispatcher.handle(request);
  } catch (const std::exception& e) {
    impl_->services.logger.error("dispatch_failed", e.what());
    return Response::error(500, "internal_error", "the extension host failed to handle the request");
  }
}

Result<void> ExtensionHost::load(std::string_view id) {
  detail::Entry* entry = impl_->find(id);
  if (entry == nullptr) return not_discovered(id);
  auto r = impl_->loader.ensure_loaded(*entry);
  if (!r) return r.error();
  return {};
}

Json ExtensionHost::status() const { return impl_->status.status(); }
std::vector<ExtensionSnapshot> ExtensionHost::snapshot() const { return impl_->status.snapshot(); }
ToolRegistry& ExtensionHost::tools() { return *impl_->services.tools; }
ResourceRegistry& ExtensionHost::resources() { return *impl_->services.resources; }
PromptRegistry& ExtensionHost::prompts() { return *impl_->services.prompts; }
std::shared_ptr<EventBus> ExtensionHost::event_bus() const { return impl_->services.bus; }
Result<std::string> ExtensionHost::publish(std::string_view topic, const JsonValue& payload) {
  return impl_->services.bus->publish(topic, "core", payload);
}
const Logger& ExtensionHost::logger() const { return impl_->services.logger; }
bool ExtensionHost::require_scopes() const { return impl_->services.require_scopes; }

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut

namespace ordinaut::detail {

void HostBenchAccess::bypass_gate(ExtensionHost& host, bool bypass) { host.impl_->dispatcher.bypass_gate(bypass); }

}  // namespace ordinaut::detail
