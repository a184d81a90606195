// HostSetupContext (setup_context.hpp).
#include "host/setup_context.hpp"

#include <fmt/format.h>

namespace ordinaut::detail {

HostSetupContext::HostSetupContext(HostServices& services, const StatusReporter& status,
                                   const HostIntrospection& introspection, Entry& entry, Runtime& runtime)
    : services_(services),
      status_(status),
      introspection_(introspection),
      entry_(entry),
      runtime_(runtime),
      mount_path_("/ext/" + entry.id),
      dir_(entry.manifest ? entry.manifest->dir : std::filesystem::path{}),
      view_(*services.tools),
      registrar_(*services.tools, entry.id),
      resource_view_(*services.resources),
      resource_registrar_(*services.resources, entry.id),
      prompt_view_(*services.prompts),
      prompt_registrar_(*services.prompts, entry.id),
      publisher_(services.bus, entry.id),
      subscriber_(services.bus, entry.id),
      logger_(services.extension_logger(entry.id)) {}

void HostSetupContext::require(Capability c) const {
  if (runtime_.granted.contains(c)) return;
  logger_.audit("capability_denied",
                fmt::format("extension '{}' asked for {} without the grant", entry_.id, to_string(c)),
                fmt::format(R"({{"capability":"{}"}})", to_string(c)));
  throw CapabilityError(entry_.id, c);
}

}  // namespace ordinaut::detail
