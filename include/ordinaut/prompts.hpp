// Prompts: named message templates with arguments that extensions offer to
// agents (MCP prompts/list, prompts/get, completion/complete) and to the REST
// companion.
//
// Naming: like tools, an extension's prompts are "ext.{id}.{name}"; the host's
// own names never start with "ext.". Names use [A-Za-z0-9_.-], at most 128
// characters.
//
// get() checks the arguments against the declared ones before the prompt's
// function runs: a missing required argument or an unknown one is error
// "invalid_arguments" naming it.
//
// Declared entries: a manifest may declare an extension's prompts
// (`contributes.prompts`), so they are listed before its module is loaded; the
// first get() or completion loads it through the resolver.
//
// Thread safety: PromptRegistry is safe for concurrent use; prompt functions
// run outside its lock.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ordinaut/json.hpp"
#include "ordinaut/resources.hpp"
#include "ordinaut/result.hpp"
#include "ordinaut/version.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

struct PromptArgument {
  std::string name{};
  std::string title{};
  std::string description{};
  bool required = false;
};

/// One content block of a message: text, an image or audio clip (raw bytes,
/// base64-encoded on the wire), or an embedded resource.
struct ContentBlock {
  enum class Kind : std::uint8_t { text, image, audio, resource };
  Kind kind = Kind::text;
  std::string text{};       ///< Kind::text
  std::string data{};       ///< raw bytes: Kind::image, Kind::audio
  std::string mime_type{};  ///< Kind::image, Kind::audio
  ResourceContents resource{};  ///< Kind::resource

  static ContentBlock make_text(std::string text);
  static ContentBlock make_image(std::string bytes, std::string mime_type);
  static ContentBlock make_audio(std::string bytes, std::string mime_type);
  static ContentBlock make_resource(ResourceContents contents);
};

struct PromptMessage {
  std::string role = "user";  ///< "user" or "assistant"
  ContentBlock content{};
};

struct PromptResult {
  std::string description{};
  std::vector<PromptMessage> messages{};
};

/// Builds the messages from the (checked) arguments. Throw PromptError (or any
/// exception) to fail; the message reaches the client.
using PromptFunction = std::function<PromptResult(const StringMap& arguments)>;

class PromptError : public std::runtime_error {
 public:
  PromptError(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const noexcept { return code_; }

 private:
  std::string code_;
};

/// Designated initializers work: {.name = ..., .get = ...}.
struct PromptSpec {
  std::string name{};
  std::string title{};
  std::string description{};
  std::vector<PromptArgument> arguments{};
  PromptFunction get{};
  CompletionFunction complete{};  ///< optional: values for the arguments
};

/// A registered prompt as listed.
struct PromptInfo {
  std::string name;
  std::string title;
  std::string description;
  std::vector<PromptArgument> arguments;
  std::string owner;      ///< extension id, or "core"
  bool declared = false;  ///< from a manifest; the module is not loaded yet
};

class PromptRegistry {
 public:
  PromptRegistry();
  ~PromptRegistry();
  PromptRegistry(const PromptRegistry&) = delete;
  PromptRegistry& operator=(const PromptRegistry&) = delete;

  /// Registers a prompt. Errors: "invalid_prompt" (bad name, no get function,
  /// an argument without a name or named twice), "prompt_namespace",
  /// "duplicate_prompt". Replaces the owner's own declaration of the name.
  Result<void> add(PromptSpec spec, std::string_view owner);
  /// Lists a prompt the owner's manifest declares; `get` is ignored.
  Result<void> declare(PromptSpec spec, std::string_view owner);
  /// Removes every prompt and declaration of `owner`; returns how many.
  std::size_t remove_owner(std::string_view owner);
  /// Removes what `owner` registered; its declarations stay.
  std::size_t remove_registered(std::string_view owner);

  /// Sorted by name.
  std::vector<PromptInfo> list() const;
  std::optional<PromptInfo> info(std::string_view name) const;

  /// Gets a prompt. Errors: "prompt_not_found", "invalid_arguments",
  /// "extension_unavailable", "prompt_failed" or a PromptError's own code.
  Result<PromptResult> get(std::string_view name, const StringMap& arguments) const;
  /// Completion for argument `argument` of prompt `name`. Errors:
  /// "prompt_not_found", "invalid_params" (no such argument).
  Result<Completion> complete(std::string_view name, std::string_view argument, std::string_view value,
                              const StringMap& context) const;

  /// For the host that loads `owner`'s code: every entry `owner` registers
  /// from now on keeps `lease` alive while it is registered and while a call
  /// of it runs (see ToolRegistry::hold_for_owner); null stops that.
  void hold_for_owner(std::string_view owner, std::shared_ptr<const void> lease);

  /// Called (outside any lock) with a prompt name that is not registered or
  /// only declared, so a host can load the extension owning it.
  void set_resolver(std::function<void(std::string_view name)> resolver);

  std::uint64_t generation() const noexcept;
  std::uint64_t on_change(std::function<void()> listener) const;
  void remove_listener(std::uint64_t id) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Read-only access: what every extension gets.
class PromptView {
 public:
  explicit PromptView(const PromptRegistry& registry) : registry_(&registry) {}
  std::vector<PromptInfo> list() const { return registry_->list(); }
  std::optional<PromptInfo> info(std::string_view name) const { return registry_->info(name); }
  Result<PromptResult> get(std::string_view name, const StringMap& arguments) const {
    return registry_->get(name, arguments);
  }
  Result<Completion> complete(std::string_view name, std::string_view argument, std::string_view value,
                              const StringMap& context) const {
    return registry_->complete(name, argument, value, context);
  }
  std::uint64_t generation() const noexcept { return registry_->generation(); }
  std::uint64_t on_change(std::function<void()> listener) const { return registry_->on_change(std::move(listener)); }
  void remove_listener(std::uint64_t id) const { registry_->remove_listener(id); }

 private:
  const PromptRegistry* registry_;
};

/// Registration handle for one extension (given only with PROMPTS). Names
/// must be "ext.{id}.{name}".
class PromptRegistrar {
 public:
  PromptRegistrar(PromptRegistry& registry, std::string extension_id)
      : registry_(&registry), extension_id_(std::move(extension_id)) {}
  /// Throws std::invalid_argument with the registry's message on failure.
  void add(PromptSpec spec);
  Result<void> try_add(PromptSpec spec) { return registry_->add(std::move(spec), extension_id_); }
  /// "ext.{id}."
  std::string prefix() const { return "ext." + extension_id_ + "."; }

 private:
  PromptRegistry* registry_;
  std::string extension_id_;
};

/// The MCP ContentBlock object of `block`.
Json to_json(const ContentBlock& block);
/// The MCP GetPromptResult: {"description"?, "messages": [{role, content}]}.
Json to_json(const PromptResult& result);
/// The MCP Prompt object of `info`.
Json to_json(const PromptInfo& info);
/// The MCP CompleteResult: {"completion": {"values", "total", "hasMore"}}.
Json to_json(const Completion& completion);

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
