// Capability names, CapabilitySet and CapabilityError (include/ordinaut/capability.hpp).
#include "ordinaut/capability.hpp"

#include <fmt/format.h>

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

namespace {
constexpr const char* kCapabilityNames[kCapabilityCount] = {"ROUTES",           "TOOLS", "EVENTS_PUB", "EVENTS_SUB",
                                                            "BACKGROUND_TASKS", "STATIC", "RESOURCES", "PROMPTS"};
}

const char* to_string(Capability capability) noexcept {
  auto i = static_cast<unsigned>(capability);
  return i < kCapabilityCount ? kCapabilityNames[i] : "UNKNOWN";
}

std::optional<Capability> parse_capability(std::string_view name) noexcept {
  for (int i = 0; i < kCapabilityCount; ++i) {
    if (name == kCapabilityNames[i]) return static_cast<Capability>(i);
  }
  return std::nullopt;
}

std::vector<Capability> CapabilitySet::list() const {
  std::vector<Capability> out;
  for (int i = 0; i < kCapabilityCount; ++i) {
    if (contains(static_cast<Capability>(i))) out.push_back(static_cast<Capability>(i));
  }
  return out;
}

std::vector<std::string> CapabilitySet::names() const {
  std::vector<std::string> out;
  for (Capability c : list()) out.emplace_back(to_string(c));
  return out;
}

CapabilityError::CapabilityError(std::string extension_id, Capability capability)
    : extension_id_(std::move(extension_id)),
      capability_(capability),
      message_(fmt::format("extension '{}' was not granted capability {}", extension_id_, to_string(capability))) {}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
