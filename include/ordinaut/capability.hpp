// Capabilities an extension may request and be granted.
//
// An extension receives exactly the capabilities that it requests *and* that
// the operator approved (manifest `grants`, or ORDINAUT_EXT_ENTRY_GRANTS for
// linked-in extensions): granted = requested ∩ approved. Nothing is granted by
// default. Each granted capability hands out one handle in the SetupContext;
// without it the handle is never given out.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ordinaut/version.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

/// What an extension may do; each is requested by the extension and approved
/// by the operator (the manifest's `grants`).
enum class Capability : std::uint8_t {
  ROUTES = 0,            ///< mount HTTP endpoints under /ext/{id}/
  TOOLS = 1,             ///< register tools under ext.{id}.*
  EVENTS_PUB = 2,        ///< publish events
  EVENTS_SUB = 3,        ///< subscribe to events
  BACKGROUND_TASKS = 4,  ///< run supervised long-running work
  STATIC = 5,            ///< serve files from the extension's static/ folder
  RESOURCES = 6,         ///< offer resources and resource templates (ordinaut/resources.hpp)
  PROMPTS = 7,           ///< offer prompts (ordinaut/prompts.hpp)
};

/// How many capabilities there are.
inline constexpr int kCapabilityCount = 8;

/// "ROUTES", "TOOLS", ...
const char* to_string(Capability capability) noexcept;

/// Parses an exact upper-case name; nullopt for anything else.
std::optional<Capability> parse_capability(std::string_view name) noexcept;

/// A small value set of capabilities.
class CapabilitySet {
 public:
  constexpr CapabilitySet() = default;
  /// The set of the listed capabilities: `{Capability::ROUTES, Capability::TOOLS}`.
  constexpr CapabilitySet(std::initializer_list<Capability> list) {
    for (Capability c : list) bits_ |= bit(c);
  }

  /// Every capability there is.
  static constexpr CapabilitySet all() {
    CapabilitySet s;
    s.bits_ = (1u << kCapabilityCount) - 1;
    return s;
  }

  /// True when `c` is a member.
  constexpr bool contains(Capability c) const { return (bits_ & bit(c)) != 0; }
  /// Adds `c` (no effect when it is a member).
  constexpr void insert(Capability c) { bits_ |= bit(c); }
  /// Removes `c` (no effect when it is not a member).
  constexpr void erase(Capability c) { bits_ &= ~bit(c); }
  /// True for the set with no member.
  constexpr bool empty() const { return bits_ == 0; }
  /// Intersection: granted = requested & approved.
  constexpr CapabilitySet operator&(CapabilitySet o) const { return from_bits(bits_ & o.bits_); }
  /// Union.
  constexpr CapabilitySet operator|(CapabilitySet o) const { return from_bits(bits_ | o.bits_); }
  /// Members of this set that are not in `o`.
  constexpr CapabilitySet operator-(CapabilitySet o) const { return from_bits(bits_ & ~o.bits_); }
  /// Same members.
  constexpr bool operator==(const CapabilitySet&) const = default;

  /// Members in declaration order.
  std::vector<Capability> list() const;
  /// Names in declaration order.
  std::vector<std::string> names() const;

 private:
  static constexpr std::uint32_t bit(Capability c) { return 1u << static_cast<unsigned>(c); }
  static constexpr CapabilitySet from_bits(std::uint32_t b) {
    CapabilitySet s;
    s.bits_ = b;
    return s;
  }
  std::uint32_t bits_ = 0;
};

/// Thrown when extension code asks for a handle it was not granted. The host
/// turns it into an audit-log line and, inside a request, a 403 response.
class CapabilityError : public std::exception {
 public:
  /// `extension_id` asked for a handle that needs `capability`.
  CapabilityError(std::string extension_id, Capability capability);
  /// "extension 'shop' was not granted capability TOOLS".
  const char* what() const noexcept override { return message_.c_str(); }
  /// The extension that asked.
  const std::string& extension_id() const noexcept { return extension_id_; }
  /// The capability it was not granted.
  Capability capability() const noexcept { return capability_; }

 private:
  std::string extension_id_;
  Capability capability_;
  std::string message_;
};

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
