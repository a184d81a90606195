// HostSetupContext: the SetupContext an extension's setup() receives, one per
// runtime. Internal to the host.
//
// Owns: the capability gate. Each capability hands out exactly one handle
// (tool, resource and prompt registrars, publisher, subscriber, background
// tasks, static folder);
// asking for one without its grant throws CapabilityError and writes an audit
// record. Everything else (tool, resource and prompt views, logger, metrics, status, introspection)
// is open to every extension.
//
// Lifetime: owned by its Runtime, so references an extension keeps stay valid
// as long as the runtime does.
#pragma once

#include <filesystem>
#include <string>

#include "host/entry.hpp"
#include "host/services.hpp"
#include "host/status.hpp"
#include "ordinaut/extension.hpp"

namespace ordinaut::detail {

class HostSetupContext final : public SetupContext {
 public:
  HostSetupContext(HostServices& services, const StatusReporter& status, const HostIntrospection& introspection,
                   Entry& entry, Runtime& runtime);

  const std::string& extension_id() const override { return entry_.id; }
  const std::string& mount_path() const override { return mount_path_; }
  CapabilitySet grants() const override { return runtime_.granted; }
  const ToolView& tools() const override { return view_; }
  ToolRegistrar& tool_registrar() override {
    require(Capability::TOOLS);
    return registrar_;
  }
  const ResourceView& resources() const override { return resource_view_; }
  ResourceRegistrar& resource_registrar() override {
    require(Capability::RESOURCES);
    return resource_registrar_;
  }
  const PromptView& prompts() const override { return prompt_view_; }
  PromptRegistrar& prompt_registrar() override {
    require(Capability::PROMPTS);
    return prompt_registrar_;
  }
  const EventPublisher& events_publisher() override {
    require(Capability::EVENTS_PUB);
    return publisher_;
  }
  const EventSubscriber& events_subscriber() override {
    require(Capability::EVENTS_SUB);
    return subscriber_;
  }
  BackgroundTasks& background() override {
    require(Capability::BACKGROUND_TASKS);
    return *runtime_.tasks;  // the loader makes one for every runtime granted BACKGROUND_TASKS
  }
  const std::filesystem::path& static_dir() override {
    require(Capability::STATIC);
    return runtime_.static_dir;
  }
  const std::filesystem::path& extension_dir() const override { return dir_; }
  const Logger& logger() const override { return logger_; }
  Json host_status() const override { return status_.status(); }
  MetricsRegistry& metrics() override { return services_.metrics_of(entry_.id); }
  const HostIntrospection& introspection() const override { return introspection_; }

 private:
  void require(Capability c) const;

  HostServices& services_;
  const StatusReporter& status_;
  const HostIntrospection& introspection_;
  Entry& entry_;
  Runtime& runtime_;
  std::string mount_path_;
  std::filesystem::path dir_;
  ToolView view_;
  ToolRegistrar registrar_;
  ResourceView resource_view_;
  ResourceRegistrar resource_registrar_;
  PromptView prompt_view_;
  PromptRegistrar prompt_registrar_;
  EventPublisher publisher_;
  EventSubscriber subscriber_;
  Logger logger_;
};

}  // namespace ordinaut::detail
